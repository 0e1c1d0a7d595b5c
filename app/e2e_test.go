package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"
)

// receiver is a subscriber endpoint like the seed's Django REST view: it answers the handshake
// with the challenge as a JSON string and records every notification.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	notes []note
	block chan struct{} // when set, notifications wait on it before being answered
	held  chan string   // the webhook-id of each notification as it starts waiting on block
}

type note struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{held: make(chan string, 16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Token, Type, Challenge string }
		_ = json.Unmarshal(body, &p)
		if p.Type == "url_verification" {
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		rc.mu.Lock()
		block := rc.block
		rc.mu.Unlock()
		if block != nil {
			select {
			case rc.held <- r.Header.Get("webhook-id"):
			default:
			}
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		rc.mu.Lock()
		rc.notes = append(rc.notes, note{r.Header.Clone(), body})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

// hold makes notifications wait, unanswered, until release (or until their sender gives up).
func (rc *receiver) hold() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.block = make(chan struct{})
}

// release answers the notifications held and stops holding new ones.
func (rc *receiver) release() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	close(rc.block)
	rc.block = nil
}

func (rc *receiver) received() []note {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]note(nil), rc.notes...)
}

// TestNotificationEndToEnd follows the README's notification walkthrough through the whole
// daemon: channel, subscriber, handshake, notify (retried with the same Idempotency-Key), exactly
// one signed delivery with the seed's payload, and the event and delivery records.
func TestNotificationEndToEnd(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey} })
	rc := newReceiver(t)

	resp, _ := do(t, "POST", base+"/channel", testKey, `{"channel_id": "slack-sim", "channel_tags": ["slack"],
		"channel_metadata": {"endpoint_url": "`+rc.URL+`/incoming", "chat_type": "slack"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create channel: %d", resp.StatusCode)
	}
	resp, sub := do(t, "POST", base+"/subscribers", testKey, `{"url": "`+rc.URL+`/hook", "token": "tok", "channel_tags": ["slack"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create subscriber: %d %v", resp.StatusCode, sub)
	}
	id, secret := sub["id"].(string), sub["secret"].(string)
	testutil.Eventually(t, 10*time.Second, "the subscriber to be verified", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+id, testKey, "")
		return s["status"] == "verified"
	})

	first, again := notifyPublish42(t, base), notifyPublish42(t, base)
	if first["event_id"] != again["event_id"] || first["subscribers"] != float64(1) {
		t.Fatalf("notify answers %v then %v", first, again)
	}
	evt := first["event_id"].(string)

	// The event's one delivery is recorded delivered only after the receiver answered it: by then
	// every request herald made for the notification has arrived.
	testutil.Eventually(t, 10*time.Second, "the event to show its delivery as delivered", func() bool {
		_, e := do(t, "GET", base+"/events/"+evt, testKey, "")
		ds, _ := e["deliveries"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["status"] == "delivered"
	})
	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("received %d notifications, want exactly 1", len(got))
	}
	checkPublish42Payload(t, secret, got[0])
	checkDeliveryRecords(t, base, evt, id, got[0])
}

