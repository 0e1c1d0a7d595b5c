package notifier

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"
)

// Engines cache endpoints, but a change made through any engine reaches every engine's next try:
// a new URL, a rotated secret, a deletion.
func TestEndpointChangesReachEveryEngine(t *testing.T) {
	t.Parallel()
	e1, b := setup(t, nil)
	e2 := startEngine(t, b.rdb, testConfig(b.prefix))
	oldRC, failOld := failingReceiver(t, http.StatusInternalServerError, false)
	newRC := newReceiver(t, nil)
	putEndpoint(t, e1, Endpoint{ID: "ep", URL: oldRC.URL, Secret: testSecret})
	// Warm both engines' caches: deliveries until each has taken some (they share the queue).
	var reqs []Request
	for range 40 {
		reqs = append(reqs, Request{EndpointID: "ep", Body: []byte(`{}`)})
	}
	for round := 0; cachedGen(e1) == 0 || cachedGen(e2) == 0; round++ {
		if round == 20 {
			t.Fatal("an engine never cached the endpoint")
		}
		for _, id := range enqueue(t, e1, reqs[:10]...) {
			waitStatus(t, e1, id, StatusDelivered, 5*time.Second)
		}
	}

	// A new URL and secret, put through e2: every try from now on, by either engine, uses them.
	const newSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	putEndpoint(t, e2, Endpoint{ID: "ep", URL: newRC.URL, Secret: newSecret})
	before := oldRC.count.Load()
	for _, id := range enqueue(t, e1, reqs...) {
		waitStatus(t, e1, id, StatusDelivered, 5*time.Second)
	}
	if n := oldRC.count.Load() - before; n != 0 {
		t.Errorf("%d deliveries went to the old URL after the change", n)
	}
	got := newRC.received()
	if len(got) != 40 {
		t.Fatalf("new URL got %d, want 40", len(got))
	}
	for _, r := range got {
		if err := webhooksig.Verify(newSecret, r.header, r.body, time.Minute); err != nil {
			t.Fatalf("not signed with the new secret: %v", err)
		}
	}

	// Deleted through e1 while a delivery waits for its retry: dead-lettered, not sent.
	putEndpoint(t, e1, Endpoint{ID: "ep", URL: oldRC.URL})
	failOld.Store(true)
	ids := enqueue(t, e2, Request{EndpointID: "ep", Body: []byte(`{}`)})
	testutil.Eventually(t, 5*time.Second, "the first try", func() bool {
		d, err := e1.Get(context.Background(), ids[0])
		return err == nil && len(d.Attempts) == 1
	})
	if err := e1.DeleteEndpoint(context.Background(), "ep"); err != nil {
		t.Fatal(err)
	}
	d := waitStatus(t, e2, ids[0], StatusFailed, 5*time.Second)
	if d.DeadReason != ReasonEndpointGone || len(d.Attempts) != 1 {
		t.Errorf("after the delete: reason %q, %d attempts; want %s after 1", d.DeadReason, len(d.Attempts), ReasonEndpointGone)
	}
}

// Redis losing its data takes the endpoint generation with it; it is seeded again from the clock,
// never back to a value an engine has cached, so an engine does not trust a stale cache.
func TestEndpointGenerationSurvivesDataLoss(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	cached := cachedGen(e)
	if cached == 0 {
		t.Fatal("nothing cached")
	}
	ctx := context.Background()
	if err := b.rdb.Del(ctx, e.base().k.endpointGen(), e.base().k.endpoint("ep")).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // the seed comes from the clock in ms
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	g, err := b.rdb.Get(ctx, e.base().k.endpointGen()).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if g <= cached {
		t.Errorf("generation %d after the loss, not past the cached %d", g, cached)
	}
}

// Putting an endpoint as it already is changes nothing: the engines' caches stay good (the relay
// re-registers the endpoints it uses every few seconds).
func TestPutUnchangedEndpointKeepsGeneration(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx := context.Background()
	ep := Endpoint{ID: "ep", URL: "http://127.0.0.1:9/x", Secret: testSecret, RateLimitPerMinute: 600}
	putEndpoint(t, e, ep)
	gen := func() int64 { return mustInt(t, b.rdb.Get(ctx, e.base().k.endpointGen()).Val()) }
	g0 := gen()
	putEndpoint(t, e, ep)
	if g := gen(); g != g0 {
		t.Errorf("generation %d -> %d for an unchanged endpoint", g0, g)
	}
	if b.rdb.HGet(ctx, e.base().k.endpoint("ep"), string(epFieldPrevSecret)).Val() != "" {
		t.Error("an unchanged secret was rotated")
	}
	ep.MaxInFlight = 3
	putEndpoint(t, e, ep)
	if g := gen(); g != g0+1 {
		t.Errorf("generation %d -> %d for a changed endpoint, want +1", g0, g)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// cachedGen is the endpoint generation e's cache holds (0: nothing cached yet).
func cachedGen(e *Engine) int64 {
	e.base().eps.mu.Lock()
	defer e.base().eps.mu.Unlock()
	return e.base().eps.gen
}
