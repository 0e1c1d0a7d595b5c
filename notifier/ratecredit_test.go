package notifier

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"

	"github.com/go-redis/redis_rate/v10"
)

func TestCreditExtra(t *testing.T) {
	for _, c := range []struct{ perMinute, want int }{
		{100, 0}, {5999, 0}, // every token counts: no credit
		{6000, 64}, {60_000, 64}, {10_000_000, 64}, // a second's worth, capped
	} {
		if got := creditExtra(c.perMinute); got != c.want {
			t.Errorf("creditExtra(%d) = %d, want %d", c.perMinute, got, c.want)
		}
	}
}

func TestRateCreditsSpendAndLapse(t *testing.T) {
	var c rateCredits
	now := time.Unix(1000, 0)
	if n := c.take("ep", 3, now); n != 0 {
		t.Fatalf("took %d from nothing", n)
	}
	c.keep("ep", 5, now)
	if n := c.take("ep", 3, now.Add(10*time.Millisecond)); n != 3 {
		t.Fatalf("took %d of 5, want 3", n)
	}
	if n := c.take("ep", 3, now.Add(20*time.Millisecond)); n != 2 {
		t.Fatalf("took %d of the 2 left, want 2", n)
	}
	if n := c.take("ep", 1, now.Add(30*time.Millisecond)); n != 0 {
		t.Fatalf("took %d after all was spent", n)
	}
	c.keep("ep", 4, now)
	if n := c.take("ep", 4, now.Add(creditWindow)); n != 0 {
		t.Fatalf("took %d of lapsed credit", n)
	}
	// A fresh grant replaces what is left: never more than one grant's surplus is held.
	c.keep("ep", 4, now)
	c.keep("ep", 2, now.Add(time.Millisecond))
	if n := c.take("ep", 10, now.Add(2*time.Millisecond)); n != 2 {
		t.Fatalf("took %d, want the newest grant's 2", n)
	}
	c.keep("other", 0, now)
	if len(c.m) != 0 {
		t.Fatalf("credit map holds %v", c.m)
	}
}

func TestRateCreditsBounded(t *testing.T) {
	var c rateCredits
	now := time.Unix(1000, 0)
	for i := range maxCreditEndpoints + 100 {
		c.keep(fmt.Sprintf("ep%d", i), 3, now)
	}
	if len(c.m) != maxCreditEndpoints {
		t.Fatalf("%d endpoints hold credit, want the bound %d", len(c.m), maxCreditEndpoints)
	}
	// Once the others lapsed, a sweep makes room.
	later := now.Add(creditWindow)
	c.keep("new", 3, later)
	if len(c.m) != 1 || c.take("new", 3, later) != 3 {
		t.Fatalf("after the sweep: %d endpoints, want 1", len(c.m))
	}
}

// An endpoint whose limit gets credit still gets no more than the shared limit grants, whichever
// of two engines sends: at 6,000 a minute (100 a second) with 100 tokens of its burst left, the
// i-th of 150 deliveries arrives no sooner than the limiter can have granted i tokens.
func TestRateLimitHoldsWithCredit(t *testing.T) {
	t.Parallel()
	e1, b := setup(t, nil)
	e2 := startEngine(t, b.rdb, testConfig(b.prefix))
	rc := newReceiver(t, nil)
	putEndpoint(t, e1, Endpoint{ID: "ep", URL: rc.URL, RateLimitPerMinute: 6000, MaxInFlight: 50})
	lim := redis_rate.NewLimiter(b.rdb)
	start := time.Now()
	if _, err := lim.AllowN(context.Background(), e1.base().k.rate("ep"), redis_rate.PerMinute(6000), 5900); err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i := range 150 {
		reqs = append(reqs, Request{ID: fmt.Sprintf("r%d", i), EndpointID: "ep", Body: []byte(`{}`)})
	}
	enqueue(t, e1, reqs[:75]...)
	enqueue(t, e2, reqs[75:]...)
	testutil.Eventually(t, 10*time.Second, "all deliveries", func() bool { return rc.count.Load() == 150 })
	got := rc.received()
	slices.SortFunc(got, func(a, b received) int { return a.at.Compare(b.at) })
	for i, r := range got {
		// By then the limiter can have granted the 100 left plus 100 a second since start.
		if granted := 100 + int(100*r.at.Sub(start).Seconds()) + 1; i+1 > granted {
			t.Fatalf("delivery %d arrived %s after start; the limit had granted at most %d", i+1, r.at.Sub(start), granted)
		}
	}
	for _, id := range []string{"r0", "r80", "r149"} {
		if d := waitStatus(t, e1, id, StatusDelivered, time.Second); len(d.Attempts) != 1 {
			t.Errorf("%s: %d attempts; waiting for the limit must not use tries", id, len(d.Attempts))
		}
	}
}
