package receiver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/receiver"
)

// A subscriber endpoint built on receiver.Handler passes herald's handshake, and gets each
// notification type verified and decoded field by field. Another subscriber, whose endpoint
// expects another secret, passes the (unsigned) handshake but refuses every notification with a
// 401 that herald records. The real deliveries, replayed with a changed body, to a Handler with
// another secret or token, or after the tolerance, are refused.
func TestNotificationsFromHerald(t *testing.T) {
	t.Parallel()
	sub := newEndpoint(t, receiver.Config{Secrets: []string{subSecret}, Token: "tok"})
	wrong := newEndpoint(t, receiver.Config{Secrets: []string{secretB}})
	base := startHerald(t, func(c *app.Config) { c.RetrySchedule = []time.Duration{time.Hour} })

	channel := `{"channel_id": "news", "channel_name": "News", "channel_description": "What is new", "channel_tags": ["slack", "news"],
		"channel_metadata": {"endpoint_url": "` + sub.URL + `/incoming", "chat_type": "slack", "team": {"id": 7}}}`
	api(t, "POST", base+"/channel", channel, 201)
	idA := api(t, "POST", base+"/subscribers", `{"url": "`+sub.URL+`/hook", "token": "tok", "secret": "`+subSecret+`", "channel_ids": ["news"]}`, 201)["id"].(string)
	idB := api(t, "POST", base+"/subscribers", `{"url": "`+wrong.URL+`/hook", "secret": "`+subSecret+`", "channel_ids": ["news"]}`, 201)["id"].(string)
	for _, id := range []string{idA, idB} {
		testutil.Eventually(t, wait, "subscriber "+id+" to be verified", func() bool {
			return api(t, "GET", base+"/subscribers/"+id, "", 200)["status"] == "verified"
		})
	}
	for _, h := range sub.requests(`"url_verification"`) {
		if h.status != 200 || h.header.Get(receiver.HeaderID) != "" {
			t.Errorf("handshake: answered %d, webhook-id %q; want 200 to an unsigned request", h.status, h.header.Get(receiver.HeaderID))
		}
	}

	checkUpdate(t, base, sub, idA)
	checkChannelRequests(t, base, sub)
	checkRefusedLive(t, base, wrong, idB)
	real := sub.requests(`"update_notification"`)[0]
	checkRefusals(t, sub, real, receiver.Config{Secrets: []string{subSecret}, Token: "tok"})
	if code := replay(mustHandler(t, receiver.Config{Secrets: []string{subSecret}, Token: "another"}), real, same); code != 403 {
		t.Errorf("a real notification to a Handler with another token: %d, want 403", code)
	}
}

// checkUpdate notifies an update_notification and checks what the subscriber's callback got.
func checkUpdate(t *testing.T, base string, sub *endpoint, subID string) {
	t.Helper()
	before := time.Now()
	evt := api(t, "POST", base+"/channel/news/notify", `{"type": "update_notification", "update_type": "message_changed",
		"message": {"timestamp": "2018-10-16T17:23:49.000100Z", "user": "USERID", "content": "Edited ✓"}}`, 202)["event_id"].(string)
	g := sub.call(t, "update")
	n := g.v.(*receiver.UpdateNotification)
	if n.Token != "tok" || n.Type != receiver.TypeUpdateNotification || n.Channel != "news" || n.ChatType != "slack" ||
		n.UpdateType != receiver.UpdateMessageChanged ||
		!jsonEqual(n.Message, []byte(`{"timestamp": "2018-10-16T17:23:49.000100Z", "user": "USERID", "content": "Edited ✓"}`)) {
		t.Errorf("update_notification decoded as %+v (message %s)", n, n.Message)
	}
	if !within(g.d, before, time.Now()) {
		t.Errorf("delivery timestamp %s, want between %s and now", g.d.Timestamp, before)
	}
	var ids []string
	for _, d := range api(t, "GET", base+"/events/"+evt, "", 200)["deliveries"].([]any) {
		if d := d.(map[string]any); d["subscriber_id"] == subID {
			ids = append(ids, d["id"].(string))
		}
	}
	if len(ids) != 1 || g.d.ID != ids[0] {
		t.Errorf("Delivery.ID %q, want the event's delivery to the subscriber %q", g.d.ID, ids)
	}
	api(t, "POST", base+"/channel/news/notify", `{"type": "update_notification"}`, 202)
	if n := sub.call(t, "update").v.(*receiver.UpdateNotification); n.UpdateType != "" || n.Message != nil || n.Channel != "news" {
		t.Errorf("an update_notification with nulls decoded as %+v", n)
	}
}

// checkChannelRequests notifies a republish_request and an unpublish_request; each reaches its own
// callback with the channel document as herald stores it.
func checkChannelRequests(t *testing.T, base string, sub *endpoint) {
	t.Helper()
	stored, _ := json.Marshal(api(t, "GET", base+"/channel/news", "", 200))
	var want receiver.Channel
	if err := json.Unmarshal(stored, &want); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{receiver.TypeRepublishRequest, receiver.TypeUnpublishRequest} {
		api(t, "POST", base+"/channel/news/notify", `{"type": "`+typ+`"}`, 202)
		r := sub.call(t, strings.TrimSuffix(typ, "_request")).v.(*receiver.ChannelRequest)
		if r.Token != "tok" || r.Type != typ || r.Channel != "news" || r.ChatTypeName() != "slack" ||
			!jsonEqual([]byte(r.ChannelData), stored) || !deepEqualJSON(r.Doc, want) {
			t.Errorf("%s decoded as %+v, want the document %s", typ, r, stored)
		}
	}
}

// deepEqualJSON compares two values by their JSON.
func deepEqualJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return jsonEqual(x, y)
}

