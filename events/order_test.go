package events

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// peer is another herald process on b's Redis and prefix: its own delivery engine (started) and
// expansion service (started) with config o, and its own API server.
func (b *bundle) peer(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	p := &bundle{rdb: b.rdb, prefix: b.prefix, chans: b.chans, subs: b.subs}
	ecfg := o.engine
	ecfg.Prefix, ecfg.AllowHTTP, ecfg.AllowPrivate = b.prefix, true, true
	ecfg.RequestTimeout = cmp.Or(ecfg.RequestTimeout, 5*time.Second)
	eng, err := notifier.New(b.rdb, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	p.eng = eng
	p.startEngine(t)
	cfg := o.cfg
	cfg.Prefix = b.prefix
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 50*time.Millisecond)
	if p.svc, err = New(b.rdb, b.chans, b.subs, eng, cfg); err != nil {
		t.Fatal(err)
	}
	p.startService(t)
	r := httpx.NewRouter()
	p.svc.Routes(r)
	p.api = httptest.NewServer(r)
	t.Cleanup(p.api.Close)
	return p
}

// orderedRun is what TestOrderedSubscriberGetsThePublishersOrder sends and what it expects.
const (
	orderedEvents    = 300
	orderedProcesses = 3
)

// An ordered subscriber gets a publisher's notifications in the order of their 202s, each once,
// however many processes and workers expand them: a publisher sends orderedEvents notifications
// one after another (each answered 202 before the next is sent), alternately to
// orderedProcesses herald processes on one Redis, each with several expansion workers that
// enqueue in chunks of one delivery, three at once, after a random pause of up to 2 ms (which
// makes the concurrency of expansion visible: without ordering by acceptance, neighbours arrive
// swapped in every run). Unordered subscribers on the same channel get every notification once.
func TestOrderedSubscriberGetsThePublishersOrder(t *testing.T) {
	t.Parallel()
	jitter := func(string, string) { time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond) }
	opts := setupOpts{
		cfg:    Config{Workers: 4, EnqueueChunk: 1, EnqueueInFlight: 3, beforeBatch: jitter},
		engine: notifier.Config{RateLimitPerMinute: 1_000_000, MaxInFlight: 50, Workers: 16},
	}
	b := setup(t, opts)
	b.startEngine(t)
	b.startService(t)
	procs := []*bundle{b}
	for range orderedProcesses - 1 {
		procs = append(procs, b.peer(t, opts))
	}
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "feed"})
	names := []string{"ordered-a", "ordered-b", "unordered-a", "unordered-b"}
	for _, name := range names {
		b.subscriber(t, subscribers.Subscriber{ID: name, URL: rcv.url(name), Token: "tok", Ordered: name[0] == 'o'}, false)
	}

	for i := range orderedEvents {
		p := procs[i%len(procs)]
		p.notify(t, "feed", map[string]any{"type": TypeUpdate, "update_type": UpdateCreated, "message": map[string]any{"n": i}})
	}
	rcv.wait(t, len(names)*orderedEvents, 30*time.Second)

	want := make([]int, orderedEvents)
	for i := range want {
		want[i] = i
	}
	for _, name := range names {
		got := messageNumbers(t, rcv.bodies(name))
		if name[0] == 'u' {
			slices.Sort(got)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s got %d notifications, first out of place at %s; want 0..%d each once%s", name, len(got),
				firstMisplaced(got, want), orderedEvents-1, map[bool]string{true: ", in order"}[name[0] == 'o'])
		}
	}
}

