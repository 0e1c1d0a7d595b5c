package notifier

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/testutil"

	"github.com/heraldhq/herald/redisx/redistest"
)

func TestNeverAnsweringReceiverIsDeadLettered(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) {
		c.RequestTimeout = 100 * time.Millisecond
		c.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
		c.BreakerFailures = 100
	})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc := newReceiver(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusFailed, 5*time.Second)
	if len(d.Attempts) != 4 || d.DeadReason != ReasonMaxTries {
		t.Fatalf("%+v", d)
	}
	for _, o := range b.outcomes() {
		if o.Reason != ReasonTimeout {
			t.Errorf("outcome reason %q, want timeout", o.Reason)
		}
	}
}

func TestStopDrainsTriesInFlight(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusOK)
	})
	e := startEngine(t, rdb, testConfig(prefix))
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	testutil.Eventually(t, 2*time.Second, "the try to start", func() bool { return rc.count.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop(ctx) }()
	// Stop waits for the try in flight, then returns once it is recorded.
	testutil.Never(t, 100*time.Millisecond, "Stop to return while a try is in flight", func() bool { return len(stopped) > 0 })
	close(release)
	if err := testutil.Receive(t, stopped, 3*time.Second, "Stop to return"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	d, err := e.Get(context.Background(), ids[0])
	if err != nil || d.Status != StatusDelivered {
		t.Fatalf("after a draining stop: %+v %v", d, err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestStopDeadlinePutsTriesBackWithoutUsingThem(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	var hang = make(chan struct{})
	t.Cleanup(func() { close(hang) })
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cfg := testConfig(prefix)
	cfg.RequestTimeout = 10 * time.Second
	e := startEngine(t, rdb, cfg)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	testutil.Eventually(t, 2*time.Second, "the try to start", func() bool { return rc.count.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.Stop(ctx); err == nil {
		t.Error("stop past its deadline returned no error")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("stop took %s", el)
	}
	d, _ := e.Get(context.Background(), ids[0])
	if d.Status != StatusPending || len(d.Attempts) != 0 {
		t.Fatalf("the abandoned try counted: %+v", d)
	}
	// Another engine (or this one restarted) delivers it.
	e2 := startEngine(t, rdb, testConfig(prefix))
	d = waitStatus(t, e2, ids[0], StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 1 {
		t.Errorf("attempts %+v", d.Attempts)
	}
}

func TestIndexesOutliveTheirRecords(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	cfg := testConfig(prefix)
	cfg.Retention = time.Hour
	cfg.MaxDeliveryAge = time.Hour
	e, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	enqueue(t, e, Request{EndpointID: "ep", SubscriberID: "quiet", EventID: "evt-1", Body: []byte(`{}`)})
	// A per-subscriber, per-event and per-endpoint index lives at least as long as a record can
	// (max age + retention) after its newest entry; the global ones do not expire.
	for _, k := range []string{e.base().k.ixSubscriber("quiet"), e.base().k.ixEvent("evt-1"), e.base().k.ixEndpoint("ep")} {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl < 2*time.Hour {
			t.Errorf("%s expires in %s, want >= 2h", k, ttl)
		}
	}
	for _, k := range []string{e.base().k.ixAll()} {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl != -1 {
			t.Errorf("%s has a TTL %s", k, ttl)
		}
	}
}

// A name that passes the URL check but resolves to a private address is refused at dial time,
// and dead-lettered at once: no retry can help.
func TestPrivateAddressRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname")
	}
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 || !net.ParseIP(addrs[0]).IsLoopback() {
		t.Skipf("hostname %q does not resolve to loopback here (%v)", host, addrs)
	}
	e, b := setup(t, func(c *Config) { c.AllowPrivate = false })
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rc.URL, "http://"))
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://" + host + ":" + port + "/hook"})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusFailed, 5*time.Second)
	if d.DeadReason != ReasonRefused || len(d.Attempts) != 1 || !strings.Contains(d.Attempts[0].Error, "private targets are not allowed") {
		t.Errorf("%+v", d)
	}
	if n := rc.count.Load(); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
	testutil.Eventually(t, 2*time.Second, "the outcome", func() bool { return len(b.outcomes()) == 1 })
	if o := b.outcomes(); !o[0].Dead || o[0].Reason != ReasonRefused {
		t.Errorf("outcomes %+v", o)
	}
}

// A delivery keeps its last 100 attempts, oldest first, across replays.
func TestAttemptsAreCapped(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) {
		c.RetrySchedule = make([]time.Duration, 50)
		for i := range c.RetrySchedule {
			c.RetrySchedule[i] = time.Millisecond
		}
		c.BreakerFailures = 1000
	})
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, RateLimitPerMinute: 100000})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusFailed, 10*time.Second)
	if len(d.Attempts) != 51 {
		t.Fatalf("%d attempts, want 51", len(d.Attempts))
	}
	for range 2 {
		if err := e.Retry(context.Background(), ids[0]); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the replay to fail", func() bool {
			d, _ = e.Get(context.Background(), ids[0])
			return d.Status == StatusFailed
		})
	}
	if len(d.Attempts) != 100 {
		t.Fatalf("%d attempts kept, want 100", len(d.Attempts))
	}
	if n := rc.count.Load(); n != 153 {
		t.Errorf("receiver got %d tries, want 153", n)
	}
	for i := 1; i < len(d.Attempts); i++ {
		if d.Attempts[i].At.Before(d.Attempts[i-1].At) || d.Attempts[i].StatusCode != 500 {
			t.Fatalf("attempt %d out of order or wrong: %+v", i, d.Attempts[i])
		}
	}
}

// The engine follows the one lifecycle rule of herald's services: started once, stopped once;
// a second Start and a Start after Stop are errors, a second Stop is nothing.
func TestEngineStartsAndStopsOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	e := startEngine(t, rdb, testConfig(prefix))
	ctx := context.Background()
	if err := e.Start(ctx); !errors.Is(err, lifecycle.ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := e.Start(ctx); !errors.Is(err, lifecycle.ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}
