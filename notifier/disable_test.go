package notifier

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// A receiver's 410 Gone says the endpoint is gone for good: the delivery is dead-lettered on that
// one try, with its own reason, and never sent again.
func TestGoneIsNeverRetried(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil) // retries 50 ms apart
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusFailed, 5*time.Second)
	if d.DeadReason != ReasonGone || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusGone {
		t.Fatalf("after a 410: %+v", d)
	}
	testutil.Never(t, 300*time.Millisecond, "the receiver to get the delivery again", func() bool { return rc.count.Load() > 1 })
	if o := b.outcomes(); len(o) != 1 || !o[0].Dead || o[0].StatusCode != http.StatusGone || o[0].Reason != ReasonGone {
		t.Fatalf("outcomes: %+v", o)
	}
}

// scattered is an endpoint's pending deliveries, one in each place a pending delivery can be
// (doc.go's state table), made against a real receiver, and another endpoint's deliveries that
// share an ordering line with one of them.
type scattered struct {
	ep       string
	delayed  string   // failed its first try; its retry is due in a minute
	inFlight string   // its try is held at the receiver, taking the endpoint's one in-flight slot
	waiters  []string // live, waiting for that slot (one of them heads the ordering line "k:own")
	behind   []string // behind the head of "k:own", and behind the other endpoint's head of "k:shared"
	gated    string   // in the gate of "k:own": its seq is past the watermark
	// The other endpoint's deliveries in "k:shared": its head, held in flight at its receiver, and
	// one behind ours.
	otherHead, otherTail string
	release              func() // lets the held tries answer 200
	rc, otherRC          *receiver
}

func (s *scattered) ours() []string {
	return append(append([]string{s.delayed, s.inFlight, s.gated}, s.waiters...), s.behind...)
}

