package subscribers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/notifier"
)

func TestHealthGoneDisablesAtOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		h := NewHealth(b.store, time.Hour, nil)
		sub := mustCreate(t, b.store, newSub("https://example.com/"))
		settle(t, b.store, nil)
		h.Observe(notifier.Outcome{EndpointID: EndpointID(sub.ID), StatusCode: 410, Reason: "http_4xx"})
		got, _ := b.store.Get(ctx, sub.ID)
		if got.Status != StatusDisabled || got.DisabledReason != ReasonGone || !got.Verified {
			t.Fatalf("after 410: %+v", got)
		}
		if m, _, _ := b.store.Targets(ctx, &channels.Channel{ChannelID: "c"}, TypeUpdateNotification, "", 10); len(m) != 0 {
			t.Fatalf("a disabled subscriber matched: %v", m)
		}
		// Outcomes of other endpoints and of deleted subscribers leave nothing behind.
		h.Observe(notifier.Outcome{EndpointID: "chan:x", StatusCode: 410})
		h.Observe(notifier.Outcome{EndpointID: "sessions", StatusCode: 500})
		h.Observe(notifier.Outcome{EndpointID: EndpointID("sub_gone"), StatusCode: 500})
		if n := b.rdb.HLen(ctx, b.store.k.failing()).Val(); n != 0 {
			t.Fatalf("failing records: %d", n)
		}
	})
}

func TestHealthDisablesAfterAllFailed(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		h := NewHealth(b.store, 24*time.Hour, nil)
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
		fail := func() { h.Observe(notifier.Outcome{EndpointID: ep, StatusCode: 503, Reason: "http_5xx", Tried: true}) }

		// Waits for the breaker or the rate limit, and deliveries given up without a try, are not
		// failures of the endpoint.
		for _, r := range []string{notifier.ReasonBreakerOpen, notifier.ReasonRateLimited, notifier.ReasonMaxInFlight, notifier.ReasonMaxAge} {
			h.Observe(notifier.Outcome{EndpointID: ep, Reason: r})
		}
		b.clock.Add(25 * time.Hour)
		fail()
		b.clock.Add(23 * time.Hour)
		fail()
		if s := status(); s != StatusVerified {
			t.Fatalf("disabled too early: %s", s)
		}
		// A success starts the count again.
		h.Observe(notifier.Outcome{EndpointID: ep, Delivered: true, StatusCode: 200})
		b.clock.Add(2 * time.Hour)
		fail()
		b.clock.Add(23*time.Hour + 59*time.Minute)
		fail()
		if s := status(); s != StatusVerified {
			t.Fatalf("disabled although a delivery succeeded %s ago: %s", 24*time.Hour, s)
		}
		b.clock.Add(time.Minute)
		h.Observe(notifier.Outcome{EndpointID: ep, Reason: "timeout", Tried: true})
		got, _ := b.store.Get(ctx, sub.ID)
		if got.Status != StatusDisabled || !strings.Contains(got.DisabledReason, "every delivery failed for 24h0m0s") ||
			!strings.Contains(got.DisabledReason, "failed: timeout") {
			t.Fatalf("after 24h of failures: %+v", got)
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

// TestHealthConcurrentSuccesses: successes reported at once are cleared in groups, and each
// Observe returns only once its own subscriber's failure record is gone.
func TestHealthConcurrentSuccesses(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		hdels := &hdelCounter{key: b.store.k.failing()}
		b.rdb.AddHook(hdels) // b.rdb is this test's own client
		h := NewHealth(b.store, time.Hour, nil)
		const n = 40
		var ids []string
		for i := range n {
			ids = append(ids, mustCreate(t, b.store, newSub(fmt.Sprintf("https://example.com/%d", i))).ID)
		}
		settle(t, b.store, nil)
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				ep := EndpointID(id)
				for round := range 5 {
					h.Observe(notifier.Outcome{EndpointID: ep, StatusCode: 500, Reason: "http_5xx", Tried: true})
					if ok, _ := b.rdb.HExists(ctx, b.store.k.failing(), id).Result(); !ok {
						t.Errorf("round %d: failure of %s not recorded", round, id)
						return
					}
					h.Observe(notifier.Outcome{EndpointID: ep, Delivered: true, StatusCode: 200})
					if ok, _ := b.rdb.HExists(ctx, b.store.k.failing(), id).Result(); ok {
						t.Errorf("round %d: Observe of a success returned before %s's record was cleared", round, id)
						return
					}
				}
				h.Observe(notifier.Outcome{EndpointID: ep, StatusCode: 500, Reason: "http_5xx", Tried: true})
			})
		}
		wg.Wait()
		if got := b.rdb.HLen(ctx, b.store.k.failing()).Val(); got != n {
			t.Fatalf("%d failure records at the end, want %d", got, n)
		}
		if got, successes := hdels.n.Load(), int64(n*5); got >= successes {
			t.Fatalf("%d HDELs of the failure records for %d successes: they were not batched", got, successes)
		}
	})
}

// hdelCounter is a go-redis hook that counts the HDEL commands on one key, alone or pipelined.
type hdelCounter struct {
	key string
	n   atomic.Int64
}

func (c *hdelCounter) count(cmd redis.Cmder) {
	if args := cmd.Args(); len(args) > 1 && strings.EqualFold(cmd.Name(), "hdel") && args[1] == c.key {
		c.n.Add(1)
	}
}

func (c *hdelCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *hdelCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *hdelCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}
