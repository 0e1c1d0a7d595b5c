package subscribers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
)

// startHealth returns a running Health for b's store, stopped when the test ends.
func startHealth(t *testing.T, b *bundle, disableAfter time.Duration) *Health {
	t.Helper()
	h := NewHealth(b.store, &engineStub{}, disableAfter, nil)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	return h
}

// engineStub is the delivery engine as Health sees it: it records the endpoints disabled, and
// fails the first calls with fail's errors when set.
type engineStub struct {
	mu       sync.Mutex
	disabled []string
	fail     []error
}

func (e *engineStub) DisableEndpoint(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.fail) > 0 {
		err := e.fail[0]
		e.fail = e.fail[1:]
		return err
	}
	e.disabled = append(e.disabled, id)
	return nil
}

func (e *engineStub) endpoints() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.disabled)
}

// mustFlush writes what h holds, as h's goroutine does, failing t on an error. Tests that need no
// goroutine call it on a Health that was never started.
func (h *Health) mustFlush(t *testing.T) {
	t.Helper()
	if _, err := h.flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

func TestHealthGoneDisablesAtOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		eng := &engineStub{}
		h := NewHealth(b.store, eng, time.Hour, nil)
		sub := mustCreate(t, b.store, newSub("https://example.com/"))
		settle(t, b.store, nil)
		h.Observe(notifier.Outcome{EndpointID: EndpointID(sub.ID), SubscriberID: sub.ID, StatusCode: 410, Reason: notifier.ReasonGone})
		h.mustFlush(t)
		got, _ := b.store.Get(ctx, sub.ID)
		if got.Status != StatusDisabled || got.DisabledReason != ReasonGone || !got.Verified {
			t.Fatalf("after 410: %+v", got)
		}
		if d := eng.endpoints(); !slices.Equal(d, []string{EndpointID(sub.ID)}) {
			t.Fatalf("engine endpoints disabled: %v, want the subscriber's", d)
		}
		if m, _, _ := b.store.Targets(ctx, &channels.Channel{ChannelID: "c"}, TypeUpdateNotification, "", 10); len(m) != 0 {
			t.Fatalf("a disabled subscriber matched: %v", m)
		}
		// Outcomes of other endpoints and of deleted subscribers leave nothing behind.
		h.Observe(notifier.Outcome{EndpointID: "chan:x", StatusCode: 410})
		h.Observe(notifier.Outcome{EndpointID: "sessions", StatusCode: 500})
		h.Observe(notifier.Outcome{EndpointID: EndpointID("sub_gone"), SubscriberID: "sub_gone", StatusCode: 500, Tried: true})
		h.Observe(notifier.Outcome{EndpointID: EndpointID("sub_gone2"), SubscriberID: "sub_gone2", StatusCode: 410})
		h.mustFlush(t)
		if n := b.rdb.HLen(ctx, b.store.k.failing()).Val(); n != 0 {
			t.Fatalf("failing records: %d", n)
		}
		if d := eng.endpoints(); len(d) != 1 {
			t.Fatalf("engine endpoints disabled: %v, want only the subscriber's", d)
		}
	})
}

func TestHealthDisablesAfterAllFailed(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		eng := &engineStub{}
		h := NewHealth(b.store, eng, 24*time.Hour, nil)
		sub := mustCreate(t, b.store, newSub("https://example.com/"))
		settle(t, b.store, nil)
		ep := EndpointID(sub.ID)
		status := func() string {
			got, err := b.store.Get(ctx, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status
		}
		observe := func(o notifier.Outcome) { h.Observe(o); h.mustFlush(t) }
		fail := func() {
			observe(notifier.Outcome{EndpointID: ep, SubscriberID: sub.ID, StatusCode: 503, Reason: "http_5xx", Tried: true})
		}

		// Waits for the breaker or the rate limit, and deliveries given up without a try, are not
		// failures of the endpoint.
		for _, r := range []string{notifier.ReasonBreakerOpen, notifier.ReasonRateLimited, notifier.ReasonMaxInFlight, notifier.ReasonMaxAge} {
			observe(notifier.Outcome{EndpointID: ep, SubscriberID: sub.ID, Reason: r})
		}
		b.clock.Add(25 * time.Hour)
		fail()
		b.clock.Add(23 * time.Hour)
		fail()
		if s := status(); s != StatusVerified {
			t.Fatalf("disabled too early: %s", s)
		}
		// A success starts the count again.
		observe(notifier.Outcome{EndpointID: ep, SubscriberID: sub.ID, Delivered: true, StatusCode: 200})
		b.clock.Add(2 * time.Hour)
		fail()
		b.clock.Add(23*time.Hour + 59*time.Minute)
		fail()
		if s := status(); s != StatusVerified || len(eng.endpoints()) != 0 {
			t.Fatalf("disabled although a delivery succeeded %s ago: %s, engine endpoints %v", 24*time.Hour, s, eng.endpoints())
		}
		b.clock.Add(time.Minute)
		observe(notifier.Outcome{EndpointID: ep, SubscriberID: sub.ID, Reason: "timeout", Tried: true})
		got, _ := b.store.Get(ctx, sub.ID)
		if got.Status != StatusDisabled || !strings.Contains(got.DisabledReason, "every delivery failed for 24h0m0s") ||
			!strings.Contains(got.DisabledReason, "failed: timeout") {
			t.Fatalf("after 24h of failures: %+v", got)
		}
		if d := eng.endpoints(); !slices.Equal(d, []string{ep}) {
			t.Fatalf("engine endpoints disabled: %v, want the subscriber's", d)
		}
		// Re-enabling (an update) clears the record: it takes another full period to disable again.
		if _, err := b.store.Update(ctx, sub.ID, func(*Subscriber) error { return nil }); err != nil {
			t.Fatal(err)
		}
		settle(t, b.store, nil)
		fail()
		if s := status(); s != StatusVerified {
			t.Fatalf("after re-enable, one failure disabled it again: %s", s)
		}
	})
}

