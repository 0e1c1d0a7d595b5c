package subscribers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// scriptedReceiver is a subscriber endpoint that passes the handshake and answers each
// notification by the end of its delivery id (webhook-id): ".fail" 503; ".hold" 200 once release
// is called; ".trigger" triggerCode once trigger is called; anything else 200. Held tries are
// announced on held.
type scriptedReceiver struct {
	*httptest.Server
	held          chan string
	release       func()
	trigger       func(code int)
	triggerCode   atomic.Int32
	notifications atomic.Int64
	mu            sync.Mutex
	got           []string // delivery ids, in the order they came
}

func newScriptedReceiver(t *testing.T) *scriptedReceiver {
	rc := &scriptedReceiver{held: make(chan string, 4)}
	released, triggered := make(chan struct{}), make(chan struct{})
	var releaseOnce, triggerOnce sync.Once
	rc.release = func() { releaseOnce.Do(func() { close(released) }) }
	rc.trigger = func(code int) {
		triggerOnce.Do(func() {
			rc.triggerCode.Store(int32(code))
			close(triggered)
		})
	}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Type, Challenge string }
		if _ = json.Unmarshal(body, &p); p.Type == "url_verification" {
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		id := r.Header.Get("Webhook-Id")
		rc.notifications.Add(1)
		rc.mu.Lock()
		rc.got = append(rc.got, id)
		rc.mu.Unlock()
		wait := func(ch chan struct{}) {
			rc.held <- id
			select {
			case <-ch:
			case <-r.Context().Done():
			}
		}
		switch {
		case strings.HasSuffix(id, ".fail"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(id, ".hold"):
			wait(released)
		case strings.HasSuffix(id, ".trigger"):
			wait(triggered)
			w.WriteHeader(int(rc.triggerCode.Load()))
		}
	}))
	t.Cleanup(func() {
		rc.release()
		rc.trigger(http.StatusOK)
		rc.Close()
	})
	return rc
}

func (rc *scriptedReceiver) ids() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.got...)
}

// pending is a subscriber's pending deliveries, by where they wait.
type pending struct {
	delayed string   // its try failed (503); the retry is due in a minute
	held    string   // in flight, held at the receiver
	trigger string   // in flight, held at the receiver until the test picks its answer
	waiters []string // waiting for one of the two in-flight slots (the first heads the ordered line)
	behind  []string // behind the head of the subscriber's ordered line
}

func (p *pending) all() []string {
	return append(append([]string{p.delayed, p.held, p.trigger}, p.waiters...), p.behind...)
}

