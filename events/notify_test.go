package events

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// subscriberIDs returns the subscriber ids of an event's deliveries, sorted, failing on a
// subscriber with two deliveries or a delivery id that is not the deterministic one.
func (b *bundle) subscriberIDs(t *testing.T, eventID string) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	for _, d := range b.deliveries(t, eventID) {
		if seen[d.SubscriberID] {
			t.Errorf("subscriber %s has two deliveries of %s", d.SubscriberID, eventID)
		}
		seen[d.SubscriberID] = true
		if d.ID != DeliveryID(eventID, d.SubscriberID) || d.EventID != eventID || d.Kind != KindNotification ||
			d.EndpointID != subscribers.EndpointID(d.SubscriberID) {
			t.Errorf("delivery %+v is not the event's delivery to its subscriber", d)
		}
		ids = append(ids, d.SubscriberID)
	}
	slices.Sort(ids)
	return ids
}

// TestOnlyMatchingActiveSubscribers: the event goes to verified, enabled subscribers whose filters
// match, and the 202 counts exactly those.
func TestOnlyMatchingActiveSubscribers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{startEngine: true})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "news", ChannelMetadata: map[string]any{"chat_type": "live"}, ChannelTags: []string{"slack", "public"}})
	sub := func(name string, s subscribers.Subscriber, pending bool) string {
		s.ID, s.URL, s.Token = name, rcv.url(name), "tok-"+name
		return b.subscriber(t, s, pending).ID
	}
	want := []string{
		sub("all", subscribers.Subscriber{}, false),
		sub("by-id", subscribers.Subscriber{ChannelIDs: []string{"other", "news"}}, false),
		sub("by-tag", subscribers.Subscriber{ChannelTags: []string{"public"}}, false),
		sub("by-chat-type", subscribers.Subscriber{ChatTypes: []string{"live"}}, false),
		sub("by-type", subscribers.Subscriber{Types: []string{TypeUpdate, TypeUnpublish}}, false),
		sub("all-filters", subscribers.Subscriber{ChannelIDs: []string{"news"}, ChannelTags: []string{"slack"}, ChatTypes: []string{"live"}, Types: []string{TypeUpdate}}, false),
	}
	sub("pending", subscribers.Subscriber{}, true)
	sub("other-channel", subscribers.Subscriber{ChannelIDs: []string{"other"}}, false)
	sub("other-tag", subscribers.Subscriber{ChannelTags: []string{"private"}}, false)
	sub("other-chat-type", subscribers.Subscriber{ChatTypes: []string{"dm"}}, false)
	sub("other-type", subscribers.Subscriber{Types: []string{TypeRepublish}}, false)
	disabled := sub("disabled", subscribers.Subscriber{}, false)
	if _, err := b.subs.Disable(context.Background(), disabled, "test"); err != nil {
		t.Fatal(err)
	}
	failed := sub("failed", subscribers.Subscriber{}, true)
	tasks, err := b.subs.ClaimVerifications(context.Background(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.ID == failed {
			_, _ = b.subs.FinishVerification(context.Background(), task, "handshake answered 500")
		} else {
			_ = b.subs.ReleaseVerification(context.Background(), task.ID)
		}
	}
	slices.Sort(want)

	acc := b.notify(t, "news", map[string]any{"type": TypeUpdate, "update_type": UpdateCreated, "message": map[string]any{"text": "hi"}})
	if acc.Subscribers != len(want) {
		t.Errorf("202 subscribers = %d, want %d", acc.Subscribers, len(want))
	}
	b.expand(t)
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, want) {
		t.Errorf("deliveries to %v, want %v", got, want)
	}
	rcv.wait(t, len(want), 20*time.Second)
	for _, name := range want {
		if got := rcv.bodies(name); len(got) != 1 {
			t.Errorf("%s received %d bodies, want 1", name, len(got))
		}
	}
	// A republish goes to the ones whose types filter allows it.
	acc = b.notify(t, "news", map[string]any{"type": TypeRepublish})
	b.expand(t)
	wantRepublish := []string{"all", "by-chat-type", "by-id", "by-tag", "other-type"}
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, wantRepublish) || acc.Subscribers != len(wantRepublish) {
		t.Errorf("republish: deliveries to %v (202 said %d), want %v", got, acc.Subscribers, wantRepublish)
	}
	ev, err := b.svc.Get(context.Background(), acc.EventID)
	if err != nil || ev.Status != StatusExpanded || ev.Enqueued != len(wantRepublish) {
		t.Errorf("event after expansion: %+v, %v", ev, err)
	}
}

