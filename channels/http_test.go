package channels

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/redisx/redistest"
)

const testMaxBody = 4096

// httpPolicy is the operator's rule set in the HTTP tests: http allowed, private targets not.
var httpPolicy = egress.Policy{AllowHTTP: true, AllowPrivate: false}

type httpBundle struct {
	srv   *httptest.Server
	store *Store
}

// setupHTTP serves the channel API on loopback through a router built the way app builds it,
// with a body limit of testMaxBody.
func setupHTTP(t *testing.T) *httpBundle {
	t.Helper()
	return setupHTTPMax(t, testMaxBody)
}

// setupHTTPMax is setupHTTP with a body limit of maxBody.
func setupHTTPMax(t *testing.T, maxBody int64) *httpBundle {
	t.Helper()
	rdb, prefix := redistest.Shared(t)
	s := NewStore(rdb, prefix, WithPolicy(httpPolicy))
	r := httpx.NewRouter()
	r.Use(httpx.Recover, httpx.Log)
	api := r.NewRoute().Subrouter()
	NewHandler(s, maxBody).Routes(api)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	apitest.Server(t, srv)
	return &httpBundle{srv: srv, store: s}
}

type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (b *httpBundle) do(t *testing.T, method, path, ctype, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	rep := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &rep.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return rep
}

func (b *httpBundle) json(t *testing.T, method, path, body string) reply {
	return b.do(t, method, path, "application/json", body)
}

const seedChannel = `{
  "channel_id": "slack-sim",
  "channel_name": "Slack Simulated Channel",
  "channel_description": "Sends to Slack",
  "channel_tags": ["slack", "test"],
  "channel_metadata": {"endpoint_url": "http://slack-sim.example.com:5001/incoming"}
}`

func TestHTTPLifecycle(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	rep := b.json(t, "POST", "/channel", seedChannel)
	want := `{"channel_id":"slack-sim","channel_name":"Slack Simulated Channel","channel_description":"Sends to Slack","channel_metadata":{"endpoint_url":"http://slack-sim.example.com:5001/incoming"},"channel_tags":["slack","test"]}` + "\n"
	if rep.status != 201 || rep.raw != want {
		t.Fatalf("create: %d %s", rep.status, rep.raw)
	}
	if rep = b.do(t, "GET", "/channel/slack-sim", "", ""); rep.status != 200 || rep.raw != want {
		t.Fatalf("get: %d %s", rep.status, rep.raw)
	}
	// Only an id and an endpoint: every field is still in the answer, tags [] and metadata kept.
	rep = b.do(t, "POST", "/channel", "", `{"channel_id": "min", "channel_metadata": {"endpoint_url": "https://h.example/in", "chat_type": "teams"}}`)
	if rep.status != 201 || rep.raw != `{"channel_id":"min","channel_name":"","channel_description":"","channel_metadata":{"chat_type":"teams","endpoint_url":"https://h.example/in"},"channel_tags":[]}`+"\n" {
		t.Fatalf("create minimal: %d %s", rep.status, rep.raw)
	}
	// The seed's partial update: other fields are kept.
	rep = b.json(t, "PUT", "/channel/slack-sim", `{"channel_description": "Updated"}`)
	if rep.status != 200 || rep.body["channel_description"] != "Updated" || rep.body["channel_name"] != "Slack Simulated Channel" {
		t.Fatalf("put: %d %s", rep.status, rep.raw)
	}
	rep = b.json(t, "PUT", "/channel/slack-sim", `{"channel_id": "slack-sim", "channel_metadata": {"chat_type": "slack", "extra": {"a": 1}}, "channel_tags": ["slack"]}`)
	if rep.status != 200 || !strings.Contains(rep.raw, `"channel_metadata":{"chat_type":"slack","endpoint_url":"http://slack-sim.example.com:5001/incoming","extra":{"a":1}}`) ||
		!strings.Contains(rep.raw, `"channel_tags":["slack"]`) {
		t.Fatalf("put metadata: %d %s", rep.status, rep.raw)
	}
	rep = b.json(t, "PUT", "/channel/slack-sim", `{"channel_metadata": {"extra": null}, "channel_name": null}`)
	if rep.status != 200 || strings.Contains(rep.raw, "extra") || rep.body["channel_name"] != "" {
		t.Fatalf("put null: %d %s", rep.status, rep.raw)
	}
	// The seed's query.
	rep = b.json(t, "POST", "/channels", `{"channel_tags": {"$in": ["slack"]}}`)
	if rep.status != 200 || !strings.HasPrefix(rep.raw, `{"channels":[{"channel_id":"slack-sim",`) || !strings.HasSuffix(rep.raw, `"next":null}`+"\n") {
		t.Fatalf("query: %d %s", rep.status, rep.raw)
	}
	rep = b.json(t, "POST", "/channels", `{"channel_tags": "nothing"}`)
	if rep.status != 200 || rep.raw != `{"channels":[],"next":null}`+"\n" {
		t.Fatalf("empty query: %d %s", rep.status, rep.raw)
	}
	// Paging through everything, with an empty body meaning {}.
	var seen []string
	path := "/channels?limit=1"
	for range 5 {
		rep = b.do(t, "POST", path, "", "")
		if rep.status != 200 {
			t.Fatalf("page: %d %s", rep.status, rep.raw)
		}
		for _, c := range rep.body["channels"].([]any) {
			seen = append(seen, c.(map[string]any)["channel_id"].(string))
		}
		next, ok := rep.body["next"].(string)
		if !ok {
			break
		}
		path = "/channels?limit=1&after=" + url.QueryEscape(next)
	}
	if strings.Join(seen, ",") != "min,slack-sim" {
		t.Fatalf("paged %v", seen)
	}
	if rep = b.do(t, "DELETE", "/channel/slack-sim", "", ""); rep.status != 200 || rep.raw != `{"channel_id":"slack-sim","deleted":true}`+"\n" {
		t.Fatalf("delete: %d %s", rep.status, rep.raw)
	}
	if rep = b.do(t, "GET", "/channel/slack-sim", "", ""); rep.status != 404 {
		t.Fatalf("get deleted: %d %s", rep.status, rep.raw)
	}
	checkIndex(t, b.store)
}

