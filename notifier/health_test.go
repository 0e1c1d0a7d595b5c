package notifier

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
)

// healthOf reads one endpoint's health.
func healthOf(t *testing.T, e *Engine, ep string) *EndpointHealth {
	t.Helper()
	hs, err := e.Health(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	return hs[0]
}

// An endpoint whose breaker one process opened reads open, with its last error, from every
// process: the breaker is recorded in Redis under the process that holds it. Once that process is
// gone, nobody holds the breaker open any more. It holds too while the shard count changes, for
// a process of the new count, to which the endpoint has another home.
func TestHealthShowsAnOpenBreakerToEveryProcess(t *testing.T) {
	t.Parallel()
	t.Run("same shard count", func(t *testing.T) { t.Parallel(); openBreakerSeenByAnother(t, 1) })
	t.Run("another shard count", func(t *testing.T) { t.Parallel(); openBreakerSeenByAnother(t, 4) })
}

// openBreakerSeenByAnother opens ep1's breaker in a one-shard process, then reads it from one of
// shards shards.
func openBreakerSeenByAnother(t *testing.T, shards int) {
	rdb, prefix := redistest.Shared(t)
	cfg := testConfig(prefix)
	cfg.BreakerFailures = 2
	cfg.BreakerCooldown = time.Minute
	cfg.RetrySchedule = []time.Duration{time.Hour}
	cfg.Consumer = "one"
	one, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := one.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = one.Stop(context.Background()) })
	rc, _ := failingReceiver(t, http.StatusServiceUnavailable, true)
	putEndpoint(t, one, Endpoint{ID: "ep1", URL: rc.URL})
	ids := enqueue(t, one, Request{EndpointID: "ep1", Body: []byte(`{}`)}, Request{EndpointID: "ep1", Body: []byte(`{}`)})
	for _, id := range ids {
		waitFor(t, one, id, WaitRetry)
	}
	testutil.Eventually(t, 2*time.Second, "the breaker to open", func() bool { return one.BreakerState("ep1") == BreakerOpen })

	// Another process, which has tried nothing itself.
	cfg.Consumer, cfg.QueueShards = "two", shards
	two := startEngine(t, rdb, cfg)
	if shards > 1 && two.home("ep1") == two.base() {
		t.Fatal(`"ep1" lives in shard 0 under both counts: pick an endpoint id with another home`)
	}
	var h *EndpointHealth
	testutil.Eventually(t, 3*time.Second, "the other process to read the breaker open", func() bool {
		h = healthOf(t, two, "ep1")
		return h.Breaker == BreakerOpen
	})
	if len(h.Breakers) != 1 || h.Breakers[0].Process != "one" || h.Breakers[0].State != BreakerOpen || h.Breakers[0].Until == nil {
		t.Errorf("breakers %+v, want process one's, open until a probe", h.Breakers)
	}
	if h.LastError != "HTTP 503" || h.LastStatusCode != 503 || h.LastFailureAt == nil || h.LastSuccessAt != nil {
		t.Errorf("last error %q (%d) at %v, last success %v; want HTTP 503 and no success", h.LastError, h.LastStatusCode, h.LastFailureAt, h.LastSuccessAt)
	}
	if r := h.Recent; r.Tries != 2 || r.Failures != 2 || r.SuccessRate == nil || *r.SuccessRate != 0 || r.WindowSeconds != 3600 {
		t.Errorf("recent %+v, want 2 tries, 2 failures, success rate 0 over an hour", r)
	}
	if own := healthOf(t, one, "ep1"); own.Breaker != BreakerOpen {
		t.Errorf("the process holding it reads %s", own.Breaker)
	}

	if err := one.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h = healthOf(t, two, "ep1")
	if h.Breaker != BreakerClosed || len(h.Breakers) != 0 {
		t.Errorf("after its process stopped, the breaker reads %s %+v; want closed, none listed", h.Breaker, h.Breakers)
	}
	if h.LastError != "HTTP 503" {
		t.Errorf("the last error was lost: %q", h.LastError)
	}
}

