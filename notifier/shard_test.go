package notifier

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/webhooksig"
	"github.com/prometheus/client_golang/prometheus"
)

// The n shards of a prefix take one section of the slots each (as redis-cli --cluster create
// gives masters equal ranges), shard 0 keeps the keys of an engine without shards, and an
// endpoint's home is stable.
func TestShardTagsTakeOneSectionEach(t *testing.T) {
	for _, prefix := range []string{"herald", "t0a1b2c", "acme-prod"} {
		for _, n := range []int{1, 2, 3, 4, 6, 16, 64, maxQueueShards} {
			sections := map[int]bool{}
			for i := range n {
				tag := shardTag(prefix, i, n)
				if i == 0 && tag != prefix {
					t.Fatalf("%s: shard 0 of %d has tag %q, want the prefix", prefix, n, tag)
				}
				sec := redisx.Slot(tag) * n / redisx.SlotCount
				if sections[sec] {
					t.Fatalf("%s: shard %d of %d (%q) shares section %d", prefix, i, n, tag, sec)
				}
				sections[sec] = true
			}
		}
	}
	if k := newKeys("herald", shardTag("herald", 0, 4)); k.stream() != "herald:{herald}:stream" {
		t.Errorf("shard 0's stream is %q", k.stream())
	}
	for _, ep := range []string{"a", "sub_01", "relay:channel-7"} {
		if h := homeIndex(ep, 6); h != homeIndex(ep, 6) || h < 0 || h >= 6 || homeIndex(ep, 1) != 0 {
			t.Errorf("home of %q: %d", ep, h)
		}
	}
}

// idCounter is a receiver that counts the deliveries it gets by webhook-id.
type idCounter struct {
	*receiver
	mu    sync.Mutex
	seen  map[string]int
	order []string
}

func newIDCounter(t *testing.T) *idCounter {
	c := &idCounter{seen: map[string]int{}}
	c.receiver = newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		id := r.Header.Get(webhooksig.HeaderID)
		c.seen[id]++
		c.order = append(c.order, id)
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return c
}

// exactlyOnce reports the first of ids not received exactly once ("" when all were).
func (c *idCounter) exactlyOnce(ids []string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if c.seen[id] != 1 {
			return fmt.Sprintf("%s received %d times", id, c.seen[id])
		}
	}
	return ""
}

func (c *idCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

// Two engines with four shards on one Redis deliver every delivery exactly once, from every
// shard; Get and Retry find a delivery in whichever shard holds it.
func TestShardedQueueDeliversOnce(t *testing.T) {
	t.Parallel()
	// Nothing crashes here, so no process may be taken for dead: the heartbeat is the default
	// second (the tests' 100 ms lapses on a loaded machine, and a takeover may send twice).
	e1, b := setup(t, func(c *Config) { c.QueueShards, c.Heartbeat = 4, time.Second })
	cfg := testConfig(b.prefix)
	cfg.QueueShards, cfg.Heartbeat = 4, time.Second
	e2 := startEngine(t, b.rdb, cfg)
	rc := newIDCounter(t)
	var reqs []Request
	for i := range 24 {
		ep := fmt.Sprintf("ep-%02d", i)
		putEndpoint(t, e1, Endpoint{ID: ep, URL: rc.URL, RateLimitPerMinute: 1_000_000})
		for j := range 20 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("d-%02d-%02d", i, j), EndpointID: ep, Body: []byte(`{}`)})
		}
	}
	ids := enqueue(t, e2, reqs...)
	testutil.Eventually(t, 20*time.Second, "every delivery", func() bool { return rc.total() >= len(ids) })
	if bad := rc.exactlyOnce(ids); bad != "" {
		t.Fatal(bad)
	}
	for _, sh := range e1.workedShards() {
		if n := b.rdb.ZCard(context.Background(), sh.k.ixAll()).Val(); n == 0 {
			t.Errorf("shard %s got no deliveries", sh.tag)
		}
	}
	last := ids[len(ids)-1]
	waitStatus(t, e1, last, StatusDelivered, 5*time.Second)
	if err := e2.Retry(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the replay", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.seen[last] == 2
	})
}

