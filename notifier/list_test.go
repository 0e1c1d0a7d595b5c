package notifier

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// The dead-letter list (status=failed and nothing else) has an index of its own: a delivery
// enters it when it is dead-lettered, whether by a failed last try (finish), by its endpoint's
// deletion (endScript) or without a try (begin: its endpoint is gone), and leaves it when
// replayed.
func TestDeadLetterListFollowsStatus(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{10 * time.Millisecond}; c.BreakerFailures = 100 })
	ctx := context.Background()
	failing, fail := failingReceiver(t, http.StatusInternalServerError, true)
	hold := make(chan struct{})
	gone := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { <-hold })
	putEndpoint(t, e, Endpoint{ID: "failing", URL: failing.URL})
	putEndpoint(t, e, Endpoint{ID: "gone", URL: gone.URL, MaxInFlight: 1})
	tried := enqueue(t, e, Request{ID: "tried", EndpointID: "failing", Body: []byte(`{}`)})[0]
	waitStatus(t, e, tried, StatusFailed, 5*time.Second)
	// "orphan" waits for the one in-flight slot "first" holds; their endpoint is deleted
	// meanwhile, which ends both.
	enqueue(t, e, Request{ID: "first", EndpointID: "gone", Body: []byte(`{}`)})
	testutil.Eventually(t, 5*time.Second, "the first try", func() bool { return gone.count.Load() == 1 })
	enqueue(t, e, Request{ID: "orphan", EndpointID: "gone", Body: []byte(`{}`)})
	testutil.Eventually(t, 5*time.Second, "orphan to wait for the slot", func() bool {
		return e.rdb.LLen(ctx, e.base().k.waiters("gone")).Val() == 1
	})
	if err := e.DeleteEndpoint(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if got := deadLetters(t, e); !slices.Equal(got, []string{"first", "orphan", "tried"}) {
		t.Fatalf("dead letters %v, want first, orphan and tried", got)
	}
	// A replay of orphan takes it out of the list; begin dead-letters it again (its endpoint is
	// gone), and it is back.
	if err := e.Retry(ctx, "orphan"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "orphan", StatusFailed, 5*time.Second)
	fail.Store(false)
	if err := e.Retry(ctx, tried); err != nil {
		t.Fatal(err)
	}
	if got := deadLetters(t, e); !slices.Equal(got, []string{"first", "orphan"}) {
		t.Errorf("dead letters after replaying tried: %v, want first and orphan", got)
	}
}

// deadLetters lists the ids of status=failed, sorted.
func deadLetters(t *testing.T, e *Engine) []string {
	t.Helper()
	ds, _, err := e.List(context.Background(), ListQuery{Status: StatusFailed})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

// mergePages stops where a shard's walk stopped looking (its scan bound), keeping the entry at the
// bound itself when it matched, and the next page starts after it: nothing is skipped.
func TestMergePagesStopsAtTheScanBound(t *testing.T) {
	d := func(id string) *Delivery { return &Delivery{ID: id} }
	capped := &listWalk{q: ListQuery{Limit: 3}, out: []*Delivery{d("a-1"), d("a-2")}, outScores: []int64{90, 40},
		lastScore: 40, lastID: "a-2"} // looked at everything down to a-2, which matched
	full := &listWalk{q: ListQuery{Limit: 3}, out: []*Delivery{d("b-1"), d("b-2"), d("b-3")}, outScores: []int64{80, 50, 30},
		lastScore: 30, lastID: "b-3"}
	page, next := mergePages([]*listWalk{capped, full}, 3)
	var got []string
	for _, p := range page {
		got = append(got, p.ID)
	}
	if fmt.Sprint(got) != "[a-1 b-1 b-2]" || next != encodeCursor(50, "b-2") {
		t.Fatalf("page %v next %q", got, next)
	}
	page, next = mergePages([]*listWalk{capped, full}, 5)
	got = got[:0]
	for _, p := range page {
		got = append(got, p.ID)
	}
	// b-3 lies past the bound a-2: it waits for the next page, which starts after a-2
	if fmt.Sprint(got) != "[a-1 b-1 b-2 a-2]" || next != encodeCursor(40, "a-2") {
		t.Fatalf("page %v next %q", got, next)
	}
}

// With Config.SubscriberEndpoint, a subscriber's deliveries are indexed once, under their
// endpoint (no per-subscriber index is written on the hot path), yet listing by subscriber finds
// all of them, replays included, and only them; a request to another endpoint than the
// subscriber's is refused before anything is written.
func TestSubscriberDeliveriesListedThroughTheirEndpoint(t *testing.T) {
	t.Parallel()
	subEndpoint := func(sub string) string { return "sub:" + sub }
	e, _ := setup(t, func(c *Config) { c.SubscriberEndpoint = subEndpoint })
	ctx := context.Background()
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "sub:s1", URL: rc.URL})
	putEndpoint(t, e, Endpoint{ID: "sub:s2", URL: rc.URL})
	enqueue(t, e,
		Request{ID: "a", EndpointID: "sub:s1", SubscriberID: "s1", EventID: "e1", Body: []byte(`{}`)},
		Request{ID: "b", EndpointID: "sub:s2", SubscriberID: "s2", EventID: "e1", Body: []byte(`{}`)},
		Request{ID: "c", EndpointID: "sub:s1", SubscriberID: "s1", EventID: "e2", Body: []byte(`{}`)})
	waitStatus(t, e, "a", StatusDelivered, 5*time.Second)
	if err := e.Retry(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, sh := range e.workedShards() {
		if n := e.rdb.Exists(ctx, sh.k.ixSubscriber("s1"), sh.k.ixSubscriber("s2")).Val(); n != 0 {
			t.Fatalf("%d per-subscriber indexes written in shard %s; want none", n, sh.tag)
		}
	}
	ds, _, err := e.List(ctx, ListQuery{SubscriberID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("deliveries of s1: %v, want a and c", got)
	}
	_, err = e.Enqueue(ctx, Request{ID: "d", EndpointID: "sub:s2", SubscriberID: "s1", Body: []byte(`{}`)})
	if err == nil || e.rdb.Exists(ctx, e.home("sub:s2").k.record("d")).Val() != 0 {
		t.Fatalf("a delivery of s1 to s2's endpoint: err %v; want it refused with nothing written", err)
	}
}
