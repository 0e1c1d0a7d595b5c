package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"

	"github.com/heraldhq/herald/redisx/redistest"
)

func TestBreakerOpensAndDefersWithoutUsingTries(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) {
		c.BreakerFailures = 3
		c.BreakerCooldown = 400 * time.Millisecond
		c.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	})
	rc, fail := failingReceiver(t, http.StatusServiceUnavailable, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	var reqs []Request
	for i := range 6 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("b%d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	ids := enqueue(t, e, reqs...)
	testutil.Eventually(t, 3*time.Second, "the breaker to open", func() bool { return e.BreakerState("ep") == BreakerOpen })
	// While open, deliveries are deferred, not tried: once the tries under way when it opened
	// have landed and a deferral has happened, the receiver count stays still.
	testutil.Eventually(t, 3*time.Second, "a deferral with no try in flight", func() bool {
		return gaugeValue(t, e.m.inflight) == 0 && slices.ContainsFunc(b.outcomes(), func(o Outcome) bool { return o.Reason == ReasonBreakerOpen })
	})
	n := rc.count.Load()
	testutil.Never(t, 150*time.Millisecond, "a request while the breaker is open", func() bool { return rc.count.Load() != n })
	deferred := 0
	for _, o := range b.outcomes() {
		if o.Reason == ReasonBreakerOpen {
			deferred++
			if o.Dead || o.Tried {
				t.Errorf("a breaker deferral of %s dead-lettered it or counts as a try: %+v", o.DeliveryID, o)
			}
		}
	}
	if deferred == 0 {
		t.Error("no delivery was deferred by the open breaker")
	}
	fail.Store(false)
	for _, id := range ids {
		d := waitStatus(t, e, id, StatusDelivered, 5*time.Second)
		// Never more than 4 tries, and deferrals are not attempts.
		if len(d.Attempts) > 4 {
			t.Errorf("%s: %d attempts", id, len(d.Attempts))
		}
	}
	testutil.Eventually(t, 2*time.Second, "the breaker to close", func() bool { return e.BreakerState("ep") == BreakerClosed })
}

func TestBreakerIgnores4xx(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.BreakerFailures = 2; c.RetrySchedule = []time.Duration{10 * time.Millisecond} })
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	for _, id := range ids {
		d := waitStatus(t, e, id, StatusFailed, 3*time.Second)
		if len(d.Attempts) != 2 {
			t.Errorf("attempts %d, want 2 (a 400 is retried)", len(d.Attempts))
		}
	}
	if s := e.BreakerState("ep"); s != BreakerClosed {
		t.Errorf("breaker %s after 400s, want closed: a 400 is the request's fault, not the endpoint's", s)
	}
}

func TestRateLimitSharedByTwoEngines(t *testing.T) {
	t.Parallel()
	e1, b := setup(t, nil)
	cfg := testConfig(b.prefix)
	e2 := startEngine(t, b.rdb, cfg)
	rc := newReceiver(t, nil)
	// 120 per minute = 2 per second, burst 120: the first 120 go at once, then 2/s.
	putEndpoint(t, e1, Endpoint{ID: "ep", URL: rc.URL, RateLimitPerMinute: 120, MaxInFlight: 50})
	var reqs []Request
	for i := range 126 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("r%d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	start := time.Now()
	enqueue(t, e1, reqs[:63]...)
	enqueue(t, e2, reqs[63:]...)
	testutil.Eventually(t, 5*time.Second, "the burst", func() bool { return rc.count.Load() >= 120 })
	// For the next 900 ms, at most the burst plus 2 per second since the start go out, across
	// both engines.
	testutil.Never(t, 900*time.Millisecond, "more requests than the shared limit allows (120 + 2/s)", func() bool {
		return rc.count.Load() > 120+int64(2*time.Since(start).Seconds())+1
	})
	// The deferred deliveries were handed future slots at the endpoint's rate.
	if b.rdb.Exists(context.Background(), e1.base().k.slot("ep")).Val() != 1 {
		t.Error("no rate slot was handed out")
	}
	testutil.Eventually(t, 6*time.Second, "all deliveries", func() bool { return rc.count.Load() == 126 })
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("126 deliveries at 120/min (burst 120) took %s, want >= 2s", el)
	}
	// Deferrals used no tries.
	for _, id := range []string{"r0", "r70", "r125"} {
		d := waitStatus(t, e1, id, StatusDelivered, time.Second)
		if len(d.Attempts) != 1 {
			t.Errorf("%s: %d attempts", id, len(d.Attempts))
		}
	}
}

