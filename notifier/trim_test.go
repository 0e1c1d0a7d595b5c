package notifier

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
)

// Acknowledged entries stay in the stream until the reaper trims it; an entry still in flight is
// never trimmed (a takeover must still find it), and the queue depth counts only what is due.
func TestStreamTrimmedButNotPastTheOldestInFlight(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// The slow try must outlast the test: with the usual 2 s timeout it could end (and be retried
	// under a new entry) while a loaded machine still delivers the fast ones.
	e, b := setup(t, func(c *Config) { c.Registerer = reg; c.RequestTimeout = time.Minute })
	ctx := context.Background()
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	defer close(release)
	fast := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "slow", URL: slow.URL})
	putEndpoint(t, e, Endpoint{ID: "fast", URL: fast.URL, RateLimitPerMinute: 100_000, MaxInFlight: 50})

	hung := enqueue(t, e, Request{EndpointID: "slow", Body: []byte(`{}`)})[0]
	testutil.Eventually(t, 5*time.Second, "the slow try to start", func() bool { return slow.count.Load() == 1 })
	var reqs []Request
	for i := range 500 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("f%d", i), EndpointID: "fast", Body: []byte(`{}`)})
	}
	enqueue(t, e, reqs...)
	testutil.Eventually(t, 10*time.Second, "the fast deliveries", func() bool { return fast.count.Load() == 500 })
	sid := b.rdb.HGet(ctx, e.base().k.record(hung), string(fieldEntry)).Val()
	if sid == "" {
		t.Fatal("the hung delivery has no stream entry")
	}
	// Over several beats the trim runs, and keeps everything from the hung entry on.
	testutil.Never(t, 5*e.cfg.Heartbeat, "the stream trimmed past the oldest entry in flight", func() bool {
		return len(b.rdb.XRange(ctx, e.base().k.stream(), sid, sid).Val()) != 1 || b.rdb.XLen(ctx, e.base().k.stream()).Val() < 500
	})
	// Queue depth: the one in flight is ready; the 500 acknowledged ones are not. The oldest is
	// the one in flight.
	testutil.Eventually(t, 3*time.Second, "the queue depth", func() bool {
		return gauge(t, reg, "herald_delivery_queue_depth", "ready") == 1 &&
			gauge(t, reg, "herald_delivery_queue_oldest_age_seconds", "") >= 5*e.cfg.Heartbeat.Seconds()
	})
	release <- struct{}{}
	waitStatus(t, e, hung, StatusDelivered, 5*time.Second)
	testutil.Eventually(t, 5*time.Second, "the stream to be trimmed", func() bool { return b.rdb.XLen(ctx, e.base().k.stream()).Val() <= 100 })
}

// gauge reads one gauge from reg: the one whose first label has value label ("" for none).
func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" && len(m.GetLabel()) == 0 || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
