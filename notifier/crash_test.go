package notifier

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx/redistest"
)

// TestHelperProcess is not a test: TestKill9TakeOver re-executes the test binary to run it as a
// separate herald process with its own engine, which it then kills with SIGKILL.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("HERALD_NOTIFIER_CHILD") != "1" {
		t.Skip("helper process for TestKill9TakeOver")
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("HERALD_NOTIFIER_REDIS")})
	cfg := testConfig(os.Getenv("HERALD_NOTIFIER_PREFIX"))
	cfg.Consumer = "child"
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
		seen[r.Header.Get(HeaderID)]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.v=false")
	child.Env = append(os.Environ(), "HERALD_NOTIFIER_CHILD=1",
		"HERALD_NOTIFIER_REDIS="+rdb.(*redis.Client).Options().Addr, "HERALD_NOTIFIER_PREFIX="+prefix)
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
	waitFor(t, 5*time.Second, "the child to hold work", func() bool {
		p, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: e.k.stream(), Group: group, Consumer: "child", Start: "-", End: "+", Count: 10}).Result()
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
	if n, _ := rdb.Get(ctx, e.k.backlog()).Int(); n != 0 {
		t.Errorf("backlog %d, want 0", n)
	}
	// The dead consumer is cleaned out of the group once it holds nothing.
	waitFor(t, 3*time.Second, "the dead consumer to be removed", func() bool {
		cs, err := rdb.XInfoConsumers(ctx, e.k.stream(), group).Result()
		if err != nil {
			return false
		}
		for _, c := range cs {
			if c.Name == "child" {
				return false
			}
		}
		return true
	})
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
	waitFor(t, 3*time.Second, "not ready while Redis is down", func() bool { return e.Ready(ctx) != nil })
	if err := srv.Restart(); err != nil { // empty: no persistence
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "ready after the restart", func() bool { return e.Ready(ctx) == nil })

	// Everything was lost with the data; new work flows.
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids = enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)}, Request{EndpointID: "ep", Body: []byte(`{}`)})
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 10*time.Second)
	}
}