// TestTargetedSubscriber: subscriber_id sends to that subscriber only, even if its filters would
// not match; unknown is 404, not verified or disabled is 409.
func TestTargetedSubscriber(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{startEngine: true})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	b.subscriber(t, subscribers.Subscriber{ID: "everyone", URL: rcv.url("everyone")}, false)
	b.subscriber(t, subscribers.Subscriber{ID: "picky", URL: rcv.url("picky"), Token: "tok-picky", ChannelIDs: []string{"elsewhere"}}, false)
	b.subscriber(t, subscribers.Subscriber{ID: "unverified", URL: rcv.url("unverified")}, true)

	acc := b.notify(t, "c1", map[string]any{"type": TypeUnpublish, "subscriber_id": "picky"})
	if acc.Subscribers != 1 {
		t.Errorf("subscribers = %d, want 1", acc.Subscribers)
	}
	b.expand(t)
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, []string{"picky"}) {
		t.Errorf("deliveries to %v, want [picky]", got)
	}
	rcv.wait(t, 1, 20*time.Second)
	var m map[string]any
	if bodies := rcv.bodies("picky"); len(bodies) != 1 || json.Unmarshal(bodies[0], &m) != nil || m["token"] != "tok-picky" {
		t.Errorf("picky received %q", bodies)
	}
	if got := rcv.bodies("everyone"); len(got) != 0 {
		t.Errorf("an untargeted subscriber received %q", got)
	}

	st, out, _ := b.call(t, http.MethodPost, "/channel/c1/notify", map[string]any{"type": TypeUnpublish, "subscriber_id": "nobody"}, nil)
	checkError(t, st, out, http.StatusNotFound, "not_found", "")
	st, out, _ = b.call(t, http.MethodPost, "/channel/c1/notify", map[string]any{"type": TypeUnpublish, "subscriber_id": "unverified"}, nil)
	checkError(t, st, out, http.StatusConflict, CodeSubscriberNotVerified, "subscriber_id")
	if _, err := b.subs.Disable(context.Background(), "picky", "test"); err != nil {
		t.Fatal(err)
	}
	st, out, _ = b.call(t, http.MethodPost, "/channel/c1/notify", map[string]any{"type": TypeUnpublish, "subscriber_id": "picky"}, nil)
	checkError(t, st, out, http.StatusConflict, CodeSubscriberNotVerified, "subscriber_id")
}

func checkError(t *testing.T, status int, out map[string]any, wantStatus int, wantCode, wantField string) {
	t.Helper()
	e, _ := out["error"].(map[string]any)
	if status != wantStatus || e == nil || e["code"] != wantCode || (wantField != "" && e["field"] != wantField) || e["message"] == "" {
		t.Errorf("got %d %v, want %d code %s field %q", status, out, wantStatus, wantCode, wantField)
	}
}

