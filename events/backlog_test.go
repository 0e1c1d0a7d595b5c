package events

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// TestBacklogFull: when the engine refuses work, expansion waits and resumes without dropping
// anything, and new events are answered 503 with Retry-After meanwhile.
func TestBacklogFull(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, setupOpts{
		engine: notifier.Config{MaxBacklog: 4},
		cfg:    Config{BatchSize: 3, FullBackoff: 1500 * time.Millisecond, Registerer: reg},
	})
	ctx := context.Background()
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	var want []string
	for i := range 10 {
		s := b.subscriber(t, subscribers.Subscriber{ID: "s" + strconv.Itoa(i), URL: rcv.url(strconv.Itoa(i))}, false)
		want = append(want, s.ID)
	}
	slices.Sort(want)

	// The engine is not running, so nothing drains: expansion fills the backlog and stops.
	acc := b.notify(t, "c1", map[string]any{"type": TypeRepublish})
	b.expand(t)
	ev, err := b.svc.Get(ctx, acc.EventID)
	if err != nil || ev.Status != StatusExpanding || ev.Enqueued == 0 || ev.Enqueued >= 10 {
		t.Fatalf("after filling the backlog: %+v %v", ev, err)
	}
	if got := len(b.deliveries(t, acc.EventID)); got != ev.Enqueued {
		t.Errorf("engine holds %d deliveries, the event counts %d", got, ev.Enqueued)
	}
	// Meanwhile new events are refused, with nothing stored.
	st, out, h := b.call(t, http.MethodPost, "/channel/c1/notify", map[string]any{"type": TypeUnpublish}, nil)
	checkError(t, st, out, http.StatusServiceUnavailable, "unavailable", "")
	if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", h.Get("Retry-After"))
	}
	if v := gather(t, reg)["herald_events_refused_total"]; v != 1 {
		t.Errorf("refused metric %v, want 1", v)
	}
	if n, _ := b.rdb.ZCard(ctx, b.svc.keys.expand()).Result(); n != 1 {
		t.Errorf("%d events queued, want only the first", n)
	}
	// An idempotent replay of an accepted event is still answered.
	st, _, _ = b.call(t, http.MethodGet, "/events/"+acc.EventID, nil, nil)
	if st != http.StatusOK {
		t.Errorf("GET the event while full: %d", st)
	}

	// Once deliveries go out the backlog drains and the expansion completes.
	b.startEngine(t)
	b.startService(t)
	testutil.Eventually(t, 30*time.Second, "the event to be expanded", func() bool {
		ev, err := b.svc.Get(ctx, acc.EventID)
		return err == nil && ev.Status == StatusExpanded
	})
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, want) {
		t.Errorf("deliveries to %v, want %v", got, want)
	}
	rcv.wait(t, 10, 30*time.Second)
	for i := range 10 {
		if got := rcv.bodies(strconv.Itoa(i)); len(got) != 1 {
			t.Errorf("subscriber %d received %d bodies, want 1", i, len(got))
		}
	}
	// And new events are accepted again.
	testutil.Eventually(t, 10*time.Second, "new events to be accepted", func() bool {
		st, _, _ := b.call(t, http.MethodPost, "/channel/c1/notify", map[string]any{"type": TypeUnpublish}, nil)
		return st == http.StatusAccepted
	})
}

// TestEmbeddedStore runs the whole flow (accept with a key, expand, deliver, inspect) on the
// embedded store, whose Lua runs on gopher-lua.
func TestEmbeddedStore(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{embedded: true, startEngine: true})
	b.startService(t)
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "c1", ChannelMetadata: map[string]any{"chat_type": "x"}})
	for i := range 3 {
		b.subscriber(t, subscribers.Subscriber{ID: "s" + strconv.Itoa(i), URL: rcv.url(strconv.Itoa(i))}, false)
	}
	key := map[string]string{"Idempotency-Key": "k1"}
	body := map[string]any{"type": TypeUpdate, "update_type": UpdateChanged, "message": map[string]any{"a": 1}}
	st, first, _ := b.call(t, http.MethodPost, "/channel/c1/notify", body, key)
	if st != http.StatusAccepted || first["subscribers"] != 3.0 {
		t.Fatalf("notify: %d %v", st, first)
	}
	st, again, h := b.call(t, http.MethodPost, "/channel/c1/notify", body, key)
	if st != http.StatusAccepted || again["event_id"] != first["event_id"] || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %v", st, again)
	}
	rcv.wait(t, 3, 20*time.Second)
	id := first["event_id"].(string)
	testutil.Eventually(t, 10*time.Second, "the event to be expanded", func() bool {
		ev, err := b.svc.Get(context.Background(), id)
		return err == nil && ev.Status == StatusExpanded
	})
	if got := b.subscriberIDs(t, id); !slices.Equal(got, []string{"s0", "s1", "s2"}) {
		t.Errorf("deliveries to %v", got)
	}
	st, out, _ := b.call(t, http.MethodGet, "/events/"+id, nil, nil)
	if st != 200 || len(out["deliveries"].([]any)) != 3 || out["status"] != StatusExpanded {
		t.Errorf("GET event: %d %v", st, out)
	}
}
