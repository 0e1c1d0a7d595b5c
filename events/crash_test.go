package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// The crash test re-executes this test binary as a child process that expands an event and hangs
// half-way, and SIGKILLs it there (or the child kills itself at the worst moment: after a batch is
// enqueued, before its cursor is saved). The parent then resumes the expansion and checks that
// every subscriber has exactly one delivery.
const (
	envChild  = "HERALD_EVENTS_CRASH_CHILD" // the mode: "hang" or "die-after-enqueue"
	envAddr   = "HERALD_EVENTS_CRASH_ADDR"
	envPrefix = "HERALD_EVENTS_CRASH_PREFIX"
)

const childBatch = 20

// TestCrashChild is the child's body; it does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envChild)
	if mode == "" {
		t.Skip("runs only as the child process of TestExpansionSurvivesKill")
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr)})
	prefix := os.Getenv(envPrefix)
	eng, err := notifier.New(rdb, notifier.Config{Prefix: prefix, AllowHTTP: true, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Prefix: prefix, BatchSize: childBatch, LeaseTTL: time.Second}
	switch mode {
	case "hang":
		// Ten batches, then the child hangs until the parent's SIGKILL (its heartbeat still
		// renewing the lease), so the kill always lands half-way however loaded the machine is.
		batches := 0
		cfg.beforeBatch = func(string, string) {
			if batches++; batches > 10 {
				select {}
			}
		}
	case "die-after-enqueue":
		batches := 0
		cfg.afterEnqueue = func(string) {
			if batches++; batches == 5 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	svc, err := New(rdb, channels.NewStore(rdb, prefix), subscribers.NewStore(rdb, prefix), eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ExpandDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Println("child finished the expansion")
}

func TestExpansionSurvivesKill(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) != "" {
		t.Skip("child process")
	}
	w := setupCrash(t)

	t.Run("SIGKILL mid-way", func(t *testing.T) {
		acc := w.b.notify(t, "big", map[string]any{"type": TypeRepublish})
		if acc.Subscribers != crashSubscribers {
			t.Fatalf("subscribers = %d, want %d", acc.Subscribers, crashSubscribers)
		}
		cmd, out := w.startChild(t, "hang")
		testutil.Eventually(t, 30*time.Second, "the child to expand ten batches and hang", func() bool { return w.enqueued(t, acc.EventID) == 10*childBatch })
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if !killed(cmd) {
			t.Fatalf("the child was not killed: %v\n%s", cmd.ProcessState, out)
		}
		done := w.enqueued(t, acc.EventID)
		if done >= crashSubscribers {
			t.Fatalf("the child finished before it was killed (%d enqueued)", done)
		}
		t.Logf("child killed after %d of %d deliveries", done, crashSubscribers)
		w.resume(t, acc.EventID)
	})

	t.Run("killed between enqueue and cursor", func(t *testing.T) {
		acc := w.b.notify(t, "big", map[string]any{"type": TypeUpdate, "update_type": UpdateCreated, "message": map[string]any{"k": "v"}})
		cmd, out := w.startChild(t, "die-after-enqueue")
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !killed(cmd) {
			t.Fatalf("the child did not die by SIGKILL: %v\n%s", err, out)
		}
		// Five batches were enqueued, the cursor of only four saved.
		if got, inEngine := w.enqueued(t, acc.EventID), len(w.b.deliveries(t, acc.EventID)); got != 4*childBatch || inEngine != 5*childBatch {
			t.Fatalf("after the crash: %d counted, %d in the engine; want %d and %d", got, inEngine, 4*childBatch, 5*childBatch)
		}
		w.resume(t, acc.EventID)
	})
}

// crashSubscribers is how many subscribers the crash test's events go to.
const crashSubscribers = 1000

// crashWorld is the crash test's world: channel "big" with crashSubscribers subscribers (whose
// endpoint nothing listens on), and a service with a short lease.
type crashWorld struct {
	b    *bundle
	addr string   // of the Redis server, for the child
	want []string // the subscriber ids, sorted
}

func setupCrash(t *testing.T) *crashWorld {
	t.Helper()
	b := setup(t, setupOpts{cfg: Config{LeaseTTL: time.Second}})
	b.channel(t, &channels.Channel{ChannelID: "big", ChannelTags: []string{"t"}})
	want := b.bulkSubscribers(t, crashSubscribers, "http://127.0.0.1:9/hook")
	return &crashWorld{b: b, addr: b.rdb.(*redis.Client).Options().Addr, want: want}
}

// startChild starts the child process in mode (see TestCrashChild) on the world's Redis and
// prefix; out collects its output.
func (w *crashWorld) startChild(t *testing.T, mode string) (cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envAddr+"="+w.addr, envPrefix+"="+w.b.prefix)
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// enqueued is how many deliveries of event id the event counts as enqueued (up to its cursor).
func (w *crashWorld) enqueued(t *testing.T, id string) int {
	t.Helper()
	v, err := w.b.rdb.HGet(context.Background(), w.b.svc.keys.event(id), fEnqueued).Result()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

// resume waits for the child's lease to run out, lets this process claim the event and finish it
// from the saved cursor, and checks that every subscriber has exactly one delivery.
func (w *crashWorld) resume(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	testutil.Eventually(t, 20*time.Second, "the parent to finish the expansion", func() bool {
		if _, err := w.b.svc.ExpandDue(ctx); err != nil {
			t.Fatal(err)
		}
		ev, err := w.b.svc.Get(ctx, id)
		return err == nil && ev.Status == StatusExpanded
	})
	if got := w.b.subscriberIDs(t, id); !slices.Equal(got, w.want) {
		t.Errorf("%d deliveries after the resume, want one for each of %d subscribers", len(got), len(w.want))
	}
	if ev, _ := w.b.svc.Get(ctx, id); ev.Enqueued != crashSubscribers || ev.Subscribers != crashSubscribers {
		t.Errorf("event counts: subscribers %d enqueued %d, want %d", ev.Subscribers, ev.Enqueued, crashSubscribers)
	}
}

func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// bulkSubscribers creates n verified subscribers (all matching every channel) with their engine
// endpoints, and returns their ids, sorted.
func (b *bundle) bulkSubscribers(t testing.TB, n int, url string) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				s, err := b.subs.Create(ctx, &subscribers.Subscriber{ID: fmt.Sprintf("sub-%05d", i), URL: url, Token: fmt.Sprintf("tok-%d", i)})
				if err == nil {
					err = b.eng.PutEndpoint(ctx, notifier.Endpoint{ID: subscribers.EndpointID(s.ID), URL: s.URL, Secret: s.Secret})
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				ids[i] = s.ID
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	b.verify(t, ids...)
	slices.Sort(ids)
	return ids
}

// TestStopHandsBack: Stop lets the current batch finish and hands the event back at once, so
// another process resumes it without waiting for the lease. A second Start is refused; a second
// Stop returns nil.
func TestStopHandsBack(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	want := b.bulkSubscribers(t, 200, "http://127.0.0.1:9/hook")

	// From the fifth batch on, the expansion waits for the test to call Stop; the expansion checks
	// for a stop before each batch, so it stops within a batch or two of the fifth, long before
	// the twentieth and last.
	batches, stopping := make(chan string, 100), make(chan struct{})
	n := 0
	slow, err := New(b.rdb, b.chans, b.subs, b.eng, Config{Prefix: b.prefix, BatchSize: 10, Prefetch: 1, LeaseTTL: time.Minute,
		beforeBatch: func(_, cursor string) {
			if n++; n >= 5 {
				<-stopping
			}
			batches <- cursor
		}})
	if err != nil {
		t.Fatal(err)
	}
	acc := b.notify(t, "c1", map[string]any{"type": TypeUnpublish})
	if err := slow.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := slow.Start(ctx); !errors.Is(err, lifecycle.ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	for i := range 4 {
		testutil.Receive(t, batches, 20*time.Second, fmt.Sprintf("batch %d of the expansion", i+1))
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	close(stopping)
	for range 2 {
		if err := slow.Stop(sctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := slow.Start(ctx); !errors.Is(err, lifecycle.ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
	ev, err := b.svc.Get(ctx, acc.EventID)
	if err != nil || ev.Status != StatusExpanding || ev.Enqueued == 0 || ev.cursor == "" {
		t.Fatalf("after Stop: %+v %v", ev, err)
	}
	owner, _ := b.rdb.HGet(ctx, b.svc.keys.event(acc.EventID), fOwner).Result()
	score, _ := b.rdb.ZScore(ctx, b.svc.keys.expand(), acc.EventID).Result()
	if owner != "" || int64(score) > time.Now().UnixMilli() {
		t.Errorf("after Stop the event is still leased: owner %q, due in %dms", owner, int64(score)-time.Now().UnixMilli())
	}
	// Another service claims it at once (the lease was a minute) and finishes it.
	b.expand(t)
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, want) {
		t.Errorf("%d deliveries, want one for each of %d subscribers", len(got), len(want))
	}
}

// TestStopBeforeStart: a service stopped before it started stays stopped; Stop is nil every time.
func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	svc, err := New(b.rdb, b.chans, b.subs, b.eng, Config{Prefix: b.prefix})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := svc.Stop(context.Background()); err != nil {
			t.Fatalf("Stop before Start: %v", err)
		}
	}
	if err := svc.Start(context.Background()); !errors.Is(err, lifecycle.ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
}