// TestIdempotencyKey: a retried call with the same key returns the same 202 and creates nothing;
// the same key with another request is 409; keys are per channel.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	b.channel(t, &channels.Channel{ChannelID: "c2"})
	b.subscriber(t, subscribers.Subscriber{ID: "s1", URL: rcv.url("s1")}, false)
	b.subscriber(t, subscribers.Subscriber{ID: "s2", URL: rcv.url("s2")}, false)
	key := map[string]string{"Idempotency-Key": "order-42"}
	body := `{"type": "update_notification", "update_type": "message_changed", "message": {"a": 1, "b": [1, 2]}}`

	st, first, h := b.call(t, http.MethodPost, "/channel/c1/notify", body, key)
	if st != http.StatusAccepted || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first call: %d %v %v", st, first, h)
	}
	// The same request, spelled differently (key order, spaces), many times and concurrently.
	again := `{"message":{"b":[1,2],"a":1},"update_type":"message_changed","type":"update_notification"}`
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			st, out, h := b.call(t, http.MethodPost, "/channel/c1/notify", again, key)
			if st != http.StatusAccepted || fmt.Sprint(out) != fmt.Sprint(first) || h.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay: %d %v (replayed %q), want %v", st, out, h.Get("Idempotent-Replayed"), first)
			}
		})
	}
	wg.Wait()
	n, err := b.rdb.ZCard(context.Background(), b.svc.keys.expand()).Result()
	if err != nil || n != 1 {
		t.Errorf("events queued = %d (%v), want 1", n, err)
	}

	// The same key with a different body is refused and changes nothing.
	for _, other := range []string{
		`{"type": "update_notification", "update_type": "message_deleted", "message": {"a": 1, "b": [1, 2]}}`,
		`{"type": "update_notification", "update_type": "message_changed", "message": {"a": 2, "b": [1, 2]}}`,
		`{"type": "republish_request"}`,
		`{"type": "update_notification", "update_type": "message_changed", "message": {"a": 1, "b": [1, 2]}, "subscriber_id": "s1"}`,
	} {
		st, out, _ := b.call(t, http.MethodPost, "/channel/c1/notify", other, key)
		checkError(t, st, out, http.StatusConflict, CodeIdempotencyConflict, "Idempotency-Key")
	}
	// Keys are per channel: the same key on another channel is a new event.
	st, out, _ := b.call(t, http.MethodPost, "/channel/c2/notify", body, key)
	if st != http.StatusAccepted || out["event_id"] == first["event_id"] {
		t.Errorf("same key on another channel: %d %v (first %v)", st, out, first)
	}
	// Without a key every call is a new event.
	a1, a2 := b.notify(t, "c1", body), b.notify(t, "c1", body)
	if a1.EventID == a2.EventID {
		t.Error("two calls without a key made one event")
	}

	b.expand(t)
	for _, id := range []string{first["event_id"].(string), out["event_id"].(string), a1.EventID, a2.EventID} {
		if got := b.subscriberIDs(t, id); !slices.Equal(got, []string{"s1", "s2"}) {
			t.Errorf("event %s: deliveries to %v", id, got)
		}
	}
	// The key is kept for the idempotency window.
	ttl, err := b.rdb.PTTL(context.Background(), b.svc.keys.idem("c1", "order-42")).Result()
	if err != nil || ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("idempotency key TTL %s (%v), want 24h", ttl, err)
	}
}

