package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
)

// request is one API call of a test's list.
type request struct{ method, path, body string }

// wantUnavailable checks the answer the contract gives when the store cannot serve: 503, a JSON
// error coded "unavailable", and a Retry-After.
func wantUnavailable(t *testing.T, what string, resp *http.Response, m map[string]any) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable || errCode(m) != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d %v (Retry-After %q), want 503 unavailable with Retry-After",
			what, resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
}

// A Redis that reached maxmemory with noeviction answers reads but refuses writes: /readyz says
// so (503 with the reason), every write request gets 503 with Retry-After (never 500), and both
// recover once Redis has room again.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	rdb := srv.Client(t)
	rec := newLogRecorder()
	cfg := testConfig(t)
	cfg.Redis.URL = "redis://" + srv.Addr
	cfg.APIRateLimit = 0 // the limiter would refuse first (it writes too): reach the handlers
	base, _, _ := serveLog(t, cfg, slog.New(rec))

	do(t, "POST", base+"/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`)
	_, sub := do(t, "POST", base+"/subscribers", "", `{"url": "http://127.0.0.1:9/hook"}`)
	do(t, "POST", base+"/channel/message", "", `{"channel_id": "c1", "session_id": "s1", "message": "m", "response_url": "http://127.0.0.1:9/cb"}`)

	ctx := context.Background()
	if err := rdb.Set(ctx, "filler", strings.Repeat("x", 2<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	resp, m := do(t, "GET", base+"/readyz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(m["reason"].(string), "maxmemory") {
		t.Errorf("readyz with Redis full: %d %v, want 503 naming maxmemory", resp.StatusCode, m)
	}
	for _, r := range []request{
		{"POST", "/channel", `{"channel_id": "c2", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`},
		{"PUT", "/channel/c1", `{"channel_description": "changed"}`},
		{"POST", "/subscribers", `{"url": "http://127.0.0.1:9/hook2"}`},
		{"PATCH", "/subscribers/" + sub["id"].(string), `{"description": "changed"}`},
		{"POST", "/subscribers/" + sub["id"].(string) + "/rotate-secret", ``},
		{"POST", "/channel/c1/notify", `{"type": "republish_request"}`},
		{"POST", "/channel/message", `{"channel_id": "c1", "session_id": "s2", "message": "m"}`},
		{"POST", "/webhook-response", `{"session_id": "s1", "response_data": "r"}`},
	} {
		resp, m := do(t, r.method, base+r.path, "", r.body)
		wantUnavailable(t, r.method+" "+r.path, resp, m)
	}
	// Deleting frees memory, so a full Redis may allow it; it must not break either.
	for _, r := range []request{{"DELETE", "/subscribers/" + sub["id"].(string), ``}, {"DELETE", "/channel/c1", ``}} {
		if resp, m := do(t, r.method, base+r.path, "", r.body); resp.StatusCode != 200 {
			wantUnavailable(t, r.method+" "+r.path, resp, m)
		}
	}
	wantLoggedAsWarnings(t, rec, "a full Redis")

	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "readyz to recover once Redis has room", func() bool {
		resp, _ := do(t, "GET", base+"/readyz", "", "")
		return resp.StatusCode == 200
	})
	if resp, m := do(t, "POST", base+"/channel", "", `{"channel_id": "c2", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`); resp.StatusCode != 201 {
		t.Fatalf("create after Redis has room: %d %v", resp.StatusCode, m)
	}
}

// wantReady checks the daemon at base answers /readyz 200: it serves, and its Redis is fine.
func wantReady(t *testing.T, base string) {
	t.Helper()
	if resp, m := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz before the fault: %d %v", resp.StatusCode, m)
	}
}

// proxiedConfig is a daemon config whose Redis is srv behind a faultProxy.
func proxiedConfig(t *testing.T) (app.Config, *faultProxy) {
	t.Helper()
	srv := redistest.Start(t)
	p := newFaultProxy(t, srv.Addr)
	cfg := testConfig(t)
	cfg.Redis.URL = "redis://" + p.Addr
	cfg.APIRateLimit = 0
	return cfg, p
}