// checkRefusedLive checks that the endpoint expecting another secret refused herald's
// notifications with 401, that herald recorded the answer, and that no callback ran.
func checkRefusedLive(t *testing.T, base string, wrong *endpoint, subID string) {
	t.Helper()
	var attempt map[string]any
	testutil.Eventually(t, wait, "herald to record the 401 of the endpoint with another secret", func() bool {
		ds := api(t, "GET", base+"/deliveries?subscriber_id="+subID, "", 200)["deliveries"].([]any)
		for _, d := range ds {
			if as, _ := d.(map[string]any)["attempts"].([]any); len(as) > 0 {
				attempt = as[0].(map[string]any)
				return true
			}
		}
		return false
	})
	if attempt["status_code"] != 401.0 || !strings.Contains(attempt["response"].(string), "no v1 signature matches") {
		t.Errorf("herald recorded %v, want 401 naming the problem", attempt)
	}
	for kind, ch := range wrong.calls {
		if len(ch) != 0 {
			t.Errorf("the endpoint with another secret called %s", kind)
		}
	}
	for _, r := range wrong.requests(`"token"`) {
		if !strings.Contains(string(r.body), "url_verification") && r.status != 401 {
			t.Errorf("the endpoint with another secret answered %d to %s", r.status, r.body)
		}
	}
}

// checkRefusals replays a real request, as herald sent it, to the endpoint: unchanged (within the
// tolerance: a duplicate, to be dropped by its Delivery.ID) it passes; with its body changed, to
// a Handler with another secret, or once the tolerance has passed, it gets 401.
func checkRefusals(t *testing.T, e *endpoint, real raw, cfg receiver.Config) {
	t.Helper()
	if code := replay(e.handler, real, same); code != 204 {
		t.Errorf("the real request again: %d, want 204", code)
	}
	tamper := func(b []byte) []byte { return []byte(strings.Replace(string(b), `"news"`, `"newz"`, 1)) }
	if !strings.Contains(string(real.body), `"news"`) {
		tamper = func(b []byte) []byte { return append(b[:len(b)-1], ' ', '}') }
	}
	if code := replay(e.handler, real, tamper); code != 401 {
		t.Errorf("a real request with a changed body: %d, want 401", code)
	}
	other := cfg
	other.Secrets = []string{secretB}
	if code := replay(mustHandler(t, other), real, same); code != 401 {
		t.Errorf("a real request to a Handler with another secret: %d, want 401", code)
	}
	late := cfg
	late.Now = func() time.Time { return time.Now().Add(receiver.DefaultTolerance + time.Minute) }
	if code := replay(mustHandler(t, late), real, same); code != 401 {
		t.Errorf("a real request replayed after the tolerance: %d, want 401", code)
	}
}

func mustHandler(t *testing.T, cfg receiver.Config) http.Handler {
	t.Helper()
	h, err := receiver.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A channel server built on receiver.Handler gets the relayed message, verified with herald's
// signing secret, and answers with Reply; the sessions server gets the forwarded response. Both
// real requests are refused when changed, under another secret or late.
func TestRelayFromHerald(t *testing.T) {
	t.Parallel()
	chanSrv := newEndpoint(t, receiver.Config{Secrets: []string{relaySecret}})
	sessSrv := newEndpoint(t, receiver.Config{Secrets: []string{relaySecret}})
	base := startHerald(t, func(c *app.Config) {
		c.SigningSecret = relaySecret
		c.SessionsURL = sessSrv.URL + "/sessions"
	})
	api(t, "POST", base+"/channel", `{"channel_id": "chat", "channel_metadata": {"endpoint_url": "`+chanSrv.URL+`/incoming"}}`, 201)
	dlv := api(t, "POST", base+"/channel/message", `{"channel_id": "chat", "session_id": "sess-1", "message": "Hello, Slack!"}`, 202)["delivery_id"]

	g := chanSrv.call(t, "message")
	m := g.v.(*receiver.RelayedMessage)
	text, ok := m.Text()
	if m.SessionID != "sess-1" || !ok || text != "Hello, Slack!" || !strings.HasPrefix(m.ResponseURL, base+"/webhook-response?token=") || g.d.ID != dlv {
		t.Fatalf("relayed message decoded as %+v (delivery %q), want delivery %q", m, g.d.ID, dlv)
	}
	replied := time.Now()
	if err := m.Reply(context.Background(), nil, g.d.ID, map[string]any{"reply": "Hi back", "n": 2}); err != nil {
		t.Fatalf("Reply: %v", err)
	}
	g2 := sessSrv.call(t, "response")
	f := g2.v.(*receiver.ForwardedResponse)
	if f.SessionID != "sess-1" || f.ChannelID != "chat" || !jsonEqual(f.ResponseData, []byte(`{"reply": "Hi back", "n": 2}`)) ||
		f.ReceivedAt.Before(replied.Truncate(time.Millisecond)) || f.ReceivedAt.After(time.Now()) {
		t.Errorf("forwarded response decoded as %+v (data %s), want it received after %s", f, f.ResponseData, replied)
	}
	sess := api(t, "GET", base+"/sessions/sess-1", "", 200)
	fwd := sess["responses"].([]any)[0].(map[string]any)["forward"].(map[string]any)
	if g2.d.ID == "" || fwd["delivery_id"] != g2.d.ID {
		t.Errorf("forward Delivery.ID %q, the session says %v", g2.d.ID, fwd)
	}
	checkRefusals(t, chanSrv, chanSrv.requests(`"sess-1"`)[0], receiver.Config{Secrets: []string{relaySecret}})
	checkRefusals(t, sessSrv, sessSrv.requests(`"sess-1"`)[0], receiver.Config{Secrets: []string{relaySecret}})
}