// TestBadRequests: every way a notify or an event read can be wrong is a 4xx naming the problem,
// and nothing is stored.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: Config{MaxBodyBytes: 4096, MaxMessageBytes: 1024}})
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	known := b.notify(t, "c1", map[string]any{"type": TypeRepublish})
	big := `{"type":"update_notification","message":{"x":"` + strings.Repeat("a", 2000) + `"}}`
	huge := `{"type":"update_notification","message":{"x":"` + strings.Repeat("a", 5000) + `"}}`
	cases := []struct {
		name, path, body string
		hdr              map[string]string
		status           int
		code, field      string
	}{
		{"missing type", "/channel/c1/notify", `{}`, nil, 400, "missing_field", "type"},
		{"empty type", "/channel/c1/notify", `{"type": ""}`, nil, 400, "invalid_value", "type"},
		{"unknown type", "/channel/c1/notify", `{"type": "url_verification"}`, nil, 400, "invalid_value", "type"},
		{"type not a string", "/channel/c1/notify", `{"type": 3}`, nil, 400, "invalid_value", "type"},
		{"unknown update_type", "/channel/c1/notify", `{"type": "update_notification", "update_type": "message_added"}`, nil, 400, "invalid_value", "update_type"},
		{"empty update_type", "/channel/c1/notify", `{"type": "update_notification", "update_type": ""}`, nil, 400, "invalid_value", "update_type"},
		{"update_type not a string", "/channel/c1/notify", `{"type": "update_notification", "update_type": 1}`, nil, 400, "invalid_value", "update_type"},
		{"update_type on republish", "/channel/c1/notify", `{"type": "republish_request", "update_type": "message_created"}`, nil, 400, "invalid_value", "update_type"},
		{"update_type on unpublish", "/channel/c1/notify", `{"type": "unpublish_request", "update_type": "message_deleted"}`, nil, 400, "invalid_value", "update_type"},
		{"message on republish", "/channel/c1/notify", `{"type": "republish_request", "message": {}}`, nil, 400, "invalid_value", "message"},
		{"message a string", "/channel/c1/notify", `{"type": "update_notification", "message": "hi"}`, nil, 400, "invalid_value", "message"},
		{"message a list", "/channel/c1/notify", `{"type": "update_notification", "message": [1]}`, nil, 400, "invalid_value", "message"},
		{"message a number", "/channel/c1/notify", `{"type": "update_notification", "message": 1}`, nil, 400, "invalid_value", "message"},
		{"message too large", "/channel/c1/notify", big, nil, 413, "body_too_large", "message"},
		{"body too large", "/channel/c1/notify", huge, nil, 413, "body_too_large", ""},
		{"unknown field", "/channel/c1/notify", `{"type": "republish_request", "channel": "c1"}`, nil, 400, "unknown_field", "channel"},
		{"not JSON", "/channel/c1/notify", `{"type": `, nil, 400, "invalid_json", ""},
		{"empty body", "/channel/c1/notify", ``, nil, 400, "invalid_json", ""},
		{"JSON list", "/channel/c1/notify", `[]`, nil, 400, "invalid_value", ""},
		{"not JSON content type", "/channel/c1/notify", `{"type": "republish_request"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type", ""},
		{"bad subscriber_id", "/channel/c1/notify", `{"type": "republish_request", "subscriber_id": "a/b"}`, nil, 400, "invalid_value", "subscriber_id"},
		{"empty subscriber_id", "/channel/c1/notify", `{"type": "republish_request", "subscriber_id": ""}`, nil, 400, "invalid_value", "subscriber_id"},
		{"idempotency key too long", "/channel/c1/notify", `{"type": "republish_request"}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid_value", "Idempotency-Key"},
		{"unknown channel", "/channel/nope/notify", `{"type": "republish_request"}`, nil, 404, "not_found", ""},
		{"bad channel id", "/channel/a%20b/notify", `{"type": "republish_request"}`, nil, 400, "invalid_value", "channel_id"},
		{"unknown event", "/events/evt_nope", "", nil, 404, "not_found", ""},
		{"bad limit", "/events/evt_nope?limit=0", "", nil, 400, "invalid_value", "limit"},
		{"limit too big", "/events/evt_nope?limit=1001", "", nil, 400, "invalid_value", "limit"},
		{"limit not a number", "/events/evt_nope?limit=ten", "", nil, 400, "invalid_value", "limit"},
		{"bad cursor", "/events/" + known.EventID + "?after=nonsense!", "", nil, 400, "invalid_value", "after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := http.MethodPost
			if strings.HasPrefix(c.path, "/events/") {
				method = http.MethodGet
			}
			var body any
			if method == http.MethodPost {
				body = c.body
			}
			st, out, _ := b.call(t, method, c.path, body, c.hdr)
			checkError(t, st, out, c.status, c.code, c.field)
		})
	}
	n, err := b.rdb.ZCard(context.Background(), b.svc.keys.expand()).Result()
	if err != nil || n != 1 {
		t.Errorf("events queued after bad requests: %d (%v), want only the good one", n, err)
	}
	// A message exactly at the limit is fine.
	msg := `{"x":"` + strings.Repeat("a", 1024-8) + `"}`
	if len(msg) != 1024 {
		t.Fatalf("test message is %d bytes", len(msg))
	}
	b.notify(t, "c1", `{"type":"update_notification","message":`+msg+`}`)
}

