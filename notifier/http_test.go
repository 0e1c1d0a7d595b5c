package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

func apiServer(t *testing.T, e *Engine) *httptest.Server {
	r := httpx.NewRouter()
	e.Routes(r)
	s := httptest.NewServer(r)
	t.Cleanup(s.Close)
	apitest.Server(t, s)
	return s
}

func call(t *testing.T, method, url string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, b)
	}
	return resp.StatusCode, m, resp.Header
}

func errField(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

// The deliveries API on seven dead letters of subscriber s1 (events e0 and e1): read one, page
// through them, filter, refuse bad queries naming the field, and replay.
func TestDeliveriesAPI(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{10 * time.Millisecond}; c.BreakerFailures = 100 })
	rc, fail := failingReceiver(t, http.StatusNotFound, true)
	putEndpoint(t, e, Endpoint{ID: "sub:s1", URL: rc.URL})
	var reqs []Request
	for i := range 7 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("d%d", i), EndpointID: "sub:s1", SubscriberID: "s1", EventID: fmt.Sprintf("e%d", i%2), Body: []byte(`{}`)})
	}
	enqueue(t, e, reqs...)
	for _, r := range reqs {
		waitStatus(t, e, r.ID, StatusFailed, 5*time.Second)
	}
	api := apiServer(t, e)
	t.Run("get", func(t *testing.T) { testGetDelivery(t, api.URL) })
	t.Run("paging", func(t *testing.T) { testPageFailed(t, api.URL) })
	t.Run("filters", func(t *testing.T) {
		code, m, _ := call(t, "GET", api.URL+"/deliveries?event_id=e0")
		if ds := m["deliveries"].([]any); code != 200 || len(ds) != 4 {
			t.Errorf("by event: %d %d", code, len(ds))
		}
		code, m, _ = call(t, "GET", api.URL+"/deliveries?status=delivered")
		if ds := m["deliveries"].([]any); code != 200 || len(ds) != 0 {
			t.Errorf("delivered: %d %v", code, ds)
		}
	})
	t.Run("bad queries name the field", func(t *testing.T) {
		for q, field := range map[string]string{
			"status=done": "status", "limit=0": "limit", "limit=x": "limit", "after=!!": "after",
			"after=Zm9v": "after", "subscriber_id=a%20b": "subscriber_id", "colour=red": "colour",
		} {
			code, m, _ := call(t, "GET", api.URL+"/deliveries?"+q)
			if code != 400 || errField(m) != field {
				t.Errorf("?%s: %d %v, want 400 naming %s", q, code, m, field)
			}
		}
	})
	fail.Store(false)
	t.Run("replay", func(t *testing.T) { testReplay(t, e, api.URL) })
}

// testGetDelivery: GET /deliveries/{id} shows the record with its attempts; an unknown id is 404.
func testGetDelivery(t *testing.T, api string) {
	code, m, _ := call(t, "GET", api+"/deliveries/d1")
	if code != 200 || m["id"] != "d1" || m["status"] != "failed" || m["event_id"] != "e1" || m["subscriber_id"] != "s1" {
		t.Fatalf("get: %d %v", code, m)
	}
	if atts, _ := m["attempts"].([]any); len(atts) != 2 {
		t.Errorf("attempts %v", m["attempts"])
	} else if a := atts[0].(map[string]any); a["status_code"] != 404.0 || a["error"] == "" || a["at"] == nil {
		t.Errorf("attempt %v", a)
	}
	if _, ok := m["next_attempt_at"]; !ok || m["next_attempt_at"] != nil {
		t.Errorf("next_attempt_at %v, want null", m["next_attempt_at"])
	}
	if code, m, _ := call(t, "GET", api+"/deliveries/nope"); code != 404 {
		t.Errorf("unknown: %d %v", code, m)
	}
}