// TestHTTPErrors: every bad request is answered with its status, error code and field, and changes
// nothing.
func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	if rep := b.json(t, "POST", "/channel", seedChannel); rep.status != 201 {
		t.Fatalf("create: %d %s", rep.status, rep.raw)
	}
	before := b.do(t, "GET", "/channel/slack-sim", "", "").raw
	for _, tc := range httpErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			rep := b.do(t, tc.method, tc.path, tc.ctype, tc.body)
			e, _ := rep.body["error"].(map[string]any)
			field, _ := e["field"].(string)
			if rep.status != tc.status || e["code"] != tc.code || field != tc.field || e["message"] == "" {
				t.Errorf("%s: %d %s; want %d %s field=%q", tc.name, rep.status, rep.raw, tc.status, tc.code, tc.field)
			}
		})
	}
	// Nothing was half-written: the one channel is as it was, and the indexes know only it.
	if after := b.do(t, "GET", "/channel/slack-sim", "", "").raw; after != before {
		t.Fatalf("failed requests changed the channel:\n%s\n%s", before, after)
	}
	rep := b.json(t, "POST", "/channels", `{}`)
	if list := rep.body["channels"].([]any); len(list) != 1 {
		t.Fatalf("channels after failed requests: %s", rep.raw)
	}
	checkIndex(t, b.store)
}