// List over several shards pages through every delivery once, newest first then by id, as it
// does over one; filters work across shards too.
func TestListMergesShards(t *testing.T) {
	t.Parallel()
	clock := testutil.NewClock(time.UnixMilli(1_800_000_000_000))
	e, _ := setup(t, func(c *Config) {
		c.QueueShards = 5
		c.Now = clock.Now
	})
	rc := newIDCounter(t)
	var all []string
	for i := range 12 {
		ep := fmt.Sprintf("ep-%d", i)
		putEndpoint(t, e, Endpoint{ID: ep, URL: rc.URL, RateLimitPerMinute: 1_000_000})
	}
	for round := range 6 { // each round's deliveries share an accepted time: the ids break ties
		var reqs []Request
		for i := range 12 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("r%d-%02d", round, i), EndpointID: fmt.Sprintf("ep-%d", i),
				EventID: fmt.Sprintf("evt-%d", round%2), Body: []byte(`{}`)})
		}
		all = append(all, enqueue(t, e, reqs...)...)
		clock.Add(time.Millisecond)
	}
	want := slices.Clone(all)
	slices.Reverse(want) // later rounds first; within a round, ids descending
	for _, limit := range []int{1, 7, 12, 100} {
		if got := listAll(t, e, ListQuery{Limit: limit}); !slices.Equal(got, want) {
			t.Fatalf("limit %d: pages gave %v, want %v", limit, got, want)
		}
	}
	var evt1 []string
	for _, id := range want {
		if id[1] == '1' || id[1] == '3' || id[1] == '5' {
			evt1 = append(evt1, id)
		}
	}
	if got := listAll(t, e, ListQuery{EventID: "evt-1", Limit: 5}); !slices.Equal(got, evt1) {
		t.Fatalf("event filter: %v, want %v", got, evt1)
	}
}

// listAll pages through List with q and returns the ids in page order.
func listAll(t *testing.T, e *Engine, q ListQuery) []string {
	t.Helper()
	var out []string
	for range 1000 {
		page, next, err := e.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			out = append(out, d.ID)
		}
		if next == "" {
			return out
		}
		q.After = next
	}
	t.Fatal("List never ended")
	return nil
}