// testPageFailed pages through the failed deliveries of s1, 3 at a time, newest first: each
// once, and next is null at the end.
func testPageFailed(t *testing.T, api string) {
	seen := map[string]bool{}
	url := api + "/deliveries?status=failed&subscriber_id=s1&limit=3"
	for pages := 1; ; pages++ {
		code, m, _ := call(t, "GET", url)
		if code != 200 {
			t.Fatalf("list: %d %v", code, m)
		}
		for _, d := range m["deliveries"].([]any) {
			id := d.(map[string]any)["id"].(string)
			if seen[id] {
				t.Errorf("%s twice", id)
			}
			seen[id] = true
		}
		next, _ := m["next"].(string)
		if next == "" {
			if m["next"] != nil {
				t.Errorf("next %v, want null", m["next"])
			}
			break
		}
		url = api + "/deliveries?status=failed&subscriber_id=s1&limit=3&after=" + next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 {
		t.Errorf("paged through %d deliveries, want 7", len(seen))
	}
}

// testReplay: a replay answers 202 and pending (or already delivered: the receiver is quick); a
// second replay while pending is 409; an unknown id is 404.
func testReplay(t *testing.T, e *Engine, api string) {
	code, m, _ := call(t, "POST", api+"/deliveries/d3/retry")
	if code != 202 || (m["status"] != "pending" && m["status"] != "delivered") {
		t.Fatalf("retry: %d %v", code, m)
	}
	code2, m2, _ := call(t, "POST", api+"/deliveries/d3/retry")
	d := waitStatus(t, e, "d3", StatusDelivered, 5*time.Second)
	if code2 != 409 && code2 != 202 { // 202 only if it was delivered in between
		t.Errorf("retry while pending: %d %v", code2, m2)
	}
	if len(d.Attempts) < 3 || d.Attempts[len(d.Attempts)-1].StatusCode != 200 {
		t.Errorf("after replay: %+v", d.Attempts)
	}
	if code, _, _ := call(t, "POST", api+"/deliveries/nope/retry"); code != 404 {
		t.Errorf("retry unknown: %d", code)
	}
}

// A dead letter replayed after longer than the maximum age gets fresh tries: the age counts from
// acceptance, and a replay accepts the delivery again.
func TestReplayOlderThanMaxAge(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64 // the clock runs, and can jump ahead
	e, _ := setup(t, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		c.MaxDeliveryAge = time.Hour
		c.RetrySchedule = []time.Duration{10 * time.Millisecond}
		c.BreakerFailures = 100
	})
	rc, fail := failingReceiver(t, http.StatusInternalServerError, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, ids[0], StatusFailed, 5*time.Second)
	offset.Add(int64(25 * time.Hour))
	fail.Store(false)
	if err := e.Retry(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 3 || rc.count.Load() != 3 {
		t.Fatalf("after the replay: %d attempts, %d requests; %+v", len(d.Attempts), rc.count.Load(), d)
	}
}

func TestMaxDeliveryAgeDeadLetters(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e, b := setup(t, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		c.MaxDeliveryAge = time.Hour
		c.RetrySchedule = []time.Duration{30 * time.Minute, 30 * time.Minute, 30 * time.Minute}
		c.BreakerFailures = 100
	})
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	testutil.Eventually(t, 3*time.Second, "the first try", func() bool { return rc.count.Load() == 1 })
	d := waitStatus(t, e, ids[0], StatusPending, time.Second)
	testutil.Eventually(t, 2*time.Second, "the retry to be scheduled", func() bool {
		d, _ = e.Get(context.Background(), ids[0])
		return len(d.Attempts) == 1
	})
	if d.NextAttemptAt == nil || d.NextAttemptAt.Sub(time.Unix(0, clock.Load())) < 25*time.Minute {
		t.Fatalf("next attempt %v", d.NextAttemptAt)
	}
	// 35 minutes later the retry is due; another 30-minute wait (±10% jitter) would pass the 1 h age.
	clock.Add(int64(35 * time.Minute))
	e.base().poke()
	d = waitStatus(t, e, ids[0], StatusFailed, 3*time.Second)
	if d.DeadReason != ReasonMaxAge || len(d.Attempts) != 2 {
		t.Errorf("dead: %+v", d)
	}
	// The record turns failed just before the outcome reaches the listeners.
	testutil.Eventually(t, 3*time.Second, "the dead-letter outcome", func() bool {
		o := b.outcomes()
		return len(o) > 0 && o[len(o)-1].Dead
	})
}