// httpErrorCases are the requests TestHTTPErrors makes after creating seedChannel, each with the
// status, error code and error field of its answer.
var httpErrorCases = []struct {
	name, method, path, ctype, body string
	status                          int
	code, field                     string
}{
	{"bad json", "POST", "/channel", "application/json", `{"channel_id": "x",`, 400, httpx.CodeInvalidJSON, ""},
	{"not json at all", "POST", "/channel", "application/json", `hello`, 400, httpx.CodeInvalidJSON, ""},
	{"empty body", "POST", "/channel", "application/json", ``, 400, httpx.CodeInvalidJSON, ""},
	{"array body", "POST", "/channel", "application/json", `[1]`, 400, httpx.CodeInvalidValue, ""},
	{"trailing data", "POST", "/channel", "application/json", `{"channel_id": "x", ` + httpErrorEndpoint + `} {}`, 400, httpx.CodeInvalidJSON, ""},
	{"unknown field", "POST", "/channel", "application/json", `{"channel_id": "x", "owner": "me", ` + httpErrorEndpoint + `}`, 400, httpx.CodeUnknownField, "owner"},
	{"missing id", "POST", "/channel", "application/json", `{` + httpErrorEndpoint + `}`, 400, httpx.CodeMissingField, "channel_id"},
	{"null id", "POST", "/channel", "application/json", `{"channel_id": null, ` + httpErrorEndpoint + `}`, 400, httpx.CodeMissingField, "channel_id"},
	{"id wrong type", "POST", "/channel", "application/json", `{"channel_id": 7, ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"bad id", "POST", "/channel", "application/json", `{"channel_id": "a/b", ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"long id", "POST", "/channel", "application/json", `{"channel_id": "` + strings.Repeat("a", 129) + `", ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"name wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_name": 1, ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_name"},
	{"description wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_description": [], ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_description"},
	{"tags wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_tags": "slack", ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_tags"},
	{"tag wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_tags": ["a", 1], ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_tags"},
	{"empty tag", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_tags": [""], ` + httpErrorEndpoint + `}`, 400, httpx.CodeInvalidValue, "channel_tags"},
	{"metadata wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": ["a"]}`, 400, httpx.CodeInvalidValue, "channel_metadata"},
	{"missing metadata", "POST", "/channel", "application/json", `{"channel_id": "x"}`, 400, httpx.CodeMissingField, "channel_metadata.endpoint_url"},
	{"missing endpoint", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"chat_type": "slack"}}`, 400, httpx.CodeMissingField, "channel_metadata.endpoint_url"},
	{"endpoint wrong type", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"endpoint_url": 5}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"endpoint relative", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"endpoint_url": "/incoming"}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"endpoint scheme", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"endpoint_url": "ftp://h.example/x"}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"endpoint loopback", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"endpoint_url": "http://127.0.0.1:5001/incoming"}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"endpoint metadata address", "POST", "/channel", "application/json", `{"channel_id": "x", "channel_metadata": {"endpoint_url": "http://169.254.169.254/latest"}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"exists", "POST", "/channel", "application/json", seedChannel, 409, httpx.CodeConflict, ""},
	{"too large", "POST", "/channel", "application/json", httpErrorBig, 413, httpx.CodeTooLarge, ""},
	{"content type", "POST", "/channel", "text/plain", `{"channel_id": "x", ` + httpErrorEndpoint + `}`, 415, httpx.CodeUnsupportedMedia, ""},
	{"form content type", "PUT", "/channel/slack-sim", "application/x-www-form-urlencoded", `channel_name=x`, 415, httpx.CodeUnsupportedMedia, ""},
	{"method on /channel", "GET", "/channel", "", ``, 405, httpx.CodeMethodNotAllowed, ""},
	{"method on /channel/{id}", "PATCH", "/channel/slack-sim", "application/json", `{}`, 405, httpx.CodeMethodNotAllowed, ""},
	{"method on /channels", "GET", "/channels", "", ``, 405, httpx.CodeMethodNotAllowed, ""},
	{"get unknown", "GET", "/channel/nope", "", ``, 404, httpx.CodeNotFound, ""},
	{"get bad id", "GET", "/channel/a%20b", "", ``, 400, httpx.CodeInvalidValue, "channel_id"},
	{"put unknown", "PUT", "/channel/nope", "application/json", `{"channel_name": "x"}`, 404, httpx.CodeNotFound, ""},
	{"put bad id", "PUT", "/channel/" + strings.Repeat("a", 129), "application/json", `{}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"put other id", "PUT", "/channel/slack-sim", "application/json", `{"channel_id": "other"}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"put id wrong type", "PUT", "/channel/slack-sim", "application/json", `{"channel_id": 1}`, 400, httpx.CodeInvalidValue, "channel_id"},
	{"put remove endpoint", "PUT", "/channel/slack-sim", "application/json", `{"channel_metadata": {"endpoint_url": null}}`, 400, httpx.CodeMissingField, "channel_metadata.endpoint_url"},
	{"put null metadata", "PUT", "/channel/slack-sim", "application/json", `{"channel_metadata": null}`, 400, httpx.CodeInvalidValue, "channel_metadata"},
	{"put private endpoint", "PUT", "/channel/slack-sim", "application/json", `{"channel_metadata": {"endpoint_url": "http://10.1.2.3/"}}`, 400, httpx.CodeInvalidValue, "channel_metadata.endpoint_url"},
	{"put tags wrong type", "PUT", "/channel/slack-sim", "application/json", `{"channel_tags": {"a": 1}}`, 400, httpx.CodeInvalidValue, "channel_tags"},
	{"put too many tags", "PUT", "/channel/slack-sim", "application/json", `{"channel_tags": [` + manyTagsJSON(MaxTags+1) + `]}`, 400, httpx.CodeInvalidValue, "channel_tags"},
	{"put unknown field", "PUT", "/channel/slack-sim", "application/json", `{"channel_owner": "x"}`, 400, httpx.CodeUnknownField, "channel_owner"},
	{"put bad json", "PUT", "/channel/slack-sim", "application/json", `{"channel_name": }`, 400, httpx.CodeInvalidJSON, ""},
	{"put too large", "PUT", "/channel/slack-sim", "application/json", httpErrorBig, 413, httpx.CodeTooLarge, ""},
	{"delete unknown", "DELETE", "/channel/nope", "", ``, 404, httpx.CodeNotFound, ""},
	{"delete bad id", "DELETE", "/channel/a%21b", "", ``, 400, httpx.CodeInvalidValue, "channel_id"},
	{"query unknown operator", "POST", "/channels", "application/json", `{"channel_tags": {"$regex": "^s"}}`, 400, CodeUnknownOperator, "channel_tags"},
	{"query unknown field", "POST", "/channels", "application/json", `{"owner": "x"}`, 400, httpx.CodeUnknownField, "owner"},
	{"query not object", "POST", "/channels", "application/json", `["slack"]`, 400, httpx.CodeInvalidValue, ""},
	{"query bad json", "POST", "/channels", "application/json", `{"channel_tags": `, 400, httpx.CodeInvalidJSON, ""},
	{"query limit zero", "POST", "/channels?limit=0", "application/json", `{}`, 400, httpx.CodeInvalidValue, "limit"},
	{"query limit big", "POST", "/channels?limit=1001", "application/json", `{}`, 400, httpx.CodeInvalidValue, "limit"},
	{"query limit text", "POST", "/channels?limit=ten", "application/json", `{}`, 400, httpx.CodeInvalidValue, "limit"},
	{"query bad cursor", "POST", "/channels?after=%21%21", "application/json", `{}`, 400, httpx.CodeInvalidValue, "after"},
	{"query cursor not an id", "POST", "/channels?after=" + EncodeCursor("a b"), "application/json", `{}`, 400, httpx.CodeInvalidValue, "after"},
	{"query too large", "POST", "/channels", "application/json", `{"channel_id": "` + strings.Repeat("x", testMaxBody) + `"}`, 413, httpx.CodeTooLarge, ""},
	{"query content type", "POST", "/channels", "text/xml", `<q/>`, 415, httpx.CodeUnsupportedMedia, ""},
}

var (
	// httpErrorEndpoint is a valid channel_metadata member, for bodies that must fail elsewhere.
	httpErrorEndpoint = `"channel_metadata": {"endpoint_url": "https://h.example/in"}`
	// httpErrorBig is a channel document over the body limit.
	httpErrorBig = `{"channel_id": "big", "channel_description": "` + strings.Repeat("x", testMaxBody) + `", "channel_metadata": {"endpoint_url": "https://h.example/"}}`
)

func manyTagsJSON(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%q", fmt.Sprint("t", i))
	}
	return strings.Join(parts, ",")
}

// TestHTTPStoreDown: with Redis gone every route answers 503 with Retry-After, not 500.
func TestHTTPStoreDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1}) // fail fast, no retry backoff
	t.Cleanup(func() { rdb.Close() })
	s := NewStore(rdb, "down", WithPolicy(httpPolicy))
	r := httpx.NewRouter()
	NewHandler(s, testMaxBody).Routes(r)
	hs := httptest.NewServer(r)
	t.Cleanup(hs.Close)
	apitest.Server(t, hs)
	b := &httpBundle{srv: hs, store: s}
	if rep := b.json(t, "POST", "/channel", seedChannel); rep.status != 201 {
		t.Fatalf("create: %d %s", rep.status, rep.raw)
	}
	srv.Kill()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/channel/slack-sim", ""},
		{"POST", "/channel", strings.Replace(seedChannel, "slack-sim\"", "other\"", 1)},
		{"PUT", "/channel/slack-sim", `{"channel_name": "x"}`},
		{"DELETE", "/channel/slack-sim", ""},
		{"POST", "/channels", `{"channel_tags": "slack"}`},
	} {
		rep := b.json(t, c.method, c.path, c.body)
		if rep.status != 503 || rep.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: %d %s", c.method, c.path, rep.status, rep.raw)
		}
	}
}

// TestHTTPRacingCreates: many clients create the same channel at once; exactly one gets 201.
func TestHTTPRacingCreates(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	const n = 24
	statuses := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := strings.Replace(seedChannel, `"Sends to Slack"`, fmt.Sprintf(`"client %d"`, i), 1)
			resp, err := b.srv.Client().Post(b.srv.URL+"/channel", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
	checkIndex(t, b.store)
}