// TestHealthObserveNeverWaitsForRedis: while Health's write is stuck in Redis, Observe still
// returns at once; the outcomes handed over meanwhile coalesce to one entry per subscriber, and
// Stop writes them in order once Redis answers: a 410 disables, a failure after a success starts
// a new failure record, a success clears it.
func TestHealthObserveNeverWaitsForRedis(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		const n = 20
		ids := createSubs(t, b, n)
		g := newGate(b.store.k.failing())
		b.rdb.AddHook(g) // b.rdb is this test's own client
		h := NewHealth(b.store, &engineStub{}, 24*time.Hour, nil)
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[0]), SubscriberID: ids[0], StatusCode: 500, Tried: true})
		testutil.Receive(t, g.entered, 10*time.Second, "Health writing ids[0]'s failure") // now blocked in Redis

		observed := make(chan struct{})
		failedAfterSuccess := b.clock.Now().Add(2 * time.Minute)
		go func() {
			defer close(observed)
			observeSequence(h, b.clock, ids)
		}()
		testutil.Receive(t, observed, 10*time.Second, "Observe to return while Redis is blocked")
		before := g.n.Load()
		close(g.release)
		if err := h.Stop(ctx); err != nil { // Stop drains what was handed over
			t.Fatal(err)
		}
		if got, _ := b.store.Get(ctx, ids[0]); got.Status != StatusDisabled || got.DisabledReason != ReasonGone {
			t.Fatalf("a 410 observed while Redis was blocked did not disable: %+v", got)
		}
		records := b.rdb.HGetAll(ctx, b.store.k.failing()).Val()
		want := strconv.FormatInt(failedAfterSuccess.UnixMilli(), 10)
		for _, id := range ids[1 : n-1] {
			if records[id] != want {
				t.Errorf("%s: failure record %q, want %q (the first failure after the success)", id, records[id], want)
			}
		}
		if r, ok := records[ids[n-1]]; ok {
			t.Errorf("the failure record of a subscriber whose last delivery succeeded: %q", r)
		}
		// The blocked batch, then one batch: the Disable, one HDEL, one failure script; each script
		// may take an EVALSHA and an EVAL.
		if cmds := g.n.Load() - before; cmds > 7 {
			t.Errorf("%d Redis commands for the %d outcomes handed over while blocked: not batched", cmds, 4*(n-1)+3)
		}
	})
}

// TestHealthConcurrentObservers: outcomes observed from many goroutines at once end in the state
// their order gives, written with fewer commands than outcomes.
func TestHealthConcurrentObservers(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		g := newGate(b.store.k.failing())
		close(g.release)
		b.rdb.AddHook(g)
		h := startHealth(t, b, time.Hour)
		const n, rounds = 40, 5
		ids := createSubs(t, b, n)
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				ep := EndpointID(id)
				for range rounds {
					h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 500, Reason: "http_5xx", Tried: true})
					h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, Delivered: true, StatusCode: 200})
				}
				h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 500, Reason: "http_5xx", Tried: true})
			})
		}
		wg.Wait()
		if err := h.Stop(ctx); err != nil { // Stop writes what was handed over
			t.Fatal(err)
		}
		failing := b.rdb.HKeys(ctx, b.store.k.failing()).Val()
		slices.Sort(failing)
		slices.Sort(ids)
		if !slices.Equal(failing, ids) {
			t.Fatalf("failure records %v, want one per subscriber", failing)
		}
		if got, outcomes := g.n.Load(), int64(n*(2*rounds+1)); got >= outcomes {
			t.Fatalf("%d commands for %d outcomes: they were not batched", got, outcomes)
		}
	})
}