// messageNumbers reads message.n of each notification body.
func messageNumbers(t *testing.T, bodies [][]byte) []int {
	t.Helper()
	out := make([]int, 0, len(bodies))
	for _, raw := range bodies {
		var body struct {
			Message struct {
				N int `json:"n"`
			} `json:"message"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("notification body %q: %v", raw, err)
		}
		out = append(out, body.Message.N)
	}
	return out
}

// firstMisplaced describes where got first differs from want.
func firstMisplaced(got, want []int) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("position %d (%d, want %d; %v around it)", i, got[i], want[i], got[max(0, i-2):min(len(got), i+3)])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("position %d (length %d, want %d)", min(len(got), len(want)), len(got), len(want))
	}
	return "nowhere"
}

// orderedWorld is a channel "feed" with an ordered subscriber and an unordered one on one
// receiver, for the tests of what holds the order back and what lets it go.
type orderedWorld struct {
	b   *bundle
	rcv *receiver
}

func newOrderedWorld(t *testing.T, o setupOpts) *orderedWorld {
	t.Helper()
	o.startEngine = true
	o.engine.RateLimitPerMinute = 1_000_000
	w := &orderedWorld{b: setup(t, o), rcv: newReceiver(t)}
	w.b.channel(t, &channels.Channel{ChannelID: "feed"})
	w.b.subscriber(t, subscribers.Subscriber{ID: "ordered", URL: w.rcv.url("ordered"), Token: "tok", Ordered: true}, false)
	w.b.subscriber(t, subscribers.Subscriber{ID: "unordered", URL: w.rcv.url("unordered"), Token: "tok"}, false)
	return w
}

// notify sends notification n through p's API.
func (w *orderedWorld) notify(t *testing.T, p *bundle, n int) string {
	t.Helper()
	return p.notify(t, "feed", map[string]any{"type": TypeUpdate, "update_type": UpdateCreated, "message": map[string]any{"n": n}}).EventID
}

// got is the notification numbers subscriber name got, in order.
func (w *orderedWorld) got(t *testing.T, name string) []int {
	return messageNumbers(t, w.rcv.bodies(name))
}

// A process that claimed an event and died holds back the ordered deliveries of the events
// accepted after it, not their unordered ones, until another process resumes the event when
// its lease runs out; then they go in the order accepted.
func TestDeadExpanderHoldsTheOrderUntilResumed(t *testing.T) {
	t.Parallel()
	w := newOrderedWorld(t, setupOpts{})
	b := w.b
	dead, err := New(b.rdb, b.chans, b.subs, b.eng, Config{Prefix: b.prefix, LeaseTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := w.notify(t, b, 0)
	if _, evs, err := dead.claimDue(context.Background()); err != nil || len(evs) != 1 {
		t.Fatalf("the dying process claimed %d events, %v", len(evs), err)
	}
	w.notify(t, b, 1)
	b.expand(t) // the second event only: the first is leased
	testutil.Eventually(t, 5*time.Second, "the unordered delivery of the second event", func() bool {
		return slices.Equal(w.got(t, "unordered"), []int{1})
	})
	testutil.Never(t, 300*time.Millisecond, "an ordered delivery ahead of the event before it",
		func() bool { return len(w.got(t, "ordered")) > 0 })
	testutil.Eventually(t, 10*time.Second, "the first event to be resumed", func() bool {
		b.expand(t)
		ev, err := b.svc.Get(context.Background(), first)
		return err == nil && ev.Status == StatusExpanded
	})
	w.rcv.wait(t, 4, 5*time.Second)
	if got := w.got(t, "ordered"); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("the ordered subscriber got %v, want [0 1]", got)
	}
}

// silentEngine passes nothing of the watermark on: a process that died after it finished its
// events and before it could.
type silentEngine struct{ Engine }

func (silentEngine) RaiseWatermark(context.Context, int64) error { return nil }

// When the process that finished the events died before it passed the watermark on, another
// process passes it on within its WatermarkInterval, with nothing to expand itself.
func TestAnotherProcessPassesTheWatermarkOn(t *testing.T) {
	t.Parallel()
	w := newOrderedWorld(t, setupOpts{wrapEngine: func(e Engine) Engine { return silentEngine{e} }})
	b := w.b
	w.notify(t, b, 0)
	w.notify(t, b, 1)
	b.expand(t)
	w.rcv.wait(t, 2, 5*time.Second) // the unordered ones
	testutil.Never(t, 300*time.Millisecond, "an ordered delivery before the watermark was passed on",
		func() bool { return len(w.got(t, "ordered")) > 0 })
	other, err := New(b.rdb, b.chans, b.subs, b.eng, Config{Prefix: b.prefix, WatermarkInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, other.Start, other.Stop, true)
	w.rcv.wait(t, 4, 5*time.Second)
	if got := w.got(t, "ordered"); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("the ordered subscriber got %v, want [0 1]", got)
	}
}

// An event whose record cannot be read is never expanded; it does not hold back the ordered
// deliveries of the events after it.
func TestUnreadableEventDoesNotHoldTheOrder(t *testing.T) {
	t.Parallel()
	w := newOrderedWorld(t, setupOpts{})
	b := w.b
	broken := w.notify(t, b, 0)
	if err := b.rdb.HSet(context.Background(), b.svc.keys.event(broken), fCreatedAt, "not a time").Err(); err != nil {
		t.Fatal(err)
	}
	w.notify(t, b, 1)
	b.expand(t)
	w.rcv.wait(t, 2, 5*time.Second)
	if got := w.got(t, "ordered"); !slices.Equal(got, []int{1}) {
		t.Errorf("the ordered subscriber got %v, want [1]", got)
	}
}

// An event whose record expired before it was expanded leaves the order too (claiming it drops it
// from the events still expanding): it does not hold the ordered subscriber's line for good.
func TestExpiredEventDoesNotHoldTheOrder(t *testing.T) {
	t.Parallel()
	w := newOrderedWorld(t, setupOpts{})
	b := w.b
	expired := w.notify(t, b, 0)
	if err := b.rdb.Del(context.Background(), b.svc.keys.event(expired)).Err(); err != nil {
		t.Fatal(err)
	}
	w.notify(t, b, 1)
	b.expand(t)
	w.rcv.wait(t, 2, 5*time.Second)
	if got := w.got(t, "ordered"); !slices.Equal(got, []int{1}) {
		t.Errorf("the ordered subscriber got %v, want [1]", got)
	}
}

// An event expanded over many pages (with a heartbeat) reaches an ordered subscriber while it is
// still being expanded, because every event before it is expanded; the event after it, expanded
// meanwhile by another worker, waits for it to finish.
func TestLargeEventReachesOrderedSubscriberWhileExpanding(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	var once sync.Once
	w := newOrderedWorld(t, setupOpts{cfg: Config{BatchSize: 2, Prefetch: 1, Workers: 2,
		WatermarkInterval: time.Minute, // only finishes pass the watermark on
		beforeBatch: func(_, cursor string) {
			if cursor != "" { // the pages after the first wait for the test
				<-hold
			}
		}}})
	b := w.b
	for i := range 3 {
		b.subscriber(t, subscribers.Subscriber{ID: fmt.Sprintf("z-%d", i), URL: w.rcv.url("z"), Token: "tok"}, false)
	}
	b.startService(t)
	t.Cleanup(func() { once.Do(func() { close(hold) }) }) // before the service's Stop
	// An event of one page, to the ordered subscriber alone, is expanded and finished at once.
	b.notify(t, "feed", map[string]any{"type": TypeUpdate, "subscriber_id": "ordered", "message": map[string]any{"n": 0}})
	large := w.notify(t, b, 1)
	testutil.Eventually(t, 5*time.Second, "the large event's ordered delivery", func() bool {
		return slices.Equal(w.got(t, "ordered"), []int{0, 1})
	})
	if ev, err := b.svc.Get(context.Background(), large); err != nil || ev.Status != StatusExpanding {
		t.Fatalf("the large event after its first page: %+v, %v; want it still expanding", ev, err)
	}
	w.notify(t, b, 2)
	testutil.Eventually(t, 5*time.Second, "the next event's unordered delivery", func() bool {
		return slices.Contains(w.got(t, "unordered"), 2)
	})
	testutil.Never(t, 300*time.Millisecond, "the next event's ordered delivery while the large one is expanding",
		func() bool { return len(w.got(t, "ordered")) > 2 })
	once.Do(func() { close(hold) })
	w.rcv.wait(t, 1+2*(2+3), 5*time.Second)
	if got := w.got(t, "ordered"); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("the ordered subscriber got %v, want [0 1 2]", got)
	}
}
