package testutil_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// recorder is a testing.TB whose Fatalf records the message and ends the goroutine, as the real
// one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in a goroutine of its own and returns what it failed with ("" when
// it did not fail).
func run(f func(testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestEventually(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	if msg := run(func(tb testing.TB) {
		testutil.Eventually(tb, 10*time.Second, "three", func() bool { return n.Load() == 3 })
	}); msg != "" {
		t.Fatalf("a condition that comes true failed: %s", msg)
	}
	msg := run(func(tb testing.TB) {
		testutil.Eventually(tb, 20*time.Millisecond, "the impossible", func() bool { return false })
	})
	if !strings.HasPrefix(msg, "timed out waiting for the impossible") {
		t.Fatalf("a condition that never holds failed with %q", msg)
	}
}

func TestReceive(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 1)
	ch <- 7
	var got int
	if msg := run(func(tb testing.TB) { got = testutil.Receive(tb, ch, 10*time.Second, "seven") }); msg != "" || got != 7 {
		t.Fatalf("Receive = %d, failure %q; want 7", got, msg)
	}
	closed := make(chan struct{})
	close(closed)
	if msg := run(func(tb testing.TB) { testutil.Receive(tb, closed, 10*time.Second, "the close") }); msg != "" {
		t.Fatalf("a closed channel failed: %s", msg)
	}
	msg := run(func(tb testing.TB) { testutil.Receive(tb, make(chan int), 20*time.Millisecond, "a value") })
	if !strings.HasPrefix(msg, "timed out waiting for a value") {
		t.Fatalf("an empty channel failed with %q", msg)
	}
}

func TestNever(t *testing.T) {
	t.Parallel()
	if msg := run(func(tb testing.TB) {
		testutil.Never(tb, 20*time.Millisecond, "anything", func() bool { return false })
	}); msg != "" {
		t.Fatalf("a condition that stays false failed: %s", msg)
	}
	var calls atomic.Int64
	msg := run(func(tb testing.TB) {
		testutil.Never(tb, 10*time.Second, "a second call", func() bool { return calls.Add(1) >= 2 })
	})
	if !strings.HasPrefix(msg, "a second call happened") {
		t.Fatalf("a condition that comes true failed with %q", msg)
	}
}
