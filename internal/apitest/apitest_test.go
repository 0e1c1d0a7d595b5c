package apitest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/apitest"
)

const channel = `{"channel_id": "c1", "channel_name": "", "channel_description": "", "channel_metadata": {"endpoint_url": "https://x.example/in"}, "channel_tags": []}`

// fake answers every request with the status, headers and body the test sets.
type fake struct {
	status int
	header http.Header
	body   string
}

func (f *fake) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func TestValidator(t *testing.T) {
	t.Parallel()
	v, err := apitest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	release := v.Serve(srv.URL)
	client := &http.Client{Transport: v}
	notFound := `{"error": {"code": "not_found", "message": "no"}}`
	for _, c := range []struct {
		name, method, path, ctype, reqBody string
		status                             int
		header                             http.Header
		body                               string
		problem                            string // "" when the exchange matches the document
	}{
		{"a documented answer", "GET", "/channel/c1", "", "", 200, nil, channel, ""},
		{"a field of the wrong type", "GET", "/channel/c1", "", "", 200, nil, strings.Replace(channel, `"channel_name": ""`, `"channel_name": 5`, 1), `"/channel_name"`},
		{"a required field missing", "GET", "/channel/c1", "", "", 200, nil, `{"channel_id": "c1"}`, "is missing"},
		{"an undocumented status", "GET", "/channel/c1", "", "", 418, nil, notFound, "status 418 is not documented"},
		{"an error code another status has", "GET", "/channel/c1", "", "", 404, nil, `{"error": {"code": "rate_limited", "message": "no"}}`, "does not match"},
		{"a 503 without Retry-After", "GET", "/channel/c1", "", "", 503, nil, `{"error": {"code": "unavailable", "message": "down"}}`, "Retry-After"},
		{"a 503 with Retry-After", "GET", "/channel/c1", "", "", 503, http.Header{"Retry-After": {"1"}}, `{"error": {"code": "unavailable", "message": "down"}}`, ""},
		{"a refused request refused", "POST", "/channel", "application/json", `{"channel_name": "x"}`, 400, nil, `{"error": {"code": "missing_field", "message": "m", "field": "channel_id"}}`, ""},
		{"a refused request accepted", "POST", "/channel", "application/json", `{"channel_name": "x"}`, 201, nil, channel, "herald accepted a request that openapi.json refuses"},
		{"a body without Content-Type is read as JSON", "POST", "/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "https://x.example/in"}}`, 201, nil, channel, ""},
		{"a callback's JSON under a form Content-Type", "POST", "/webhook-response", "application/x-www-form-urlencoded", `{"session_id": "s1", "response_data": 2}`, 200, nil, `{"success": true}`, ""},
		{"a form callback accepted", "POST", "/webhook-response", "application/x-www-form-urlencoded", `session_id=s1&response_data=2`, 200, nil, `{"success": true}`, "refuses"},
		{"a query parameter out of range accepted", "GET", "/subscribers?limit=0", "", "", 200, nil, `{"subscribers": [], "next": null}`, "refuses"},
		{"an undocumented query parameter accepted", "GET", "/channel/c1?expand=everything", "", "", 200, nil, channel, `query parameter "expand" is not documented`},
		{"an undocumented query parameter refused", "GET", "/channel/c1?expand=everything", "", "", 400, nil, `{"error": {"code": "invalid_value", "message": "m", "field": "expand"}}`, ""},
		{"an undocumented route answered 404", "GET", "/no/such/route", "", "", 404, nil, notFound, ""},
		{"an undocumented route served", "GET", "/no/such/route", "", "", 200, nil, `{}`, "does not document"},
		{"an undocumented method answered 405", "DELETE", "/channels", "", "", 405, nil, `{"error": {"code": "method_not_allowed", "message": "no"}}`, ""},
		{"a 404 without the error shape", "GET", "/no/such/route", "", "", 404, nil, `{"message": "no"}`, "error shape"},
	} {
		f.status, f.header, f.body = c.status, c.header, c.body
		var body io.Reader
		if c.reqBody != "" {
			body = strings.NewReader(c.reqBody)
		}
		req, _ := http.NewRequest(c.method, srv.URL+c.path, body)
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		resp, err := client.Do(req)
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.problem)
		}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != c.body {
				t.Errorf("%s: the client read %q, want the answer %q", c.name, b, c.body)
			}
		}
	}
	if n := len(v.Failures()); n != 11 {
		t.Errorf("%d failures recorded, want the 11 above", n)
	}

	// Once released, the host is not checked: anything goes.
	release()
	f.status, f.body = 418, "tea"
	resp, err := client.Get(srv.URL + "/channel/c1")
	if err != nil {
		t.Fatalf("a request to a host no longer registered was checked: %v", err)
	}
	resp.Body.Close()
}
