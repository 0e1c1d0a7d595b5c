package notifier

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// Each pending delivery says why it waits (Delivery.Waiting), and its next_attempt_at agrees.

// waitFor waits until delivery id is pending and waits for reason, and returns it.
func waitFor(t *testing.T, e *Engine, id string, reason WaitReason) *Delivery {
	t.Helper()
	var last *Delivery
	testutil.Eventually(t, 5*time.Second, "delivery "+id+" to wait for "+string(reason), func() bool {
		d, err := e.Get(context.Background(), id)
		if err != nil {
			return false
		}
		last = d
		return d.Status == StatusPending && d.Waiting != nil && d.Waiting.Reason == reason
	})
	return last
}

// between fails t unless at is within [from, to].
func between(t *testing.T, what string, at *time.Time, from, to time.Time) {
	t.Helper()
	if at == nil || at.Before(from) || at.After(to) {
		t.Errorf("%s = %v, want between %v and %v", what, at, from.UTC(), to.UTC())
	}
}

// blockingReceiver holds every request until release is closed; started gets one value a request.
func blockingReceiver(t *testing.T) (rc *receiver, started chan struct{}, release func()) {
	started = make(chan struct{}, 16)
	gate := make(chan struct{})
	rc = newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	var once bool
	release = func() {
		if !once {
			once = true
			close(gate)
		}
	}
	t.Cleanup(release)
	return rc, started, release
}

// A failed try: retry 1 of the schedule's 3, due when the schedule says (1 h ± 10%), shown by
// GET /deliveries/{id} too.
func TestWaitingRetryNOfM(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{time.Hour, time.Hour, time.Hour} })
	rc, _ := failingReceiver(t, http.StatusInternalServerError, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	id := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	d := waitFor(t, e, id, WaitRetry)
	if len(d.Attempts) != 1 || d.Waiting.Retry != 1 || d.Waiting.Of != 3 {
		t.Fatalf("after one failed try: %d attempts, waiting %+v; want retry 1 of 3", len(d.Attempts), *d.Waiting)
	}
	tried := d.Attempts[0].At
	between(t, "next_attempt_at", d.NextAttemptAt, tried.Add(54*time.Minute), tried.Add(67*time.Minute))

	code, m, _ := call(t, "GET", apiServer(t, e).URL+"/deliveries/"+id)
	w, _ := m["waiting"].(map[string]any)
	if code != 200 || w["reason"] != "retry" || w["retry"] != float64(1) || w["of"] != float64(3) {
		t.Errorf("GET /deliveries/%s: %d, waiting %v; want {reason: retry, retry: 1, of: 3}", id, code, m["waiting"])
	}
}

// A delivery picked up while its endpoint's breaker is open waits for the breaker, without a try,
// and comes back when the breaker lets a probe through.
func TestWaitingBreakerOpen(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) {
		c.BreakerFailures = 1
		c.BreakerCooldown = time.Minute
		c.RetrySchedule = []time.Duration{time.Hour}
	})
	rc, _ := failingReceiver(t, http.StatusServiceUnavailable, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	first := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	waitFor(t, e, first, WaitRetry)
	testutil.Eventually(t, 2*time.Second, "the breaker to open", func() bool { return e.BreakerState("ep") == BreakerOpen })
	opened := time.Now()

	id := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	d := waitFor(t, e, id, WaitBreakerOpen)
	if len(d.Attempts) != 0 || d.Waiting.Retry != 0 || d.Waiting.Of != 0 {
		t.Errorf("a breaker wait used a try or names a retry: %d attempts, waiting %+v", len(d.Attempts), *d.Waiting)
	}
	// Back when the breaker lets a probe through: a minute after it opened (plus at most 1 s of spread).
	between(t, "next_attempt_at", d.NextAttemptAt, opened.Add(55*time.Second), time.Now().Add(62*time.Second))
}