// scatter enqueues the deliveries of a scattered endpoint ep (max in flight 1) and waits until
// each is where it should be. Deliveries whose id ends in ".fail" are answered 500, those ending
// in ".hold" are held until release.
func scatter(t *testing.T, e *Engine, ep string) *scattered {
	t.Helper()
	ctx := context.Background()
	held, release := make(chan string, 2), make(chan struct{})
	var once sync.Once
	s := &scattered{ep: ep, release: func() { once.Do(func() { close(release) }) }}
	t.Cleanup(s.release)
	handle := func(_ int64, w http.ResponseWriter, r *http.Request) {
		switch id := r.Header.Get("Webhook-Id"); {
		case strings.HasSuffix(id, ".fail"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(id, ".hold"):
			held <- id
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}
	s.rc, s.otherRC = newReceiver(t, handle), newReceiver(t, handle)
	other := ep + "-other"
	putEndpoint(t, e, Endpoint{ID: ep, URL: s.rc.URL, MaxInFlight: 1})
	putEndpoint(t, e, Endpoint{ID: other, URL: s.otherRC.URL})
	req := func(ep, name, key string) Request {
		return Request{ID: ep + "." + name, EndpointID: ep, Body: []byte(`{}`), OrderingKey: key}
	}
	s.delayed = enqueue(t, e, req(ep, "fail", ""))[0]
	testutil.Eventually(t, 5*time.Second, "the first try to fail", func() bool {
		d, err := e.Get(ctx, s.delayed)
		return err == nil && len(d.Attempts) == 1 && d.Status == StatusPending
	})
	s.inFlight = enqueue(t, e, req(ep, "hold", ""))[0]
	testutil.Receive(t, held, 5*time.Second, "the held try to reach the receiver")
	s.otherHead = enqueue(t, e, req(other, "hold", "shared"))[0]
	testutil.Receive(t, held, 5*time.Second, "the other endpoint's held try to reach its receiver")
	s.waiters = enqueue(t, e, req(ep, "w1", ""), req(ep, "own-head", "own"))
	s.behind = enqueue(t, e, req(ep, "own-behind", "own"), req(ep, "shared-behind", "shared"))
	s.otherTail = enqueue(t, e, req(other, "tail", "shared"))[0]
	gated := req(ep, "gated", "own")
	gated.Seq = 10
	s.gated = enqueue(t, e, gated)[0]
	k := e.home(ep).k
	testutil.Eventually(t, 5*time.Second, "the waiters to wait for the slot", func() bool {
		return e.rdb.LLen(ctx, k.waiters(ep)).Val() == 2
	})
	for line, n := range map[string]int64{"own": 2, "shared": 3} {
		if got := e.rdb.LLen(ctx, k.line(lineOfKey+line)).Val(); got != n {
			t.Fatalf("line %s holds %d deliveries, want %d", line, got, n)
		}
	}
	return s
}

// checkEnded checks that every pending delivery of s ended as failed with reason and that
// nothing of the endpoint is left in the queue.
func checkEnded(t *testing.T, e *Engine, s *scattered, reason string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range s.ours() {
		d, err := e.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != StatusFailed || d.DeadReason != reason || d.NextAttemptAt != nil {
			t.Errorf("%s: %s %q (next %v), want failed %q", id, d.Status, d.DeadReason, d.NextAttemptAt, reason)
		}
	}
	failed, _, err := e.List(ctx, ListQuery{Status: StatusFailed, EndpointID: s.ep})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != len(s.ours()) {
		t.Errorf("%d deliveries listed as failed, want %d", len(failed), len(s.ours()))
	}
	k := e.home(s.ep).k
	if n := e.rdb.LLen(ctx, k.waiters(s.ep)).Val(); n != 0 {
		t.Errorf("%d deliveries still in the waiter list", n)
	}
	if n := e.rdb.ZCard(ctx, k.delayed()).Val(); n != 0 {
		t.Errorf("%d deliveries still in the delayed set", n)
	}
	if n := e.rdb.ZCard(ctx, k.inflight(s.ep)).Val(); n != 0 {
		t.Errorf("%d in-flight leases left", n)
	}
	if n := e.rdb.Exists(ctx, k.line(lineOfKey+"own")).Val(); n != 0 {
		t.Errorf("the endpoint's ordering line is still there: %v", e.rdb.LRange(ctx, k.line(lineOfKey+"own"), 0, -1).Val())
	}
	if l := e.rdb.LRange(ctx, k.line(lineOfKey+"shared"), 0, -1).Val(); len(l) != 2 || l[0] != s.otherHead || l[1] != s.otherTail {
		t.Errorf("the shared ordering line is %v, want the other endpoint's two deliveries", l)
	}
	if n := e.rdb.Exists(ctx, k.gate(lineOfKey+"own"), k.gated()).Val(); n != 0 {
		t.Errorf("the line's gate, or the index of gated lines, is still there")
	}
}

// checkAfterRelease lets the tries held in flight answer 200, and checks that the ended
// delivery's finish leaves it as it is, that its receiver gets nothing more, and that the other
// endpoint's deliveries of the shared line each go out once, in order.
func checkAfterRelease(t *testing.T, e *Engine, s *scattered, reason string) {
	t.Helper()
	ctx := context.Background()
	got := s.rc.count.Load()
	s.release()
	waitStatus(t, e, s.otherTail, StatusDelivered, 5*time.Second)
	testutil.Never(t, 500*time.Millisecond, "the endpoint to get anything more, the held try to be recorded, or the other endpoint to get a delivery twice", func() bool {
		d, err := e.Get(ctx, s.inFlight)
		return s.rc.count.Load() != got || err != nil || d.Status != StatusFailed || d.DeadReason != reason ||
			len(d.Attempts) != 0 || s.otherRC.count.Load() != 2
	})
	if r := s.otherRC.received(); r[0].header.Get("Webhook-Id") != s.otherHead || r[1].header.Get("Webhook-Id") != s.otherTail {
		t.Errorf("the other endpoint got %s then %s", r[0].header.Get("Webhook-Id"), r[1].header.Get("Webhook-Id"))
	}
	k := e.home(s.ep).k
	if n, _ := e.rdb.Get(ctx, k.backlog()).Int(); n != 0 {
		t.Errorf("backlog %d after every delivery ended", n)
	}
	// Nothing ended is let into its line later: with the watermark past the gated delivery's
	// seq, a delivery that joins the line goes at once.
	if err := e.RaiseWatermark(ctx, 10); err != nil {
		t.Fatal(err)
	}
	after := enqueue(t, e, Request{ID: s.ep + "-other.after", EndpointID: s.ep + "-other", Body: []byte(`{}`), OrderingKey: "own"})[0]
	waitStatus(t, e, after, StatusDelivered, 5*time.Second)
}

// Disabling an endpoint ends its pending deliveries at once, wherever they are, with their
// reason: none is tried again, and a try in flight cannot bring its delivery back. A delivery
// enqueued after the disable (a fan-out that read the subscriber before) is dead-lettered too.
// Enabled again, a replay and a new delivery arrive.
func TestDisableEndpointEndsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{time.Minute} })
	s := scatter(t, e, "ep")
	ctx := context.Background()
	if err := e.DisableEndpoint(ctx, s.ep); err != nil {
		t.Fatal(err)
	}
	checkEnded(t, e, s, ReasonEndpointDisabled)
	dead := 0
	for _, o := range b.outcomes() {
		if o.EndpointID == s.ep && o.Dead && o.Reason == ReasonEndpointDisabled {
			dead++
		}
	}
	if dead != len(s.ours()) {
		t.Errorf("%d outcomes report a delivery ended, want %d", dead, len(s.ours()))
	}
	checkAfterRelease(t, e, s, ReasonEndpointDisabled)

	late := enqueue(t, e, Request{EndpointID: s.ep, Body: []byte(`{"b":"late"}`)})[0]
	if d := waitStatus(t, e, late, StatusFailed, 5*time.Second); d.DeadReason != ReasonEndpointDisabled || len(d.Attempts) != 0 {
		t.Fatalf("a delivery enqueued after the disable: %+v", d)
	}
	if err := e.DisableEndpoint(ctx, s.ep); err != nil { // again: nothing to do
		t.Fatal(err)
	}

	got := s.rc.count.Load()
	putEndpoint(t, e, Endpoint{ID: s.ep, URL: s.rc.URL, MaxInFlight: 1}) // enabled again
	if err := e.Retry(ctx, s.waiters[0]); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, s.waiters[0], StatusDelivered, 5*time.Second)
	fresh := enqueue(t, e, Request{EndpointID: s.ep, Body: []byte(`{"b":"fresh"}`)})[0]
	waitStatus(t, e, fresh, StatusDelivered, 5*time.Second)
	if n := s.rc.count.Load() - got; n != 2 {
		t.Fatalf("the receiver got %d requests after the endpoint was enabled again, want 2", n)
	}
}