func TestDeletedEndpointDeadLetters(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	e, err := New(rdb, testConfig(prefix))
	if err != nil {
		t.Fatal(err)
	}
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	if err := e.DeleteEndpoint(context.Background(), "ep"); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	d := waitStatus(t, e, ids[0], StatusFailed, 3*time.Second)
	if d.DeadReason != ReasonEndpointGone || len(d.Attempts) != 0 {
		t.Errorf("%+v", d)
	}
}

func TestBadConfigRefused(t *testing.T) {
	rdb, _ := redistest.Shared(t)
	for name, c := range map[string]Config{
		"negative retry wait": {RetrySchedule: []time.Duration{time.Second, -time.Second}},
		"too many retries":    {RetrySchedule: make([]time.Duration, 51)},
		"huge timeout":        {RequestTimeout: time.Hour},
		"negative rate":       {RateLimitPerMinute: -1},
		"negative in flight":  {MaxInFlight: -5},
		"negative backlog":    {MaxBacklog: -1},
		"negative workers":    {Workers: -1},
		"negative conns":      {MaxConnsPerHost: -2},
		"jitter over 1":       {Jitter: 2},
		"brace in prefix":     {Prefix: "a{b}"},
		"negative max age":    {MaxDeliveryAge: -time.Hour},
	} {
		_, err := New(rdb, c)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := New(nil, Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil client: %v", err)
	}
	e, err := New(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if e.cfg.RequestTimeout != 30*time.Second || len(e.cfg.RetrySchedule) != 3 || e.cfg.RateLimitPerMinute != 100 || e.cfg.MaxInFlight != 10 {
		t.Errorf("defaults: %+v", e.cfg)
	}
	// Stop without Start, and twice, is fine.
	if err := e.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	if err := e.Start(context.Background()); err == nil {
		t.Error("start after stop accepted")
	}
}

// The engine's scripts also run on the embedded store (gopher-lua), which the try-out mode uses.
func TestEmbeddedStore(t *testing.T) {
	t.Parallel()
	conn, err := redisx.Open(context.Background(), redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := startEngine(t, conn.Client, testConfig("emb"))
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: testSecret, Ordered: true})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{"a":1}`), SubscriberID: "s"}, Request{EndpointID: "ep", Body: []byte(`{"a":2}`), SubscriberID: "s"})
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	}
	got := rc.received()
	if len(got) != 3 || got[0].header.Get(webhooksig.HeaderID) != ids[0] || got[1].header.Get(webhooksig.HeaderID) != ids[0] || got[2].header.Get(webhooksig.HeaderID) != ids[1] {
		t.Errorf("order on the embedded store: %d requests", len(got))
	}
	ds, _, err := e.List(context.Background(), ListQuery{SubscriberID: "s"})
	if err != nil || len(ds) != 2 {
		t.Errorf("list: %v %d", err, len(ds))
	}
	before := rc.count.Load()
	if err := e.Retry(context.Background(), ids[0]); err != nil {
		t.Error(err)
	}
	// The delivery is already delivered: wait for the replay's own request, not for the status.
	testutil.Eventually(t, 5*time.Second, "the replay on the embedded store", func() bool { return rc.count.Load() == before+1 })
	testutil.Eventually(t, 5*time.Second, "the replay to be recorded", func() bool {
		d, _ := e.Get(context.Background(), ids[0])
		return d != nil && d.Status == StatusDelivered && len(d.Attempts) == 3 // a 500, a 200, the replay
	})
	if err := e.Ready(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e, _ := setup(t, func(c *Config) { c.Registerer = reg })
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	// The counters move just after the record does.
	testutil.Eventually(t, 2*time.Second, "the outcome to be counted", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "herald_deliveries_total" {
				return true
			}
		}
		return false
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() != "herald_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 2 && m.GetLabel()[0].GetValue() == "delivered" && m.GetCounter().GetValue() != 1 {
				t.Errorf("delivered counter %v", m.GetCounter().GetValue())
			}
		}
	}
	for _, n := range []string{"herald_deliveries_total", "herald_delivery_attempts_total", "herald_delivery_attempt_duration_seconds",
		"herald_delivery_latency_seconds", "herald_delivery_queue_depth", "herald_delivery_queue_oldest_age_seconds", "herald_breakers"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
}