// createSubs creates n verified subscribers and returns their ids.
func createSubs(t *testing.T, b *bundle, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, mustCreate(t, b.store, newSub(fmt.Sprintf("https://example.com/%d", i))).ID)
	}
	settle(t, b.store, nil)
	return ids
}

// observeSequence hands h, a minute apart, a failure, a success and two failures for every
// subscriber but the first, then a 410 and a success for the first and a success for the last.
func observeSequence(h *Health, c *clock, ids []string) {
	fail := func(id string) {
		h.Observe(notifier.Outcome{EndpointID: EndpointID(id), SubscriberID: id, StatusCode: 500, Reason: "http_5xx", Tried: true})
	}
	succeed := func(id string) {
		h.Observe(notifier.Outcome{EndpointID: EndpointID(id), SubscriberID: id, Delivered: true, StatusCode: 200})
	}
	for _, step := range []func(string){fail, succeed, fail, fail} {
		for _, id := range ids[1:] {
			step(id)
		}
		c.Add(time.Minute)
	}
	h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[0]), SubscriberID: ids[0], StatusCode: 410, Tried: true})
	succeed(ids[0]) // a success after a 410 does not undo it
	succeed(ids[len(ids)-1])
}

// gate is a go-redis hook on the commands that name one key: it counts them and holds each until
// release is closed, closing entered when the first one arrives.
type gate struct {
	key     string
	n       atomic.Int64
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newGate(key string) *gate {
	return &gate{key: key, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hold(ctx context.Context, cmds ...redis.Cmder) error {
	for _, cmd := range cmds {
		if slices.Contains(cmd.Args()[1:], any(g.key)) {
			g.n.Add(1)
			g.once.Do(func() { close(g.entered) })
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := g.hold(ctx, cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := g.hold(ctx, cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// TestObservedThen: merging outcomes keeps what their order means.
func TestObservedThen(t *testing.T) {
	t.Parallel()
	t1, t2, t3 := time.Unix(1, 0), time.Unix(2, 0), time.Unix(3, 0)
	fail := func(at time.Time) observed {
		return observed{failFrom: at, failAt: at, last: notifier.Outcome{Reason: at.String()}}
	}
	ok, gone := observed{clear: true}, observed{gone: true}
	for _, c := range []struct {
		name string
		got  observed
		want observed
	}{
		{"fail, fail", fail(t1).then(fail(t2)), observed{failFrom: t1, failAt: t2, last: fail(t2).last}},
		{"fail, success", fail(t1).then(ok), ok},
		{"success, fail", ok.then(fail(t2)), observed{clear: true, failFrom: t2, failAt: t2, last: fail(t2).last}},
		{"fail, success, fail, fail", fail(t1).then(ok).then(fail(t2)).then(fail(t3)),
			observed{clear: true, failFrom: t2, failAt: t3, last: fail(t3).last}},
		{"410, success", gone.then(ok), observed{gone: true, clear: true}},
		{"success, 410", ok.then(gone), observed{gone: true, clear: true}},
		{"fail, 410", fail(t1).then(gone), observed{gone: true, failFrom: t1, failAt: t1, last: fail(t1).last}},
	} {
		if c.got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

// TestHealthStopWritesWhatWasHandedOver: Stop writes the outcomes handed over while the goroutine
// was busy, even when nothing but Stop wakes it; a Health runs once.
func TestHealthStopWritesWhatWasHandedOver(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		ids := createSubs(t, b, 2)
		g := newGate(b.store.k.failing())
		b.rdb.AddHook(g)
		h := NewHealth(b.store, &engineStub{}, 24*time.Hour, nil)
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); !errors.Is(err, lifecycle.ErrStarted) {
			t.Fatalf("second Start: %v, want ErrStarted", err)
		}
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[0]), SubscriberID: ids[0], StatusCode: 500, Tried: true})
		testutil.Receive(t, g.entered, 10*time.Second, "Health writing ids[0]'s failure")
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[1]), SubscriberID: ids[1], StatusCode: 500, Tried: true})
		// The goroutine is held in Redis: take its wake-up, so that only Stop makes it write ids[1].
		testutil.Receive(t, h.wake, time.Second, "Observe's wake-up")
		close(g.release)
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if !b.rdb.HExists(ctx, b.store.k.failing(), id).Val() {
				t.Errorf("%s: the failure handed over before Stop was not written", id)
			}
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if err := h.Start(ctx); !errors.Is(err, lifecycle.ErrStopped) {
			t.Fatalf("Start after Stop: %v, want ErrStopped", err)
		}
	})
}

// TestHealthStopDeadline: a Stop whose ctx ends while the last write is stuck in Redis cancels it
// and returns ctx's error.
func TestHealthStopDeadline(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ids := createSubs(t, b, 1)
		g := newGate(b.store.k.failing()) // never released
		b.rdb.AddHook(g)
		h := startHealth(t, b, 24*time.Hour)
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[0]), SubscriberID: ids[0], StatusCode: 500, Tried: true})
		testutil.Receive(t, g.entered, 10*time.Second, "Health writing the failure")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := h.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop past its deadline: %v, want DeadlineExceeded", err)
		}
	})
}