// A healthy endpoint costs one health write a minute per process, not one per delivery; the
// first success after a failure is written at once, and Stop writes what is left.
func TestHealthWritesSuccessesRarely(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	cfg := testConfig(prefix)
	cfg.BreakerFailures = 100
	cfg.RetrySchedule = []time.Duration{2 * healthFlushEvery} // the failure is written before the retry
	e, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = e.Stop(context.Background())
		}
	})
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	first := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	testutil.Eventually(t, 3*time.Second, "the failure to be recorded", func() bool { return healthOf(t, e, "ep").LastFailureAt != nil })
	waitStatus(t, e, first, StatusDelivered, 5*time.Second)
	var h *EndpointHealth
	testutil.Eventually(t, 3*time.Second, "the success after the failure to be recorded", func() bool {
		h = healthOf(t, e, "ep")
		return h.LastSuccessAt != nil
	})
	if h.LastFailureAt == nil || !h.LastSuccessAt.After(*h.LastFailureAt) || h.Recent.Tries != 2 || h.Recent.Failures != 1 ||
		h.Recent.SuccessRate == nil || *h.Recent.SuccessRate != 0.5 {
		t.Errorf("health %+v (recent %+v), want a failure then a success, rate 0.5", h, h.Recent)
	}

	var more []Request
	for range 5 {
		more = append(more, Request{EndpointID: "ep", Body: []byte(`{}`)})
	}
	for _, id := range enqueue(t, e, more...) {
		waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	}
	testutil.Never(t, 3*healthFlushEvery/2, "a health write for successes within a minute", func() bool {
		return healthOf(t, e, "ep").Recent.Tries != 2
	})
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if h := healthOf(t, e, "ep"); h.Recent.Tries != 7 || h.Recent.Failures != 1 {
		t.Errorf("after stop: recent %+v, want the 7 tries written", h.Recent)
	}
}

// Deleting an endpoint deletes its health, and a tally written after is dropped.
func TestHealthGoesWithItsEndpoint(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{time.Hour} })
	rc, _ := failingReceiver(t, http.StatusInternalServerError, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	waitFor(t, e, enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0], WaitRetry)
	testutil.Eventually(t, 3*time.Second, "the failure to be recorded", func() bool { return healthOf(t, e, "ep").LastFailureAt != nil })
	if err := e.DeleteEndpoint(context.Background(), "ep"); err != nil {
		t.Fatal(err)
	}
	if n, err := b.rdb.Exists(context.Background(), e.home("ep").k.health("ep")).Result(); err != nil || n != 0 {
		t.Errorf("the deleted endpoint's health is still there (%d, %v)", n, err)
	}
	br := &breaker{ep: "ep"}
	e.noteTry(br, false, "HTTP 500", 500, e.nowMS())
	e.flushHealth(context.Background(), true)
	if n, _ := b.rdb.Exists(context.Background(), e.home("ep").k.health("ep")).Result(); n != 0 {
		t.Error("a tally of a deleted endpoint brought its health back")
	}
}

// healthDue is the rule for when a tally is written.
func TestHealthDue(t *testing.T) {
	const now = int64(10 * time.Minute / time.Millisecond)
	quiet := healthQuietEvery.Milliseconds()
	for _, c := range []struct {
		name  string
		t     tally
		final bool
		want  bool
	}{
		{"nothing", tally{}, false, false},
		{"nothing, final", tally{}, true, false},
		{"a failure", tally{tries: 1, failures: 1, writtenAt: now}, false, true},
		{"a breaker change", tally{breaker: BreakerOpen, writtenAt: now}, false, true},
		{"a success after a written failure", tally{tries: 1, failing: true, writtenAt: now}, false, true},
		{"successes, written just now", tally{tries: 9, writtenAt: now - 1}, false, false},
		{"successes, final", tally{tries: 9, writtenAt: now - 1}, true, true},
		{"successes, a quiet while on", tally{tries: 9, writtenAt: now - quiet}, false, true},
		{"the first success", tally{tries: 1}, false, true},
	} {
		if got := healthDue(&c.t, now, c.final); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