// Putting an endpoint with Disabled disables it as DisableEndpoint does.
func TestPutDisabledEndpointEndsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{time.Minute} })
	s := scatter(t, e, "ep")
	putEndpoint(t, e, Endpoint{ID: s.ep, URL: s.rc.URL, MaxInFlight: 1, Disabled: true})
	checkEnded(t, e, s, ReasonEndpointDisabled)
	checkAfterRelease(t, e, s, ReasonEndpointDisabled)
}

// Deleting an endpoint ends its pending deliveries at once as well (endpoint_deleted), not each
// when it next comes due.
func TestDeleteEndpointEndsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RetrySchedule = []time.Duration{time.Minute} })
	s := scatter(t, e, "ep")
	if err := e.DeleteEndpoint(context.Background(), s.ep); err != nil {
		t.Fatal(err)
	}
	checkEnded(t, e, s, ReasonEndpointGone)
	checkAfterRelease(t, e, s, ReasonEndpointGone)
}

// An endpoint with more pending deliveries than one call of the end script takes: the waiter
// list and the ordering line are each walked in several batches, and every delivery ends.
func TestDisableEndpointEndsManyInBatches(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc := newReceiver(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, MaxInFlight: 1})
	const n = 2*endBatch + 50
	reqs := make([]Request, 0, 2*n)
	for i := range n {
		reqs = append(reqs, Request{EndpointID: "ep", Body: []byte(`{}`)},
			Request{EndpointID: "ep", Body: []byte(`{}`), OrderingKey: fmt.Sprint("k", i%2)})
	}
	ids := enqueue(t, e, reqs...)
	ctx := context.Background()
	k := e.home("ep").k
	testutil.Eventually(t, 10*time.Second, "every live delivery to wait for the slot", func() bool {
		return e.rdb.LLen(ctx, k.waiters("ep")).Val() == n+2-1
	})
	if err := e.DisableEndpoint(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	ds, err := e.GetMany(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		if d == nil || d.Status != StatusFailed || d.DeadReason != ReasonEndpointDisabled {
			t.Fatalf("delivery %d of %d: %+v", i, len(ids), d)
		}
	}
	if n, _ := e.rdb.Get(ctx, k.backlog()).Int(); n != 0 {
		t.Errorf("backlog %d after every delivery ended", n)
	}
}

// An endpoint put with DisableOnGone is disabled by the try answered 410 Gone, in the step that
// records it: the delivery that try's end lets go (here one waiting for its in-flight slot) is
// dead-lettered without a try. One put without it keeps getting its other deliveries.
func TestGoneDisablesAnEndpointThatAsks(t *testing.T) {
	t.Parallel()
	for _, onGone := range []bool{true, false} {
		t.Run(fmt.Sprint("DisableOnGone=", onGone), func(t *testing.T) {
			t.Parallel()
			e, _ := setup(t, nil)
			held, release := make(chan struct{}), make(chan struct{})
			rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.Header.Get("Webhook-Id"), ".gone") {
					close(held)
					<-release
					w.WriteHeader(http.StatusGone)
				}
			})
			putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, MaxInFlight: 1, DisableOnGone: onGone})
			gone := enqueue(t, e, Request{ID: "ep.gone", EndpointID: "ep", Body: []byte(`{}`)})[0]
			testutil.Receive(t, held, 5*time.Second, "the try to be answered 410 to reach the receiver")
			next := enqueue(t, e, Request{ID: "ep.next", EndpointID: "ep", Body: []byte(`{}`)})[0]
			ctx := context.Background()
			testutil.Eventually(t, 5*time.Second, "the next delivery to wait for the slot", func() bool {
				return e.rdb.LLen(ctx, e.home("ep").k.waiters("ep")).Val() == 1
			})
			close(release)
			if d := waitStatus(t, e, gone, StatusFailed, 5*time.Second); d.DeadReason != ReasonGone {
				t.Fatalf("the delivery answered 410: %+v", d)
			}
			if !onGone {
				waitStatus(t, e, next, StatusDelivered, 5*time.Second)
				return
			}
			if d := waitStatus(t, e, next, StatusFailed, 5*time.Second); d.DeadReason != ReasonEndpointDisabled || len(d.Attempts) != 0 {
				t.Fatalf("the delivery the 410 let go: %+v", d)
			}
			if n := rc.count.Load(); n != 1 {
				t.Fatalf("the receiver got %d requests, want only the one answered 410", n)
			}
		})
	}
}
