// Package testutil holds the helpers herald's tests wait with. Tests wait on signals, not sleeps:
// a value on a channel (Receive), or a condition polled until it holds (Eventually). The one
// place a bounded wait is the point is a check that nothing more happens (Never). Clock is a
// clock tests set by hand.
//
// It imports no herald package, so every package's tests can use it.
package testutil

import (
	"sync"
	"testing"
	"time"
)

// pollEvery is how often Eventually and Never check their condition.
const pollEvery = 5 * time.Millisecond

// Eventually polls cond every few ms until it holds, failing t after within with "timed out
// waiting for <what>".
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s)", what, within)
			return
		}
		<-tick.C
	}
}

// Receive waits for a value on ch, failing t after within. A closed channel yields its zero value
// at once, so Receive also waits for a channel to be closed.
func Receive[T any](t testing.TB, ch <-chan T, within time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s (%s)", what, within)
		var zero T
		return zero
	}
}

// Never asserts cond stays false for d (for "nothing more arrives" checks) — the one place a
// bounded wait is the point. It fails t with "<what> happened" as soon as cond holds.
func Never(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond() {
			t.Fatalf("%s happened within %s", what, d)
			return
		}
		if !time.Now().Before(deadline) {
			return
		}
		<-tick.C
	}
}

// Clock is a clock a test sets by hand; safe for concurrent use. Pass its Now where a config
// takes a clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the time the clock shows.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