// Requests under way when Redis dies (their connections reset, or closed mid-reply: EOF, and so
// is every reconnect) are answered 503 with Retry-After, not 500, and logged as warnings, not
// errors.
func TestRedisDiesMidRequest(t *testing.T) {
	t.Parallel()
	for _, reset := range []bool{true, false} {
		name := map[bool]string{true: "reset", false: "EOF"}[reset]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, p := proxiedConfig(t)
			rec := newLogRecorder()
			base, a, _ := serveLog(t, cfg, slog.New(rec))
			entered := countRequests(a)
			for _, id := range []string{"cn-inflight", "cm-inflight", "cg-inflight"} {
				do(t, "POST", base+"/channel", "", `{"channel_id": "`+id+`", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`)
			}
			_, sub := do(t, "POST", base+"/subscribers", "", `{"url": "http://127.0.0.1:9/hook"}`)
			wantReady(t, base)

			p.Hang()
			t.Cleanup(func() { p.Drop(reset) }) // before the daemon's stop, should the test end early
			before := entered.Load()
			inFlight := []request{
				{"POST", "/channel", `{"channel_id": "c1-inflight", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`},
				{"PATCH", "/subscribers/" + sub["id"].(string), `{"description": "changed"}`},
				{"POST", "/channel/cn-inflight/notify", `{"type": "republish_request"}`},
				{"POST", "/channel/message", `{"channel_id": "cm-inflight", "session_id": "s1", "message": "m"}`},
				{"GET", "/channel/cg-inflight", ``},
			}
			var wg sync.WaitGroup
			for _, r := range inFlight {
				wg.Go(func() {
					resp, m := do(t, r.method, base+r.path, "", r.body)
					wantUnavailable(t, r.method+" "+r.path+" as Redis died", resp, m)
				})
			}
			testutil.Eventually(t, 5*time.Second, "the requests to reach herald", func() bool {
				return entered.Load()-before == int64(len(inFlight))
			})
			// Those that name their channel in their first Redis call are seen waiting on it.
			for _, word := range []string{"c1-inflight", "cn-inflight", "cm-inflight", "cg-inflight"} {
				testutil.Eventually(t, 5*time.Second, "a Redis call naming "+word, func() bool { return p.Holding(word) })
			}
			p.Drop(reset)
			wg.Wait()
			wantLoggedAsWarnings(t, rec, "Redis going away")
		})
	}
}

// countRequests counts the requests that reach a's routes from now on. Call it before the first
// request.
func countRequests(a *app.App) *atomic.Int64 {
	var n atomic.Int64
	a.Router.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	return &n
}

// /readyz against a Redis that accepts connections but answers nothing answers within its
// checks' budget (2 s), with 503 and the reason.
func TestReadyzHungRedis(t *testing.T) {
	t.Parallel()
	cfg, p := proxiedConfig(t)
	base, _, _ := serve(t, cfg)
	wantReady(t, base)
	p.Hang()
	t.Cleanup(p.Resume)
	start := time.Now()
	resp, m := do(t, "GET", base+"/readyz", "", "")
	took := time.Since(start)
	if reason, _ := m["reason"].(string); resp.StatusCode != 503 || !strings.Contains(reason, "did not answer") {
		t.Errorf("readyz with Redis hung: %d %v, want 503 saying Redis did not answer", resp.StatusCode, m)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("readyz took %s with Redis hung, want its 2 s budget", took)
	}
}

// /metrics, /healthz and /readyz answer while Redis is down: none of them waits for the store's
// rate limiter (which answered /metrics 503 when Redis was down).
func TestOperationsRoutesWithoutRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	base, _ := start(t, func(c *app.Config) {
		c.Redis.URL = "redis://" + srv.Addr
		c.APIKeys = []string{testKey}
	})
	wantReady(t, base)
	srv.Kill()
	if resp, _ := do(t, "GET", base+"/metrics", testKey, ""); resp.StatusCode != 200 {
		t.Errorf("/metrics with Redis down: %d, want 200", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz with Redis down: %d, want 200", resp.StatusCode)
	}
	if resp, m := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 503 {
		t.Errorf("/readyz with Redis down: %d %v, want 503", resp.StatusCode, m)
	}
	if resp, _ := do(t, "GET", base+"/metrics", "", ""); resp.StatusCode != 401 {
		t.Errorf("/metrics without the key: %d, want 401 still", resp.StatusCode)
	}
}

// A client that half-closes its connection after sending its request (shutdown(SHUT_WR), as
// `nc -N` and some proxies do) still gets its answer: the request is served, not cancelled into a
// 500 with an ERROR log.
func TestHalfClosedClient(t *testing.T) {
	t.Parallel()
	rec := newLogRecorder()
	cfg := testConfig(t)
	base, _, _ := serveLog(t, cfg, slog.New(rec))
	body := `{"channel_id": "half", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in"}}`
	for i := range 5 {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		id := "half-" + string(rune('a'+i))
		b := strings.Replace(body, `"half"`, `"`+id+`"`, 1)
		_, _ = io.WriteString(c, "POST /channel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"+
			"Content-Length: "+strconv.Itoa(len(b))+"\r\n\r\n"+b)
		_ = c.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(out), "HTTP/1.1 201") {
			t.Errorf("half-closed request %d: %.80q, want 201", i, out)
		}
	}
	if errs := rec.messages(slog.LevelError); len(errs) > 0 {
		t.Errorf("half-closed clients were logged as errors: %q", errs)
	}
}

// wantLoggedAsWarnings checks that the store's failures, what, reached the daemon's log as
// warnings ("request failed") and none as an error.
func wantLoggedAsWarnings(t *testing.T, rec logRecorder, what string) {
	t.Helper()
	if errs := rec.messages(slog.LevelError); len(errs) > 0 {
		t.Errorf("%s was logged as errors: %q", what, errs)
	}
	if !slices.Contains(rec.messages(slog.LevelWarn), "request failed") {
		t.Errorf("%s was not logged (want a warning \"request failed\")", what)
	}
}