// TestHealthSuccessStartsANewFailureRecord: a success and a failure written together replace the
// failure record of an earlier failure, so the count starts again at the new failure.
func TestHealthSuccessStartsANewFailureRecord(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		h := NewHealth(b.store, &engineStub{}, 24*time.Hour, nil)
		id := createSubs(t, b, 1)[0]
		ep := EndpointID(id)
		h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 500, Tried: true})
		h.mustFlush(t)
		b.clock.Add(25 * time.Hour)
		h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, Delivered: true, StatusCode: 200})
		h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 500, Tried: true})
		h.mustFlush(t)
		if got, _ := b.store.Get(ctx, id); got.Status != StatusVerified {
			t.Fatalf("disabled by a failure that came right after a success: %s %q", got.Status, got.DisabledReason)
		}
		want := strconv.FormatInt(b.clock.Now().UnixMilli(), 10)
		if got := b.rdb.HGet(ctx, b.store.k.failing(), id).Val(); got != want {
			t.Fatalf("failure record %q, want %q (the failure after the success)", got, want)
		}
	})
}

// TestHealthGoneAfterFailuresDisables: a 410 written in the same batch as failures before it
// disables.
func TestHealthGoneAfterFailuresDisables(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		h := NewHealth(b.store, &engineStub{}, 24*time.Hour, nil)
		id := createSubs(t, b, 1)[0]
		ep := EndpointID(id)
		h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 500, Tried: true})
		h.Observe(notifier.Outcome{EndpointID: ep, SubscriberID: id, StatusCode: 410, Tried: true})
		h.mustFlush(t)
		if got, _ := b.store.Get(context.Background(), id); got.Status != StatusDisabled || got.DisabledReason != ReasonGone {
			t.Fatalf("a 410 after failures did not disable: %s %q", got.Status, got.DisabledReason)
		}
	})
}

// TestHealthRetriesTransientErrors: a batch whose write fails for a transient error is kept and
// written later.
func TestHealthRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		id := createSubs(t, b, 1)[0]
		reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		// The first failure script fails (the test's own HGETs name the key too).
		f := newFault(1, reset, func(args []any) bool {
			return slices.Contains([]any{"evalsha", "eval"}, args[0]) && slices.Contains(args, any(b.store.k.failing()))
		})
		b.rdb.AddHook(f)
		h := startHealth(t, b, 24*time.Hour)
		h.Observe(notifier.Outcome{EndpointID: EndpointID(id), SubscriberID: id, StatusCode: 500, Tried: true})
		want := strconv.FormatInt(b.clock.Now().UnixMilli(), 10)
		testutil.Eventually(t, 10*time.Second, "the failure written after a transient error", func() bool {
			return b.rdb.HGet(ctx, b.store.k.failing(), id).Val() == want
		})
		if n := f.failed.Load(); n != 1 {
			t.Fatalf("%d writes failed, want 1", n)
		}
	})
}