// notifyPublish42 notifies slack-sim of an edited message with Idempotency-Key publish-42 and
// expects 202.
func notifyPublish42(t *testing.T, base string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/channel/slack-sim/notify", strings.NewReader(
		`{"type": "update_notification", "update_type": "message_changed", "message": {"user": "U1", "content": "edited"}}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "publish-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 202 {
		t.Fatalf("notify: %d %v", resp.StatusCode, m)
	}
	return m
}

// checkPublish42Payload checks that the notification of notifyPublish42 is signed with the
// subscriber's secret and carries the seed's payload.
func checkPublish42Payload(t *testing.T, secret string, got note) {
	t.Helper()
	if err := webhooksig.Verify(secret, got.header, got.body, time.Minute); err != nil {
		t.Fatalf("signature: %v", err)
	}
	var payload map[string]any
	if err := json.Unmarshal(got.body, &payload); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"token": "tok", "type": "update_notification", "channel": "slack-sim", "chat_type": "slack",
		"update_type": "message_changed", "message": map[string]any{"user": "U1", "content": "edited"}}
	if fmt.Sprint(payload) != fmt.Sprint(want) {
		t.Fatalf("payload %v\nwant    %v", payload, want)
	}
}

// checkDeliveryRecords checks the records of event evt's one delivery, to subscriber id, against
// the request the subscriber got: in the event, by its id with its one attempt, and not among the
// dead letters.
func checkDeliveryRecords(t *testing.T, base, evt, id string, got note) {
	t.Helper()
	_, e := do(t, "GET", base+"/events/"+evt, testKey, "")
	d := e["deliveries"].([]any)[0].(map[string]any)
	if d["subscriber_id"] != id || d["event_id"] != evt || got.header.Get("webhook-id") != d["id"] {
		t.Fatalf("delivery record %v does not match the request (webhook-id %q)", d, got.header.Get("webhook-id"))
	}
	resp, one := do(t, "GET", base+"/deliveries/"+d["id"].(string), testKey, "")
	if resp.StatusCode != 200 || len(one["attempts"].([]any)) != 1 {
		t.Fatalf("GET /deliveries/{id}: %d %v", resp.StatusCode, one)
	}
	resp, failed := do(t, "GET", base+"/deliveries?status=failed", testKey, "")
	if resp.StatusCode != 200 || len(failed["deliveries"].([]any)) != 0 {
		t.Fatalf("dead letters: %d %v", resp.StatusCode, failed)
	}
}

// TestBadInputNeverBreaksTheDaemon sends malformed requests to every route: each gets a JSON 4xx
// naming the problem, never a 5xx, and the daemon goes on serving good requests.
func TestBadInputNeverBreaksTheDaemon(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.MaxBodyBytes = 4096 })
	if resp, _ := do(t, "POST", base+"/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "http://127.0.0.1:1/x"}}`); resp.StatusCode != 201 {
		t.Fatalf("setup: %d", resp.StatusCode)
	}
	big := `{"channel_id": "big", "channel_name": "` + strings.Repeat("x", 5000) + `"}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/channel", `{`},
		{"POST", "/channel", `{"channel_id": ["x"]}`},
		{"POST", "/channel", `{"channel_id": "c2", "channel_metadata": {"endpoint_url": "ftp://x"}}`},
		{"POST", "/channel", big},
		{"PUT", "/channel/c1", `{"channel_tags": "slack"}`},
		{"PUT", "/channel/bad%20id", `{}`},
		{"POST", "/channels", `{"channel_tags": {"$regex": "x"}}`},
		{"POST", "/channels?limit=-1", `{}`},
		{"POST", "/channels?after=%%%", `{}`},
		{"POST", "/subscribers", `{"url": "not a url"}`},
		{"POST", "/subscribers", `{"url": "https://example.com", "types": ["nope"]}`},
		{"POST", "/subscribers", `{"url": "https://example.com", "secret": "plain"}`},
		{"PATCH", "/subscribers/nope", `{"url": "https://example.com"}`},
		{"POST", "/channel/c1/notify", `{"type": "bogus"}`},
		{"POST", "/channel/c1/notify", `{"type": "update_notification", "update_type": "message_exploded"}`},
		{"POST", "/channel/c1/notify", `{"type": "republish_request", "subscriber_id": "sub_missing"}`},
		{"POST", "/channel/nope/notify", `{"type": "republish_request"}`},
		{"POST", "/channel/message", `{"channel_id": "c1", "session_id": "", "message": "m"}`},
		{"POST", "/channel/message", `{"channel_id": "nope", "session_id": "s", "message": "m"}`},
		{"POST", "/webhook-response", `{"session_id": "never"}`},
		{"POST", "/webhook-response", `not json`},
		{"GET", "/sessions/never", ``},
		{"GET", "/events/never", ``},
		{"GET", "/deliveries?status=lost", ``},
		{"GET", "/deliveries/never", ``},
		{"POST", "/deliveries/never/retry", ``},
		{"DELETE", "/channels", ``},
	} {
		resp, m := do(t, c.method, base+c.path, "", c.body)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s %.60s: status %d, want a 4xx", c.method, c.path, c.body, resp.StatusCode)
			continue
		}
		e, _ := m["error"].(map[string]any)
		if e["code"] == "" || e["message"] == "" {
			t.Errorf("%s %s: error body %v lacks code or message", c.method, c.path, m)
		}
	}
	// Nothing half-written, and the daemon still serves.
	if resp, _ := do(t, "GET", base+"/channel/big", "", ""); resp.StatusCode != 404 {
		t.Fatalf("oversize create left a channel: %d", resp.StatusCode)
	}
	if resp, ch := do(t, "GET", base+"/channel/c1", "", ""); resp.StatusCode != 200 || len(ch["channel_tags"].([]any)) != 0 {
		t.Fatalf("c1 after bad updates: %d %v", resp.StatusCode, ch)
	}
	if resp, _ := do(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

// TestInFlightTryIsPutBackAtShutdown: a daemon whose shutdown deadline passes while a try is stuck
// at the receiver abandons the try and puts its delivery back without counting it. The next daemon
// on the same Redis finds the delivery pending with no attempt, and delivers it with one.
func TestInFlightTryIsPutBackAtShutdown(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	cfg := testConfig(t) // both daemons share its Redis and key prefix
	cfg.ShutdownTimeout = 500 * time.Millisecond
	cfg.RequestTimeout = time.Minute // only the shutdown ends the stuck try
	cfg.RetrySchedule = []time.Duration{100 * time.Millisecond}

	base, _, stop := serve(t, cfg)
	do(t, "POST", base+"/channel", "", `{"channel_id": "c", "channel_metadata": {"endpoint_url": "`+rc.URL+`/x"}}`)
	_, sub := do(t, "POST", base+"/subscribers", "", `{"url": "`+rc.URL+`/hook"}`)
	testutil.Eventually(t, 10*time.Second, "verification", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+sub["id"].(string), "", "")
		return s["status"] == "verified"
	})
	rc.hold()
	if resp, _ := do(t, "POST", base+"/channel/c/notify", "", `{"type": "unpublish_request"}`); resp.StatusCode != 202 {
		t.Fatalf("notify: %d", resp.StatusCode)
	}
	id := testutil.Receive(t, rc.held, 10*time.Second, "the try to reach the receiver")
	stop() // returns after the shutdown deadline abandoned the try

	base, _, _ = serve(t, cfg)
	if again := testutil.Receive(t, rc.held, 10*time.Second, "the next daemon's try"); again != id {
		t.Fatalf("the next daemon tried %s, want the abandoned %s", again, id)
	}
	// That try is held too, so the record shows what the first daemon left.
	resp, d := do(t, "GET", base+"/deliveries/"+id, "", "")
	if resp.StatusCode != 200 || d["status"] != "pending" || len(d["attempts"].([]any)) != 0 {
		t.Fatalf("after the shutdown: %d %v, want pending with no attempt", resp.StatusCode, d)
	}

	rc.release()
	testutil.Eventually(t, 10*time.Second, "the delivery to be delivered", func() bool {
		_, d = do(t, "GET", base+"/deliveries/"+id, "", "")
		return d["status"] == "delivered"
	})
	if atts := d["attempts"].([]any); len(atts) != 1 || atts[0].(map[string]any)["status_code"] != 200.0 {
		t.Fatalf("attempts %v, want one, answered 200", atts)
	}
	got := rc.received()
	if len(got) != 1 || !strings.Contains(string(got[0].body), `"unpublish_request"`) {
		t.Fatalf("the receiver answered %d notifications, want the one unpublish_request", len(got))
	}
}