// TestGetEvent: GET /events/{id} shows the event and its deliveries, paged.
func TestGetEvent(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, setupOpts{cfg: Config{Registerer: reg}})
	rcv := newReceiver(t)
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	for i := range 5 {
		b.subscriber(t, subscribers.Subscriber{ID: fmt.Sprintf("s%d", i), URL: rcv.url(fmt.Sprint(i))}, false)
	}
	before := time.Now().UTC().Add(-time.Second)
	acc := b.notify(t, "c1", map[string]any{"type": TypeUpdate, "update_type": UpdateDeleted})

	st, out, _ := b.call(t, http.MethodGet, "/events/"+acc.EventID, nil, nil)
	if st != 200 || out["status"] != StatusExpanding || out["subscribers"] != 5.0 || len(out["deliveries"].([]any)) != 0 || out["next"] != nil {
		t.Errorf("before expansion: %d %v", st, out)
	}
	b.expand(t)
	st, out, _ = b.call(t, http.MethodGet, "/events/"+acc.EventID, nil, nil)
	for _, k := range []string{"event_id", "type", "channel_id", "created_at", "status", "subscribers", "deliveries"} {
		if _, ok := out[k]; !ok {
			t.Errorf("GET /events/{id} has no %q: %v", k, out)
		}
	}
	created, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(out["created_at"]))
	if st != 200 || out["event_id"] != acc.EventID || out["type"] != TypeUpdate || out["channel_id"] != "c1" ||
		out["status"] != StatusExpanded || out["subscribers"] != 5.0 || created.Before(before) || created.After(time.Now()) {
		t.Errorf("after expansion: %d %v", st, out)
	}
	if ds := out["deliveries"].([]any); len(ds) != 5 {
		t.Errorf("%d deliveries, want 5", len(ds))
	}
	// Page through two at a time.
	seen := map[string]bool{}
	path := "/events/" + acc.EventID + "?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		st, out, _ := b.call(t, http.MethodGet, path, nil, nil)
		if st != 200 {
			t.Fatalf("page: %d %v", st, out)
		}
		ds := out["deliveries"].([]any)
		if len(ds) > 2 {
			t.Errorf("page of %d with limit 2", len(ds))
		}
		for _, d := range ds {
			d := d.(map[string]any)
			if d["event_id"] != acc.EventID || seen[d["id"].(string)] {
				t.Errorf("delivery %v repeated or of another event", d)
			}
			seen[d["id"].(string)] = true
		}
		next, _ := out["next"].(string)
		if next == "" {
			break
		}
		path = "/events/" + acc.EventID + "?limit=2&after=" + next
	}
	if len(seen) != 5 {
		t.Errorf("paging saw %d deliveries, want 5", len(seen))
	}

	// The metrics saw one accepted event, expanded, none waiting.
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"herald_events_accepted_total":     1,
		"herald_events_refused_total":      0,
		"herald_event_expansion_seconds":   1, // the histogram's count
		"herald_events_awaiting_expansion": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("metric %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// gather returns each metric family's value summed over its series (a histogram's sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		sum := 0.0
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		out[f.GetName()] = sum
	}
	return out
}

// TestChunksInFlight: a batch enqueued in many small chunks, several at once, reaches every
// subscriber exactly once, and a subscriber whose engine endpoint is gone is skipped without
// losing the rest of its chunk.
// overlapEngine counts how many Enqueue calls are in flight at once. The first calls wait until
// want of them are in flight together (or a while has passed, so a service that never sends that
// many shows its peak rather than hangs); later calls pass straight through.
type overlapEngine struct {
	Engine
	want      int64
	now, peak atomic.Int64
	metOnce   sync.Once
	met       chan struct{}
}

func newOverlapEngine(want int64) *overlapEngine {
	return &overlapEngine{want: want, met: make(chan struct{})}
}

func (o *overlapEngine) Enqueue(ctx context.Context, reqs ...notifier.Request) ([]string, error) {
	n := o.now.Add(1)
	defer o.now.Add(-1)
	for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
	}
	if n >= o.want {
		o.metOnce.Do(func() { close(o.met) })
	}
	select {
	case <-o.met:
	case <-time.After(10 * time.Second):
	}
	return o.Engine.Enqueue(ctx, reqs...)
}

func TestChunksInFlight(t *testing.T) {
	t.Parallel()
	oe := newOverlapEngine(3)
	b := setup(t, setupOpts{cfg: Config{BatchSize: 60, EnqueueChunk: 7, EnqueueInFlight: 3},
		wrapEngine: func(e Engine) Engine { oe.Engine = e; return oe }})
	ctx := context.Background()
	b.channel(t, &channels.Channel{ChannelID: "c1"})
	ids := b.bulkSubscribers(t, 150, "http://127.0.0.1:9/hook")
	gone := ids[75]
	if err := b.eng.DeleteEndpoint(ctx, subscribers.EndpointID(gone)); err != nil {
		t.Fatal(err)
	}
	acc := b.notify(t, "c1", map[string]any{"type": TypeRepublish})
	if acc.Subscribers != len(ids) {
		t.Errorf("202 subscribers = %d, want %d", acc.Subscribers, len(ids))
	}
	b.expand(t)
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == gone })
	if got := b.subscriberIDs(t, acc.EventID); !slices.Equal(got, want) {
		t.Errorf("deliveries to %d subscribers, want %d (all but %s)", len(got), len(want), gone)
	}
	ev, err := b.svc.Get(ctx, acc.EventID)
	if err != nil || ev.Status != StatusExpanded || ev.Enqueued != len(want) {
		t.Errorf("event after expansion: %+v, %v", ev, err)
	}
	if p := oe.peak.Load(); p != 3 {
		t.Errorf("at most %d Enqueue calls were in flight at once, want 3 (EnqueueInFlight 3)", p)
	}
}