// Of two deliveries to an endpoint allowed one a minute, one goes and the other waits for the
// next slot, a minute on.
func TestWaitingRateLimited(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, RateLimitPerMinute: 1})
	start := time.Now()
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	var waiting *Delivery
	testutil.Eventually(t, 5*time.Second, "one delivered and one rate limited", func() bool {
		ds, err := e.GetMany(context.Background(), ids)
		if err != nil {
			return false
		}
		delivered := slices.IndexFunc(ds, func(d *Delivery) bool { return d.Status == StatusDelivered })
		limited := slices.IndexFunc(ds, func(d *Delivery) bool { return d.Waiting != nil && d.Waiting.Reason == WaitRateLimited })
		if delivered >= 0 && limited >= 0 {
			waiting = ds[limited]
			return true
		}
		return false
	})
	if len(waiting.Attempts) != 0 {
		t.Errorf("a rate limit wait used a try: %d attempts", len(waiting.Attempts))
	}
	between(t, "next_attempt_at", waiting.NextAttemptAt, start.Add(50*time.Second), time.Now().Add(70*time.Second))
}

// With its endpoint's only in-flight slot taken, a delivery waits for it, and goes (no longer
// waiting) once the slot is released.
func TestWaitingInFlightFull(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc, started, release := blockingReceiver(t)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, MaxInFlight: 1})
	first := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	testutil.Receive(t, started, 5*time.Second, "the first request")
	if d, err := e.Get(context.Background(), first); err != nil || d.Waiting == nil || d.Waiting.Reason != WaitDue {
		t.Errorf("the delivery being tried: %+v, %v; want waiting due", d, err)
	}
	id := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	waitFor(t, e, id, WaitInFlightFull)
	release()
	d := waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	if d.Waiting != nil {
		t.Errorf("a delivered delivery still waits: %+v", *d.Waiting)
	}
}

// Behind the head of its ordering line, a delivery waits for it.
func TestWaitingOrdered(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc, started, release := blockingReceiver(t)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Ordered: true})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	testutil.Receive(t, started, 5*time.Second, "the head's request")
	waitFor(t, e, ids[1], WaitOrdered)
	release()
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	}
}

// waitingOf is the one rule that reads a record's reason.
func TestWaitingOf(t *testing.T) {
	for _, c := range []struct {
		name   string
		status Status
		entry  string
		wait   WaitReason
		line   string
		tries  int
		want   *Waiting
	}{
		{"finished", StatusDelivered, "", WaitRetry, "", 2, nil},
		{"failed", StatusFailed, "", "", "k:x", 0, nil},
		{"in the stream", StatusPending, "1-0", "", "", 0, &Waiting{Reason: WaitDue}},
		{"in the stream for a retry", StatusPending, "1-0", "", "", 2, &Waiting{Reason: WaitDue, Retry: 2, Of: 3}},
		{"stale reason, in the stream", StatusPending, "1-0", WaitRetry, "", 1, &Waiting{Reason: WaitDue, Retry: 1, Of: 3}},
		{"retry", StatusPending, "", WaitRetry, "", 1, &Waiting{Reason: WaitRetry, Retry: 1, Of: 3}},
		{"breaker", StatusPending, "", WaitBreakerOpen, "", 0, &Waiting{Reason: WaitBreakerOpen}},
		{"rate", StatusPending, "", WaitRateLimited, "k:x", 1, &Waiting{Reason: WaitRateLimited, Retry: 1, Of: 3}},
		{"slots", StatusPending, "", WaitInFlightFull, "", 0, &Waiting{Reason: WaitInFlightFull}},
		{"behind its line", StatusPending, "", "", "ep:x", 0, &Waiting{Reason: WaitOrdered}},
		{"an old record", StatusPending, "", "", "", 1, &Waiting{Reason: WaitDue, Retry: 1, Of: 3}},
	} {
		got := waitingOf(c.status, c.entry, c.wait, c.line, c.tries, 3)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A dead-lettered delivery replayed behind the head of its line waits for the line, not for what
// it waited for in its former life (a retry).
func TestWaitingReplayBehindItsLine(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{10 * time.Millisecond}; c.BreakerFailures = 100 })
	started := make(chan struct{}, 16)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Webhook-Id") == "d1" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		started <- struct{}{}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Ordered: true})
	enqueue(t, e, Request{ID: "d1", EndpointID: "ep", Body: []byte(`{}`)}, Request{ID: "d2", EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, "d1", StatusFailed, 5*time.Second)
	testutil.Receive(t, started, 5*time.Second, "the request of d2, now the head")
	if err := e.Retry(context.Background(), "d1"); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, e, "d1", WaitOrdered)
	if d.Waiting.Retry != 0 {
		t.Errorf("a replay starts with fresh tries, but waits for retry %d", d.Waiting.Retry)
	}
}
