package notifier

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// The dead-letter list (status=failed and nothing else) has an index of its own: a delivery
// enters it when it is dead-lettered, whether by a failed last try (finish) or without a try
// (begin: its endpoint is gone), and leaves it when replayed.
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
	// "orphan" waits for the one in-flight slot "first" holds; its endpoint is deleted meanwhile,
	// so when the slot frees it is dead-lettered without a try.
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
	waitStatus(t, e, "orphan", StatusFailed, 5*time.Second)

	if got := deadLetters(t, e); !slices.Equal(got, []string{"orphan", "tried"}) {
		t.Fatalf("dead letters %v, want orphan and tried", got)
	}
	fail.Store(false)
	if err := e.Retry(ctx, tried); err != nil {
		t.Fatal(err)
	}
	if got := deadLetters(t, e); !slices.Equal(got, []string{"orphan"}) {
		t.Errorf("dead letters after replaying tried: %v, want orphan", got)
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