func TestMaxInFlightAcrossEngines(t *testing.T) {
	t.Parallel()
	e1, b := setup(t, nil)
	e2 := startEngine(t, b.rdb, testConfig(b.prefix))
	rc, peak := peakReceiver(t, 60*time.Millisecond)
	putEndpoint(t, e1, Endpoint{ID: "ep", URL: rc.URL, MaxInFlight: 3, RateLimitPerMinute: 100000})
	var reqs []Request
	for i := range 30 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("m%d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	enqueue(t, e1, reqs[:15]...)
	enqueue(t, e2, reqs[15:]...)
	testutil.Eventually(t, 10*time.Second, "all deliveries", func() bool { return rc.count.Load() == 30 })
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, want 3 (max in flight across both engines)", p)
	}
	for _, r := range reqs {
		d := waitStatus(t, e1, r.ID, StatusDelivered, 2*time.Second)
		if len(d.Attempts) != 1 {
			t.Errorf("%s: %d attempts (waiting for a slot is not a try)", r.ID, len(d.Attempts))
		}
	}
	ctx := context.Background()
	testutil.Eventually(t, time.Second, "leases released", func() bool {
		return b.rdb.ZCard(ctx, e1.base().k.inflight("ep")).Val() == 0 && b.rdb.LLen(ctx, e1.base().k.waiters("ep")).Val() == 0
	})
}

// Endpoints on one host share at most MaxConnsPerHost connections: with 2, five endpoints of one
// host (10 in flight each) never have more than 2 requests there at once, and every delivery
// still arrives with one try.
func TestMaxConnsPerHostSharedByEndpoints(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.MaxConnsPerHost = 2 })
	rc, peak := peakReceiver(t, 30*time.Millisecond)
	var reqs []Request
	for i := range 5 {
		id := fmt.Sprintf("ep%d", i)
		putEndpoint(t, e, Endpoint{ID: id, URL: rc.URL + "/" + id, RateLimitPerMinute: 100000})
		for j := range 6 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("%s-%d", id, j), EndpointID: id, Body: []byte(`{}`)})
		}
	}
	enqueue(t, e, reqs...)
	testutil.Eventually(t, 10*time.Second, "all deliveries", func() bool { return rc.count.Load() == 30 })
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency at the host %d, want 2", p)
	}
	for _, r := range reqs {
		if d := waitStatus(t, e, r.ID, StatusDelivered, 2*time.Second); len(d.Attempts) != 1 {
			t.Errorf("%s: %d attempts", r.ID, len(d.Attempts))
		}
	}
}

func TestOrderingPerKeyFailingHeadHoldsOnlyItsLine(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) {
		c.BreakerFailures = 1000
		// A0's last wait keeps line A's head failing while B, C and U go through, even on a
		// loaded machine; with 300 ms in all it could be dead-lettered before they were done.
		c.RetrySchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 2 * time.Second}
	})
	var mu sync.Mutex
	order := map[string][]string{}
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(webhooksig.HeaderID)
		if id == "A0" { // the head of line A always fails
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		mu.Lock()
		order[id[:1]] = append(order[id[:1]], id)
		mu.Unlock()
		time.Sleep(time.Duration(len(id)%3) * time.Millisecond) // uneven work
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, RateLimitPerMinute: 100000})
	putEndpoint(t, e, Endpoint{ID: "ord", URL: rc.URL, RateLimitPerMinute: 100000, Ordered: true})
	var reqs []Request
	for i := range 10 {
		reqs = append(reqs,
			Request{ID: fmt.Sprintf("A%d", i), EndpointID: "ep", OrderingKey: "line-a", Body: []byte(`{}`)},
			Request{ID: fmt.Sprintf("B%d", i), EndpointID: "ep", OrderingKey: "line-b", Body: []byte(`{}`)},
			Request{ID: fmt.Sprintf("C%d", i), EndpointID: "ord", Body: []byte(`{}`)},
			Request{ID: fmt.Sprintf("U%d", i), EndpointID: "ep", Body: []byte(`{}`)}, // unordered
		)
	}
	enqueue(t, e, reqs...)
	// B, C and U all go through while A's head is still failing.
	testutil.Eventually(t, 5*time.Second, "lines B and C", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order["B"]) == 10 && len(order["C"]) == 10 && len(order["U"]) == 10
	})
	mu.Lock()
	if len(order["A"]) != 0 {
		t.Errorf("line A moved past its failing head: %v", order["A"])
	}
	for _, k := range []string{"B", "C"} {
		want := make([]string, 10)
		for i := range want {
			want[i] = fmt.Sprintf("%s%d", k, i)
		}
		if strings.Join(order[k], ",") != strings.Join(want, ",") {
			t.Errorf("line %s delivered as %v", k, order[k])
		}
	}
	mu.Unlock()
	// A0 is dead-lettered after its tries; then A1..A9 follow in order.
	d := waitStatus(t, e, "A0", StatusFailed, 8*time.Second)
	if len(d.Attempts) != 4 {
		t.Errorf("A0 attempts %d", len(d.Attempts))
	}
	testutil.Eventually(t, 5*time.Second, "line A", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order["A"]) == 9
	})
	mu.Lock()
	if !sort.SliceIsSorted(order["A"], func(i, j int) bool { return order["A"][i] < order["A"][j] }) {
		t.Errorf("line A delivered as %v", order["A"])
	}
	mu.Unlock()
	// Once the last of each line is recorded delivered, the lines are gone.
	waitStatus(t, e, "A9", StatusDelivered, 2*time.Second)
	waitStatus(t, e, "C9", StatusDelivered, 2*time.Second)
	if n := b.rdb.Exists(context.Background(), e.base().k.line("k:line-a"), e.base().k.line("ep:ord")).Val(); n != 0 {
		t.Errorf("%d ordering lines left behind", n)
	}
}

func TestHangingEndpointDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RequestTimeout = 5 * time.Second; c.Workers = 24 })
	release := make(chan struct{})
	hang := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "hang", URL: hang.URL, RateLimitPerMinute: 100000})
	for i := range 5 {
		putEndpoint(t, e, Endpoint{ID: fmt.Sprintf("fast%d", i), URL: fast.URL, RateLimitPerMinute: 100000})
	}
	measure := func(label string, withHang bool) time.Duration {
		var reqs []Request
		if withHang {
			for i := range 200 { // far more than its in-flight bound
				reqs = append(reqs, Request{EndpointID: "hang", Body: []byte(`{}`)})
				_ = i
			}
		}
		var fastIDs []Request
		for i := range 200 {
			fastIDs = append(fastIDs, Request{EndpointID: fmt.Sprintf("fast%d", i%5), Body: []byte(`{}`)})
		}
		before := fast.count.Load()
		if withHang {
			enqueue(t, e, reqs...)
			testutil.Eventually(t, 2*time.Second, "the hanging endpoint to fill its slots", func() bool { return hang.count.Load() >= 10 })
		}
		start := time.Now()
		enqueue(t, e, fastIDs...)
		testutil.Eventually(t, 10*time.Second, label, func() bool { return fast.count.Load()-before == 200 })
		return time.Since(start)
	}
	base := measure("baseline", false)
	with := measure("with a hanging endpoint", true)
	t.Logf("200 deliveries to fast endpoints: %s alone, %s next to a hanging endpoint", base, with)
	if with > 2*base+300*time.Millisecond {
		t.Errorf("a hanging endpoint slowed the others: %s vs %s", with, base)
	}
	if n := hang.count.Load(); n > 10 {
		t.Errorf("the hanging endpoint got %d concurrent requests, want at most its max in flight (10)", n)
	}
}

func TestBacklogFullAndIdempotentEnqueue(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	cfg := testConfig(prefix)
	cfg.MaxBacklog = 5
	e, err := New(rdb, cfg) // not started: nothing drains the backlog
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	ids, err := e.Enqueue(ctx, Request{ID: "i1", EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	if err != nil || ids[0] != "i1" || !strings.HasPrefix(ids[1], "dlv_") {
		t.Fatalf("enqueue: %v %v", ids, err)
	}
	// Same id again: a no-op that returns the id, even in the same batch.
	again, err := e.Enqueue(ctx, Request{ID: "i1", EndpointID: "ep", Body: []byte(`{"other":1}`)}, Request{ID: "i1", EndpointID: "ep"})
	if err != nil || again[0] != "i1" || again[1] != "i1" {
		t.Fatalf("idempotent enqueue: %v %v", again, err)
	}
	if n, _ := rdb.Get(ctx, e.base().k.backlog()).Int(); n != 2 {
		t.Errorf("backlog %d, want 2", n)
	}
	d, err := e.Get(ctx, "i1")
	if err != nil || d.Status != StatusPending || d.NextAttemptAt == nil {
		t.Fatalf("get: %+v %v", d, err)
	}
	if n := rdb.XLen(ctx, e.base().k.stream()).Val(); n != 2 {
		t.Errorf("stream length %d, want 2", n)
	}
	// 3 more fit; a batch that would pass the bound is refused whole.
	if _, err := e.Enqueue(ctx, Request{EndpointID: "ep"}, Request{EndpointID: "ep"}, Request{EndpointID: "ep"}, Request{EndpointID: "ep"}); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("over the bound: %v", err)
	}
	if _, err := e.Enqueue(ctx, Request{EndpointID: "ep"}, Request{EndpointID: "ep"}, Request{EndpointID: "ep"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Enqueue(ctx, Request{EndpointID: "ep"}); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("full: %v", err)
	}
	// An existing id is still a no-op when full.
	if _, err := e.Enqueue(ctx, Request{ID: "i1", EndpointID: "ep"}); err != nil {
		t.Fatalf("existing id when full: %v", err)
	}
	// Invalid requests fail with nothing written.
	if _, err := e.Enqueue(ctx, Request{ID: "ok-1", EndpointID: "ep"}, Request{ID: "bad id", EndpointID: "ep"}); err == nil {
		t.Fatal("bad id accepted")
	}
	if _, err := e.Get(ctx, "ok-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half a batch was written: %v", err)
	}
	if n := rdb.XLen(ctx, e.base().k.stream()).Val(); n != 5 {
		t.Errorf("stream length %d, want 5", n)
	}
}

// peakReceiver answers 200 after hold and records in peak the most requests it held at once.
func peakReceiver(t *testing.T, hold time.Duration) (*receiver, *atomic.Int64) {
	var cur, peak atomic.Int64
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(hold)
		cur.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	return rc, &peak
}
