package events

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/channels"
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
