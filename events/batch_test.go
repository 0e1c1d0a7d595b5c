package events

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/subscribers"
)

// countingSubs counts the matcher's page queries.
type countingSubs struct {
	Subscribers
	targets atomic.Int64
}

func (c *countingSubs) Targets(ctx context.Context, ch *channels.Channel, eventType, after string, limit int) ([]subscribers.Target, string, error) {
	c.targets.Add(1)
	return c.Subscribers.Targets(ctx, ch, eventType, after, limit)
}

// Events that fit one page are expanded together: a claim takes up to claimBatch of them, the
// events of one channel and type share one matcher query, and each still gets exactly its
// deliveries, counted on its record.
func TestSmallEventsExpandTogether(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	counting := &countingSubs{Subscribers: b.subs}
	svc, err := New(b.rdb, b.chans, counting, b.eng, Config{Prefix: b.prefix})
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "news"})
	for _, name := range []string{"a", "b", "c"} {
		b.subscriber(t, subscribers.Subscriber{ID: name, URL: rcv.url(name), Token: "tok-" + name}, false)
	}
	const events = 2*claimBatch + 3 // three claims: two full, one not
	ids := make([]string, events)
	for i := range ids {
		ids[i] = b.notify(t, "news", map[string]any{"type": TypeRepublish}).EventID
	}
	n, err := svc.ExpandDue(context.Background())
	if err != nil || n != events {
		t.Fatalf("ExpandDue = %d, %v; want %d", n, err, events)
	}
	if q := counting.targets.Load(); q != 3 {
		t.Errorf("%d matcher queries for %d events of one channel in 3 claims, want 3", q, events)
	}
	for _, id := range ids {
		ev, err := svc.Get(context.Background(), id)
		if err != nil || ev.Status != StatusExpanded || ev.Enqueued != 3 {
			t.Fatalf("event %s after expansion: %+v, %v", id, ev, err)
		}
		if ds := b.deliveries(t, id); len(ds) != 3 {
			t.Errorf("event %s has %d deliveries, want 3", id, len(ds))
		}
	}
}

// Events claimed together but matching different subscribers are grouped apart: by type on one
// channel, and a targeted event by its subscriber. Each gets exactly its own deliveries.
func TestClaimMixesTypesAndTargets(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "news"})
	for name, types := range map[string][]string{"all": nil, "rep": {TypeRepublish}, "upd": {TypeUpdate}} {
		b.subscriber(t, subscribers.Subscriber{ID: name, URL: rcv.url(name), Token: "tok-" + name, Types: types}, false)
	}
	update := map[string]any{"type": TypeUpdate, "update_type": UpdateCreated, "message": map[string]any{"k": "v"}}
	want := map[string][]string{
		b.notify(t, "news", map[string]any{"type": TypeRepublish}).EventID:                         {"all", "rep"},
		b.notify(t, "news", update).EventID:                                                        {"all", "upd"},
		b.notify(t, "news", map[string]any{"type": TypeRepublish, "subscriber_id": "rep"}).EventID: {"rep"},
	}
	if n, err := b.svc.ExpandDue(context.Background()); err != nil || n != 3 {
		t.Fatalf("ExpandDue = %d, %v", n, err)
	}
	for id, subs := range want {
		var got []string
		for _, d := range b.deliveries(t, id) {
			got = append(got, d.SubscriberID)
		}
		slices.Sort(got)
		if !slices.Equal(got, subs) {
			t.Errorf("event %s went to %v, want %v", id, got, subs)
		}
	}
}

// Of events claimed together that need more than a page, one is expanded here and the others
// are handed back at once (due now, no owner), for any worker to take, not after that one.
func TestLargeEventsHandedBackAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var b *bundle
	var accepted []string
	var others atomic.Value // what the other events looked like during the first one's second page
	b = setup(t, setupOpts{cfg: Config{BatchSize: 2, beforeBatch: func(id, after string) {
		if after == "" || others.Load() != nil {
			return
		}
		var state []string
		for _, other := range accepted {
			if other == id {
				continue
			}
			owner := b.rdb.HGet(ctx, b.svc.keys.event(other), fOwner).Val()
			due := b.rdb.ZScore(ctx, b.svc.keys.expand(), other).Val() <= float64(time.Now().UnixMilli())
			state = append(state, fmt.Sprintf("owner=%q due=%v", owner, due))
		}
		others.Store(state)
	}}})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "news"})
	for _, name := range []string{"a", "b", "c"} {
		b.subscriber(t, subscribers.Subscriber{ID: name, URL: rcv.url(name), Token: "tok-" + name}, false)
	}
	for range 3 {
		accepted = append(accepted, b.notify(t, "news", map[string]any{"type": TypeRepublish}).EventID)
	}
	if _, err := b.svc.ExpandDue(ctx); err != nil {
		t.Fatal(err)
	}
	state, _ := others.Load().([]string)
	if !slices.Equal(state, []string{`owner="" due=true`, `owner="" due=true`}) {
		t.Errorf("while the first large event expanded, the others were %v; want both handed back, due now", state)
	}
	for _, id := range accepted {
		if n := len(b.deliveries(t, id)); n != 3 {
			t.Errorf("event %s has %d deliveries, want 3", id, n)
		}
	}
}

// A delivery id is "<event>.<subscriber>" while that fits the id limit, else the event id and a
// hash of the subscriber's, after a separator of its own: always a valid id, and never the plain
// id of another subscriber.
func TestDeliveryIDAlwaysValidAndDistinct(t *testing.T) {
	const evt = "evt_01hzy3k2v7q8w9e0r1t2y3u4i5"
	long := "sub_" + strings.Repeat("x", ids.MaxLen-4)
	hashed := DeliveryID(evt, long)
	if !ids.Valid(hashed) || hashed == evt+"."+long {
		t.Fatalf("long subscriber id: %q", hashed)
	}
	if DeliveryID(evt, long) != hashed || DeliveryID(evt, long+"y") == hashed {
		t.Fatal("the hashed form is not a function of the subscriber id")
	}
	// a subscriber whose id looks like the hashed form's tail gets its plain form, another id
	tail := hashed[len(evt)+1:]
	if other := DeliveryID(evt, tail); other == hashed {
		t.Fatalf("subscriber %q shares the delivery id %q", tail, hashed)
	}
	if got := DeliveryID(evt, "sub_1"); got != evt+".sub_1" {
		t.Fatalf("short ids: %q", got)
	}
}