// Changing the shard count on a running fleet: an engine with one shard holds deliveries in
// flight (its receiver hangs) when an engine with four starts, and the first one stops. Nothing
// is lost or duplicated, whichever engine a delivery is enqueued through and even when it is
// enqueued again; an ordered endpoint keeps the order accepted across the change; endpoints
// reach their new homes.
func TestChangingShardCountLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	gate := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	var ordered []string
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		<-gate
		if r.Context().Err() != nil {
			return // a try its engine abandoned when it stopped: not delivered, made again
		}
		mu.Lock()
		id := r.Header.Get(webhooksig.HeaderID)
		seen[id]++
		if r.URL.Path == "/ordered" {
			ordered = append(ordered, id)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the receiver's Close, which waits for its handlers
	cfg1 := testConfig(prefix)
	cfg1.Consumer = "one-shard"
	e1, err := New(rdb, cfg1)
	if err != nil {
		t.Fatal(err)
	}
	if err := e1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// "ord1" lives in shard 0 under one shard and in shard 3 under four: its line moves
	if homeIndex("ord1", 4) == 0 {
		t.Fatal("the ordered endpoint must change shards with the count")
	}
	putEndpoint(t, e1, Endpoint{ID: "ord1", URL: rc.URL + "/ordered", Ordered: true, RateLimitPerMinute: 1_000_000})
	batch := func(tag string) []Request {
		reqs := []Request{}
		for i := range 10 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("%s-ord-%d", tag, i), EndpointID: "ord1", Body: []byte(`{}`)})
			for j := range 3 {
				reqs = append(reqs, Request{ID: fmt.Sprintf("%s-%d-%d", tag, i, j), EndpointID: fmt.Sprintf("ep-%d", j), Body: []byte(`{}`)})
			}
		}
		return reqs
	}
	for j := range 3 {
		putEndpoint(t, e1, Endpoint{ID: fmt.Sprintf("ep-%d", j), URL: rc.URL, RateLimitPerMinute: 1_000_000})
	}
	before := batch("old")
	enqueue(t, e1, before...)

	cfg4 := testConfig(prefix)
	cfg4.QueueShards = 4
	cfg4.Consumer = "four-shards"
	e4 := startEngine(t, rdb, cfg4)
	enqueue(t, e4, before...) // again, through the new count: no-ops
	after := batch("new")
	enqueue(t, e4, after...)
	stopCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = e1.Stop(stopCtx) // its tries in flight go back; e4 takes them over
	open()

	all := append(slices.Clone(before), after...)
	for _, r := range all {
		waitStatus(t, e4, r.ID, StatusDelivered, 20*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range all {
		if seen[r.ID] > 1 {
			t.Errorf("%s delivered %d times", r.ID, seen[r.ID])
		}
	}
	var wantOrder []string
	for _, r := range all {
		if r.EndpointID == "ord1" {
			wantOrder = append(wantOrder, r.ID)
		}
	}
	if !slices.Equal(ordered, wantOrder) {
		t.Errorf("ordered endpoint got %v, want %v", ordered, wantOrder)
	}
}

// Idle shards keep no worker from a busy one: with more shards than workers, a burst to one
// endpoint (one shard) is delivered at once.
func TestIdleShardsHoldNoWorkers(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) {
		c.QueueShards = 16
		c.Workers = 8
	})
	rc := newIDCounter(t)
	putEndpoint(t, e, Endpoint{ID: "busy", URL: rc.URL, RateLimitPerMinute: 1_000_000, MaxInFlight: 8})
	var reqs []Request
	for i := range 200 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("b-%03d", i), EndpointID: "busy", Body: []byte(`{}`)})
	}
	ids := enqueue(t, e, reqs...)
	testutil.Eventually(t, 10*time.Second, "the burst to the busy shard", func() bool { return rc.missing(ids) == 0 })
}

// The queue's gauges and readiness cover every shard: the backlog is the sum of the shards', and a
// shard whose consumer group is gone makes the engine unready.
func TestGaugesAndReadinessCoverEveryShard(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(prefix)
	cfg.QueueShards, cfg.Registerer = 4, reg
	e, err := New(rdb, cfg) // not started: what is enqueued stays queued
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var reqs []Request
	for i := range 16 {
		ep := fmt.Sprintf("ep-%02d", i)
		putEndpoint(t, e, Endpoint{ID: ep, URL: "http://127.0.0.1:1/hook"})
		reqs = append(reqs, Request{EndpointID: ep, Body: []byte(`{}`)}, Request{EndpointID: ep, Body: []byte(`{}`)})
	}
	enqueue(t, e, reqs...)
	used := 0
	for _, sh := range e.workedShards() {
		if n, _ := rdb.Get(ctx, sh.k.backlog()).Int(); n > 0 {
			used++
		}
	}
	if got := gauge(t, reg, "herald_delivery_queue_depth", "backlog"); got != 32 || used < 2 {
		t.Fatalf("backlog gauge %v over %d shards, want 32 over several", got, used)
	}
	for _, sh := range e.workedShards() {
		if err := e.ensureGroup(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	last := e.workedShards()[3]
	if err := rdb.XGroupDestroy(ctx, last.k.stream(), group).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(ctx); err == nil {
		t.Fatal("ready with shard 3's consumer group gone")
	}
}