// TestHealthPermanentErrorsDoNotStall: a Disable that fails for good is logged and skipped, the
// rest of its batch written; a batch that fails for good is dropped, and the batches after it are
// written.
func TestHealthPermanentErrorsDoNotStall(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		ids := createSubs(t, b, 4)
		broken := errors.New("injected: ERR this never works")
		// Every Disable of ids[0] fails (it reads the subscriber's version first), and every
		// failure script that names ids[2].
		b.rdb.AddHook(newFault(-1, broken, func(args []any) bool {
			return slices.Contains(args, any(b.store.k.versions())) && slices.Contains(args, any(ids[0]))
		}))
		script := newFault(-1, broken, func(args []any) bool {
			return slices.Contains(args, any(b.store.k.failing())) && slices.Contains(args, any(ids[2]))
		})
		b.rdb.AddHook(script)
		var logs bytes.Buffer
		eng := &engineStub{}
		h := NewHealth(b.store, eng, 24*time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
		for _, id := range ids[:2] {
			h.Observe(notifier.Outcome{EndpointID: EndpointID(id), SubscriberID: id, StatusCode: 410, Tried: true})
		}
		h.mustFlush(t)
		if got, _ := b.store.Get(ctx, ids[0]); got.Status != StatusVerified {
			t.Fatalf("a Disable that fails changed the subscriber: %s %q", got.Status, got.DisabledReason)
		}
		if got, _ := b.store.Get(ctx, ids[1]); got.Status != StatusDisabled {
			t.Fatalf("a 410 batched with a failing Disable did not disable: %s %q", got.Status, got.DisabledReason)
		}
		if out := logs.String(); !strings.Contains(out, ids[0]) || !strings.Contains(out, "injected") {
			t.Fatalf("the failed Disable was not logged: %s", out)
		}
		if d := eng.endpoints(); !slices.Equal(d, []string{EndpointID(ids[1])}) {
			t.Fatalf("engine endpoints disabled: %v, want only that of the subscriber disabled", d)
		}

		// Through the goroutine: ids[2]'s batch fails for good; ids[3]'s, after it, is written.
		h = NewHealth(b.store, &engineStub{}, 24*time.Hour, slog.New(slog.DiscardHandler))
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop(context.Background()) })
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[2]), SubscriberID: ids[2], StatusCode: 500, Tried: true})
		testutil.Eventually(t, 10*time.Second, "ids[2]'s failure script to fail", func() bool { return script.failed.Load() > 0 })
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[3]), SubscriberID: ids[3], StatusCode: 500, Tried: true})
		testutil.Eventually(t, 10*time.Second, "the failure after a dropped batch written", func() bool {
			return b.rdb.HExists(ctx, b.store.k.failing(), ids[3]).Val()
		})
		if b.rdb.HExists(ctx, b.store.k.failing(), ids[2]).Val() {
			t.Fatal("a failure script that always fails wrote a record")
		}
	})
}

// TestHealthEndpointErrors: a subscriber's engine endpoint that could not be disabled for a
// transient error is disabled when the batch is written again; one that fails for good is logged
// and skipped, and the other subscribers' endpoints are disabled.
func TestHealthEndpointErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ids := createSubs(t, b, 2)
		reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		eng := &engineStub{fail: []error{reset}}
		h := NewHealth(b.store, eng, 24*time.Hour, slog.New(slog.DiscardHandler))
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop(context.Background()) })
		h.Observe(notifier.Outcome{EndpointID: EndpointID(ids[0]), SubscriberID: ids[0], StatusCode: 410, Tried: true})
		testutil.Eventually(t, 10*time.Second, "the endpoint disabled after a transient error", func() bool {
			return slices.Equal(eng.endpoints(), []string{EndpointID(ids[0])})
		})

		var logs bytes.Buffer
		eng = &engineStub{fail: []error{errors.New("injected: ERR this never works")}}
		h = NewHealth(b.store, eng, 24*time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
		for _, id := range ids {
			h.Observe(notifier.Outcome{EndpointID: EndpointID(id), SubscriberID: id, StatusCode: 410, Tried: true})
		}
		h.mustFlush(t)
		if d := eng.endpoints(); len(d) != 1 {
			t.Fatalf("engine endpoints disabled: %v, want the one that did not fail", d)
		}
		if out := logs.String(); !strings.Contains(out, "injected") {
			t.Fatalf("the failed DisableEndpoint was not logged: %s", out)
		}
	})
}

// fault is a go-redis hook that fails, with err, the commands whose arguments match picks: the
// first times of them, or every one when times < 0. failed counts the ones it failed.
type fault struct {
	match  func(args []any) bool
	err    error
	left   atomic.Int64
	failed atomic.Int64
}

func newFault(times int64, err error, match func(args []any) bool) *fault {
	f := &fault{match: match, err: err}
	if times < 0 {
		times = math.MaxInt64
	}
	f.left.Store(times)
	return f
}

func (f *fault) check(cmds ...redis.Cmder) error {
	for _, cmd := range cmds {
		if f.match(cmd.Args()) && f.left.Add(-1) >= 0 {
			f.failed.Add(1)
			return f.err
		}
	}
	return nil
}

func (f *fault) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *fault) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := f.check(cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (f *fault) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := f.check(cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}
