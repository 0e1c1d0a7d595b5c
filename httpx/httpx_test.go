package httpx_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
)

type errBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func decodeErr(t *testing.T, rec *httptest.ResponseRecorder) errBody {
	t.Helper()
	var b errBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, rec.Body.String())
	}
	if b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("error body lacks code or message: %q", rec.Body.String())
	}
	return b
}

type sample struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Inner struct {
		On bool `json:"on"`
	} `json:"inner"`
}

func TestDecode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, ct, body   string
		status           int
		code, field, msg string
	}{
		{"ok", "application/json", `{"name":"a","count":2}`, 200, "", "", ""},
		{"ok without content type", "", `{"name":"a"}`, 200, "", "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{}`, 200, "", "", ""},
		{"empty", "application/json", ``, 400, httpx.CodeInvalidJSON, "", "empty"},
		{"syntax", "application/json", `{"name":`, 400, httpx.CodeInvalidJSON, "", "truncated"},
		{"bad char", "application/json", `{"name" x}`, 400, httpx.CodeInvalidJSON, "", "not valid JSON"},
		{"wrong type", "application/json", `{"count":"x"}`, 400, httpx.CodeInvalidValue, "count", "integer"},
		{"wrong nested type", "application/json", `{"inner":{"on":1}}`, 400, httpx.CodeInvalidValue, "inner.on", "boolean"},
		{"wrong list", "application/json", `{"tags":"x"}`, 400, httpx.CodeInvalidValue, "tags", "list"},
		{"unknown field", "application/json", `{"nme":"a"}`, 400, httpx.CodeUnknownField, "nme", "nme"},
		{"trailing", "application/json", `{"name":"a"} {}`, 400, httpx.CodeInvalidJSON, "", "after"},
		{"not an object", "application/json", `[1]`, 400, httpx.CodeInvalidValue, "", ""},
		{"media type", "text/plain", `{}`, 415, httpx.CodeUnsupportedMedia, "", "application/json"},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", 2048) + `"}`, 413, httpx.CodeTooLarge, "", "1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			rec := httptest.NewRecorder()
			var v sample
			err := httpx.Decode(rec, req, 1024, &v)
			if c.status == 200 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			var he *httpx.Error
			if !errors.As(err, &he) {
				t.Fatalf("want *httpx.Error, got %v", err)
			}
			if he.Status != c.status || he.Code != c.code || he.Field != c.field {
				t.Fatalf("got %d %s field=%q (%s), want %d %s field=%q", he.Status, he.Code, he.Field, he.Message, c.status, c.code, c.field)
			}
			if !strings.Contains(he.Message, c.msg) {
				t.Fatalf("message %q does not mention %q", he.Message, c.msg)
			}
		})
	}
}

func TestRouterJSON404And405AndRecover(t *testing.T) {
	t.Parallel()
	r := httpx.NewRouter()
	r.Use(httpx.Recover)
	r.Handle("/thing", httpx.Handle(func(w http.ResponseWriter, r *http.Request) error {
		return httpx.Invalid("x", "x is wrong")
	})).Methods(http.MethodGet)
	r.Handle("/boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	r.Handle("/fault", httpx.Handle(func(http.ResponseWriter, *http.Request) error { return errors.New("secret detail") }))

	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, httpx.CodeNotFound},
		{"DELETE", "/thing", 405, httpx.CodeMethodNotAllowed},
		{"GET", "/thing", 400, httpx.CodeInvalidValue},
		{"GET", "/boom", 500, httpx.CodeInternal},
		{"GET", "/fault", 500, httpx.CodeInternal},
	} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status {
			t.Fatalf("%s %s: status %d, want %d", c.method, c.path, rec.Code, c.status)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		b := decodeErr(t, rec)
		if b.Error.Code != c.code {
			t.Fatalf("%s %s: code %q want %q", c.method, c.path, b.Error.Code, c.code)
		}
		if strings.Contains(rec.Body.String(), "secret detail") || strings.Contains(rec.Body.String(), "kaboom") {
			t.Fatalf("internal detail leaked: %s", rec.Body.String())
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	h := httpx.Auth(httpx.AuthConfig{Keys: []string{"0123456789abcdef-key"}, Open: []string{"/healthz"}})(ok)
	for _, c := range []struct {
		path, auth string
		status     int
	}{
		{"/x", "", 401},
		{"/x", "Bearer wrong-key-xxxxxxxxxx", 401},
		{"/x", "Basic 0123456789abcdef-key", 401},
		{"/x", "Bearer", 401},
		{"/x", "Bearer ", 401},
		{"/x", "Bearer0123456789abcdef-key", 401},
		{"/x", "Bearer 0123456789abcdef-key", 204},
		{"/x", "bearer 0123456789abcdef-key", 204}, // the scheme is case-insensitive (RFC 7235)
		{"/x", "BEARER 0123456789abcdef-key", 204},
		{"/x", "Bearer   0123456789abcdef-key", 204},
		{"/healthz", "", 204},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Fatalf("%s with %q: %d, want %d", c.path, c.auth, rec.Code, c.status)
		}
		if rec.Code == 401 {
			decodeErr(t, rec)
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 for %q: WWW-Authenticate %q, want the Bearer challenge", c.auth, rec.Header().Get("WWW-Authenticate"))
			}
		}
	}
	// No keys: everything passes.
	rec := httptest.NewRecorder()
	httpx.Auth(httpx.AuthConfig{})(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 204 {
		t.Fatalf("no keys: %d", rec.Code)
	}
}

// Wrong keys from one client are answered 429 with Retry-After once it has sent Failures of them
// in a window, while its valid key, other clients and missing keys are not affected; when the
// window ends it gets 401 again.
func TestAuthThrottlesWrongKeys(t *testing.T) {
	t.Parallel()
	const key = "0123456789abcdef-key"
	srv := httptest.NewServer(httpx.Auth(httpx.AuthConfig{Keys: []string{key}, Failures: 3, Window: 500 * time.Millisecond})(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })))
	t.Cleanup(srv.Close)
	get := func(auth string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var codes []int
	for range 5 {
		codes = append(codes, get("Bearer wrong-key-"+t.Name()).StatusCode)
	}
	if fmt.Sprint(codes) != "[401 401 401 429 429]" {
		t.Fatalf("five wrong keys: %v, want three 401 then 429", codes)
	}
	resp := get("Bearer wrong-again")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A throttled client learns nothing of any key until the window ends.
	for _, auth := range []string{"Bearer " + key, ""} {
		if c := get(auth).StatusCode; c != 429 {
			t.Fatalf("%q from the throttled client: %d, want 429", auth, c)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the window to end", func() bool {
		return get("Bearer "+key).StatusCode == 204
	})
	if c := get("Bearer wrong-key").StatusCode; c != 401 {
		t.Fatalf("a wrong key in the next window: %d, want 401", c)
	}
}

func TestCheckListenAuth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr    string
		keys    []string
		allow   bool
		wantErr bool
	}{
		{"127.0.0.1:8000", nil, false, false},
		{"[::1]:8000", nil, false, false},
		{"localhost:8000", nil, false, false},
		{"0.0.0.0:8000", nil, false, true},
		{":8000", nil, false, true},
		{"10.0.0.5:8000", nil, false, true},
		{"0.0.0.0:8000", []string{"k"}, false, false},
		{"0.0.0.0:8000", nil, true, false},
	} {
		err := httpx.CheckListenAuth(c.addr, c.keys, c.allow)
		if (err != nil) != c.wantErr {
			t.Fatalf("CheckListenAuth(%q, %v, %v) = %v", c.addr, c.keys, c.allow, err)
		}
	}
}

func TestRateLimitSharedInRedis(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	lim := redis_rate.NewLimiter(rdb)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	limit := redis_rate.Limit{Rate: 3, Burst: 3, Period: time.Minute}
	// Two middlewares on one Redis stand for two herald processes: they share the budget.
	h1 := httpx.RateLimit(lim, prefix, limit, "/healthz")(ok)
	h2 := httpx.RateLimit(redis_rate.NewLimiter(rdb), prefix, limit, "/healthz")(ok)
	statuses := []int{}
	for i, h := range []http.Handler{h1, h2, h1, h2} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/x", nil)
		req.RemoteAddr = "192.0.2.7:1234"
		h.ServeHTTP(rec, req)
		statuses = append(statuses, rec.Code)
		if rec.Header().Get("X-RateLimit-Limit") != "3" || rec.Header().Get("X-RateLimit-Remaining") == "" || rec.Header().Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d: rate-limit headers missing: %v", i, rec.Header())
		}
		if rec.Code == 429 {
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After")
			}
			decodeErr(t, rec)
		}
	}
	if statuses[0] != 204 || statuses[1] != 204 || statuses[2] != 204 || statuses[3] != 429 {
		t.Fatalf("statuses %v, want 3 x 204 then 429", statuses)
	}
	// Another caller has its own budget; open paths are not limited.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.RemoteAddr = "192.0.2.8:1234"
	h1.ServeHTTP(rec, req)
	if rec.Code != 204 {
		t.Fatalf("second caller: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "192.0.2.7:1234"
	h1.ServeHTTP(rec, req)
	if rec.Code != 204 {
		t.Fatalf("open path limited: %d", rec.Code)
	}
}

func TestRateLimitStoreDownIs503(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	h := httpx.RateLimit(redis_rate.NewLimiter(rdb), "p", redis_rate.PerSecond(10))(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	srv.Kill()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("store down: %d %v", rec.Code, rec.Header())
	}
	decodeErr(t, rec)
}

func TestStrictQuery(t *testing.T) {
	t.Parallel()
	h := httpx.StrictQuery(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for q, want := range map[string]int{"": 204, "?limit=5&after=abc": 204, "?after=%%%": 400, "?a=%zz": 400} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/x"+q, nil))
		if rec.Code != want {
			t.Fatalf("%q: %d, want %d", q, rec.Code, want)
		}
		if want == 400 {
			decodeErr(t, rec)
		}
	}
}

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"", 100, true}, {"1", 1, true}, {"1000", 1000, true}, {"1001", 0, false}, {"0", 0, false}, {"-3", 0, false}, {"ten", 0, false}} {
		got, err := httpx.ParseLimit(c.in, 100, 1000)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseLimit(%q) = %d, %v", c.in, got, err)
		}
		var he *httpx.Error
		if err != nil && (!errors.As(err, &he) || he.Status != 400 || he.Field != "limit" || !strings.Contains(he.Message, "1 to 1000")) {
			t.Errorf("ParseLimit(%q) error %#v", c.in, err)
		}
	}
}

func TestTruncate(t *testing.T) {
	for in, want := range map[string]string{"short": "short", "abcdefgh": "abcde...", "héllo wörld": "héll...", "abcd€": "abcd...", "abc€d": "abc..."} {
		if got := httpx.Truncate(in, 5); got != want {
			t.Errorf("Truncate(%q, 5) = %q, want %q", in, got, want)
		}
	}
}