// enqueue enqueues a delivery to subscriber id, as a fan-out does, with delivery id id.name.
func (a *api) enqueue(id, name string) string {
	a.t.Helper()
	ids, err := a.engine.Enqueue(context.Background(), notifier.Request{ID: id + "." + name,
		EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{"type":"update_notification"}`)})
	if err != nil {
		a.t.Fatal(err)
	}
	return ids[0]
}

// delivery reads GET /deliveries/{id}.
func (a *api) delivery(id string) map[string]any {
	a.t.Helper()
	return a.mustDo(200, "GET", "/deliveries/"+id, nil)
}

// waiters is how many deliveries of subscriber id wait for an in-flight slot: the length of its
// endpoint's waiter list (notifier/keys.go: P:{P}:w:<endpoint> on a one-shard queue).
func (a *api) waiters(id string) int64 {
	return a.rdb.LLen(context.Background(), a.prefix+":{"+a.prefix+"}:w:"+subscribers.EndpointID(id)).Val()
}

// scatteredSubscriber creates a verified subscriber (max_in_flight 2, retries a minute apart) on a
// scripted receiver and scatters pending deliveries over every place they can wait (scatter).
func scatteredSubscriber(t *testing.T, lines bool) (*api, *scriptedReceiver, string, *pending) {
	t.Helper()
	a := setupAPI(t, apiOptions{policy: loopback, retrySchedule: []time.Duration{time.Minute}})
	rc := newScriptedReceiver(t)
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "tok", "max_in_flight": 2})["id"].(string)
	a.waitStatus(id, "verified")
	return a, rc, id, a.scatter(id, rc, lines)
}

// scatter gives verified subscriber id (max_in_flight 2, its endpoint rc) pending deliveries in
// every place a pending delivery can wait: one failed and due for a retry in a minute, two in
// flight (held at rc, one of them the trigger), and, with both slots taken, two waiting for a
// slot and, once the subscriber is ordered, an ordered line (its head waits for a slot too).
// With lines false it stops after the deliveries in flight.
func (a *api) scatter(id string, rc *scriptedReceiver, lines bool) *pending {
	a.t.Helper()
	p := &pending{delayed: a.enqueue(id, "fail")}
	testutil.Eventually(a.t, 10*time.Second, "the first try to fail", func() bool {
		d := a.delivery(p.delayed)
		return d["status"] == "pending" && len(d["attempts"].([]any)) == 1
	})
	p.held = a.enqueue(id, "hold")
	testutil.Receive(a.t, rc.held, 10*time.Second, "the held try")
	p.trigger = a.enqueue(id, "trigger")
	testutil.Receive(a.t, rc.held, 10*time.Second, "the trigger's try")
	if !lines {
		return p
	}
	p.waiters = []string{a.enqueue(id, "w1"), a.enqueue(id, "w2")}
	testutil.Eventually(a.t, 10*time.Second, "two deliveries to wait for a slot", func() bool { return a.waiters(id) == 2 })
	a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{"ordered": true})
	p.waiters = append(p.waiters, a.enqueue(id, "head"))
	p.behind = []string{a.enqueue(id, "behind1"), a.enqueue(id, "behind2")}
	testutil.Eventually(a.t, 10*time.Second, "the ordered line's head to wait for a slot", func() bool { return a.waiters(id) == 3 })
	return p
}

// checkEnded waits until every one of ids, deliveries to subscriber sub, is failed with reason,
// and checks that none of sub's deliveries is pending.
func (a *api) checkEnded(sub string, ids []string, reason string) {
	a.t.Helper()
	for _, d := range ids {
		var got map[string]any
		testutil.Eventually(a.t, 5*time.Second, d+" to end as failed, "+reason, func() bool {
			got = a.delivery(d)
			return got["status"] == "failed"
		})
		if got["dead_reason"] != reason || got["next_attempt_at"] != nil {
			a.t.Errorf("%s: %v, want dead_reason %q", d, got, reason)
		}
	}
	if list := a.mustDo(200, "GET", "/deliveries?status=pending&subscriber_id="+sub, nil); len(list["deliveries"].([]any)) != 0 {
		a.t.Errorf("deliveries still pending: %v", list["deliveries"])
	}
}

// checkNothingMore lets the tries still held answer, and checks that the receiver gets nothing
// more than the n notifications it has had, and that the ended deliveries stay as they are.
func (a *api) checkNothingMore(rc *scriptedReceiver, n int64, ended []string, reason string) {
	a.t.Helper()
	rc.release()
	rc.trigger(http.StatusOK)
	testutil.Never(a.t, 500*time.Millisecond, "the receiver to get anything more, or an ended delivery to change", func() bool {
		for _, d := range ended {
			if got := a.delivery(d); got["status"] != "failed" || got["dead_reason"] != reason {
				return true
			}
		}
		return rc.notifications.Load() != n
	})
	if got := rc.notifications.Load(); got != n {
		a.t.Fatalf("the receiver got %d notifications (%v), want %d", got, rc.ids(), n)
	}
}

// TestAPIGoneEndsTheSubscribersPendingDeliveries: a try answered 410 Gone is the subscriber's
// last: that delivery is not retried (http_410), the subscriber is disabled, and all its other
// pending deliveries, wherever they wait, end at once as failed (endpoint_disabled); the receiver
// gets nothing more, not even the delivery the 410's end let go (the first waiting for a slot)
// while Health lags behind. Re-enabled (PATCH, then the handshake), a replay of one arrives, and
// so do new notifications.
func TestAPIGoneEndsTheSubscribersPendingDeliveries(t *testing.T) {
	t.Parallel()
	a, rc, id, p := scatteredSubscriber(t, true)

	releaseHealth := a.holdHealth()
	rc.trigger(http.StatusGone)
	if out := a.waitStatus(id, "disabled"); out["disabled_reason"] != subscribers.ReasonGone {
		t.Fatalf("disabled: %v", out)
	}
	var woken map[string]any // the 410's end freed its slot for the first waiter
	testutil.Eventually(t, 5*time.Second, "the delivery the 410 let go to move on", func() bool {
		woken = a.delivery(p.waiters[0])
		return woken["status"] != "pending"
	})
	if woken["status"] != "failed" || woken["dead_reason"] != notifier.ReasonEndpointDisabled || len(woken["attempts"].([]any)) != 0 {
		t.Fatalf("the delivery the 410 let go, before Health disabled the endpoint: %v", woken)
	}
	releaseHealth()
	var gone map[string]any
	testutil.Eventually(t, 5*time.Second, "the delivery answered 410 to fail", func() bool {
		gone = a.delivery(p.trigger)
		return gone["status"] == "failed"
	})
	if atts := gone["attempts"].([]any); gone["dead_reason"] != notifier.ReasonGone || len(atts) != 1 ||
		atts[0].(map[string]any)["status_code"] != float64(http.StatusGone) {
		t.Fatalf("the delivery answered 410: %v", gone)
	}
	ended := append([]string{p.delayed, p.held}, p.waiters...)
	ended = append(ended, p.behind...)
	a.checkEnded(id, ended, notifier.ReasonEndpointDisabled)
	a.checkNothingMore(rc, 3, ended, notifier.ReasonEndpointDisabled) // the first try of .fail, .hold, .trigger

	// While it is disabled (a new secret does not change that), a replay ends at once too.
	if out := a.mustDo(200, "POST", "/subscribers/"+id+"/rotate-secret", nil); out["status"] != "disabled" {
		t.Fatalf("rotate-secret: %v", out)
	}
	a.mustDo(202, "POST", "/deliveries/"+p.waiters[0]+"/retry", nil)
	a.checkEnded(id, p.waiters[:1], notifier.ReasonEndpointDisabled)
	if n := rc.notifications.Load(); n != 3 {
		t.Fatalf("a replay to a disabled subscriber was sent: %v", rc.ids())
	}

	// Re-enabled: PATCH sends it back through the handshake; then a replay and a new delivery arrive.
	if out := a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{}); out["status"] != "pending" {
		t.Fatalf("re-enable: %v", out)
	}
	a.waitStatus(id, "verified")
	replayed := p.waiters[1]
	a.mustDo(202, "POST", "/deliveries/"+replayed+"/retry", nil)
	fresh := a.enqueue(id, "fresh")
	for _, d := range []string{replayed, fresh} {
		testutil.Eventually(t, 10*time.Second, d+" to be delivered", func() bool { return a.delivery(d)["status"] == "delivered" })
	}
	if got := rc.ids(); len(got) != 5 || !sameSet(got[3:], []string{replayed, fresh}) {
		t.Fatalf("the receiver got %v, want the replay and the new delivery after the first three", got)
	}
	targets, _, err := a.store.Targets(context.Background(), &channels.Channel{ChannelID: "c"}, subscribers.TypeUpdateNotification, "", 10)
	if err != nil || len(targets) != 1 || targets[0].ID != id {
		t.Fatalf("the re-enabled subscriber is not fanned out to: %v %v", targets, err)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestAPIDeleteEndsTheSubscribersPendingDeliveries: deleting a subscriber ends all its pending
// deliveries at once (endpoint_deleted), those in flight included; the receiver gets nothing more.
func TestAPIDeleteEndsTheSubscribersPendingDeliveries(t *testing.T) {
	t.Parallel()
	a, rc, id, p := scatteredSubscriber(t, true)
	a.mustDo(200, "DELETE", "/subscribers/"+id, nil)
	a.checkEnded(id, p.all(), notifier.ReasonEndpointGone)
	a.checkNothingMore(rc, 3, p.all(), notifier.ReasonEndpointGone)
}

// TestAPIFailingTooLongEndsTheSubscribersPendingDeliveries: a subscriber disabled because every
// try failed for DisableAfter gets nothing more either: its pending deliveries end at once
// (endpoint_disabled), the retry of the try that disabled it included.
func TestAPIFailingTooLongEndsTheSubscribersPendingDeliveries(t *testing.T) {
	t.Parallel()
	a, rc, id, p := scatteredSubscriber(t, false)
	testutil.Eventually(t, 10*time.Second, "Health to record the first failure", func() bool {
		return a.rdb.HExists(context.Background(), subscribers.FailingKey(a.store), id).Val()
	})
	a.clock.Add(24*time.Hour + time.Minute)
	rc.trigger(http.StatusServiceUnavailable)
	if out := a.waitStatus(id, "disabled"); !strings.Contains(fmt.Sprint(out["disabled_reason"]), "every delivery failed") {
		t.Fatalf("disabled: %v", out)
	}
	a.checkEnded(id, p.all(), notifier.ReasonEndpointDisabled)
	a.checkNothingMore(rc, 3, p.all(), notifier.ReasonEndpointDisabled)
}
