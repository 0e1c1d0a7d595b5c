package notifier

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx/redistest"
)

// TestHelperProcess is not a test: TestKill9TakeOver re-executes the test binary to run it as a
// separate herald process with its own engine, which it then kills with SIGKILL.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("HERALD_NOTIFIER_CHILD") != "1" {
		t.Skip("helper process for TestKill9TakeOver")
	}
	// One address is a Redis, several a Cluster (NewUniversalClient tells them apart so).
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(os.Getenv("HERALD_NOTIFIER_REDIS"), ",")})
	cfg := testConfig(os.Getenv("HERALD_NOTIFIER_PREFIX"))
	cfg.Consumer = "child"
	cfg.QueueShards, _ = strconv.Atoi(os.Getenv("HERALD_NOTIFIER_SHARDS"))
	e, err := New(rdb, cfg)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	if err := e.Start(context.Background()); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	select {} // until killed
}

func TestKill9TakeOver(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	var mu sync.Mutex
	seen := map[string]int{}
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // slow enough that the child dies with work in flight
		mu.Lock()
		seen[r.Header.Get(webhooksig.HeaderID)]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})

	child := startChildEngine(t, rdb.(*redis.Client).Options().Addr, prefix, 1)

	cfg := testConfig(prefix)
	cfg.Consumer = "parent"
	e := startEngine(t, rdb, cfg)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, MaxInFlight: 40, RateLimitPerMinute: 100000})
	var reqs []Request
	for i := range 80 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("k%02d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	enqueue(t, e, reqs...)

	// Kill the child while it holds entries.
	ctx := context.Background()
	testutil.Eventually(t, 5*time.Second, "the child to hold work", func() bool {
		p, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: e.base().k.stream(), Group: group, Consumer: "child", Start: "-", End: "+", Count: 10}).Result()
		return err == nil && len(p) >= 3
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed := time.Now()

	for _, r := range reqs {
		waitStatus(t, e, r.ID, StatusDelivered, 10*time.Second)
	}
	t.Logf("all 80 delivered %s after the kill", time.Since(killed).Round(time.Millisecond))
	if el := time.Since(killed); el > 5*time.Second {
		t.Errorf("takeover took %s", el)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reqs {
		if seen[r.ID] == 0 {
			t.Errorf("%s never received", r.ID)
		}
	}
	if n, _ := rdb.Get(ctx, e.base().k.backlog()).Int(); n != 0 {
		t.Errorf("backlog %d, want 0", n)
	}
	// The dead consumer is cleaned out of the group once it holds nothing.
	testutil.Eventually(t, 3*time.Second, "the dead consumer to be removed", func() bool {
		cs, err := rdb.XInfoConsumers(ctx, e.base().k.stream(), group).Result()
		return err == nil && !slices.ContainsFunc(cs, func(c redis.XInfoConsumer) bool { return c.Name == "child" })
	})
}

// startChildEngine runs an engine named "child" with shards queue shards in a process of its own
// (TestHelperProcess) on Redis addrs (comma-separated: a Cluster), returning once it is
// consuming; the test may kill it.
func startChildEngine(t *testing.T, addrs, prefix string, shards int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.v=false")
	child.Env = append(os.Environ(), "HERALD_NOTIFIER_CHILD=1",
		"HERALD_NOTIFIER_REDIS="+addrs, "HERALD_NOTIFIER_PREFIX="+prefix, "HERALD_NOTIFIER_SHARDS="+strconv.Itoa(shards))
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child said %q", line)
	}
	return child
}

func TestRedisRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	cfg := testConfig("rs")
	e := startEngine(t, rdb, cfg)
	rc := newReceiver(t, nil)
	ctx := context.Background()
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("ready before restart: %v", err)
	}

	srv.Kill()
	testutil.Eventually(t, 3*time.Second, "not ready while Redis is down", func() bool { return e.Ready(ctx) != nil })
	if err := srv.Restart(); err != nil { // empty: no persistence
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "ready after the restart", func() bool { return e.Ready(ctx) == nil })

	// Everything was lost with the data; new work flows. (go-redis's pool may still answer its
	// last dial error for a moment after another call got through: a caller retries, as an API
	// client retries a 503.)
	testutil.Eventually(t, 5*time.Second, "the endpoint put after the restart", func() bool {
		return e.PutEndpoint(ctx, Endpoint{ID: "ep", URL: rc.URL}) == nil
	})
	ids = enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 10*time.Second)
	}
}

// Tries answered while Redis is down are recorded once it is back (from its AOF), without being
// made again and without holding the endpoint's in-flight slots: every delivery, including those
// waiting behind the held slots, is delivered within a few seconds of the restart, each POSTed
// once.
func TestTriesAnsweredDuringARedisOutageAreRecordedWhenItReturns(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	rdb := srv.Client(t)
	cfg := testConfig("outage")
	cfg.Heartbeat = time.Second // the reaper would need 2 s and a second POST to take a try back
	cfg.RequestTimeout = 10 * time.Second
	cfg.MaxInFlight = 4
	e := startEngine(t, rdb, cfg)
	hold := make(chan struct{})
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n <= 4 {
			<-hold // the first four tries answer only once Redis is gone
		}
		w.WriteHeader(http.StatusNoContent)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	var reqs []Request
	for i := range 12 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("o%d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	ids := enqueue(t, e, reqs...)
	testutil.Eventually(t, 5*time.Second, "four tries in flight", func() bool { return rc.count.Load() >= 4 })

	srv.Kill()
	close(hold)
	// The answers land while Redis is gone: the engine counts each try before it records it.
	testutil.Eventually(t, 15*time.Second, "the four answers to land", func() bool { return counterValue(t, e.m.attemptOK) >= 4 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	}
	t.Logf("all delivered %s after Redis returned", time.Since(back).Round(time.Millisecond))
	seen := map[string]int{}
	for _, r := range rc.received() {
		seen[r.header.Get(webhooksig.HeaderID)]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("delivery %s was POSTed %d times, want once", id, seen[id])
		}
	}
}

// counterValue and gaugeValue read a metric of the engine.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	return metricValue(t, c).GetCounter().GetValue()
}
func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	return metricValue(t, g).GetGauge().GetValue()
}

func metricValue(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}
