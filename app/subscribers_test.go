package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"
)

// TestSubscribersThroughTheDaemon drives the wiring of mountSubscribers: the default token from
// --verification-token, the verifier service started by Serve, the engine endpoint registered on
// create, and the health listener on the engine (a 410 from a notification disables the
// subscriber, which then stops matching).
func TestSubscribersThroughTheDaemon(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) {
		c.APIKeys = []string{testKey}
		c.VerificationToken = "daemon-wide-token"
		c.RetrySchedule = []time.Duration{20 * time.Millisecond}
	})
	rc := newTokenReceiver(t, "daemon-wide-token")

	if resp, _ := do(t, "POST", base+"/subscribers", "", `{"url": "`+rc.URL+`"}`); resp.StatusCode != 401 {
		t.Fatalf("without an API key: %d", resp.StatusCode)
	}
	resp, sub := do(t, "POST", base+"/subscribers", testKey, `{"url": "`+rc.URL+`", "chat_types": ["support"]}`)
	if resp.StatusCode != 201 || sub["token"] != "daemon-wide-token" || sub["status"] != "pending" {
		t.Fatalf("create: %d %v", resp.StatusCode, sub)
	}
	id, secret := sub["id"].(string), sub["secret"].(string)
	testutil.Eventually(t, 15*time.Second, "verified", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+id, testKey, "")
		return s["status"] == "verified"
	})

	resp, ch := do(t, "POST", base+"/channel", testKey,
		`{"channel_id": "ch-1", "channel_metadata": {"endpoint_url": "http://127.0.0.1:9/in", "chat_type": "support"}, "channel_tags": ["slack"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("channel: %d %v", resp.StatusCode, ch)
	}
	if ev := notifyCh1(t, base); ev["subscribers"] != 1.0 {
		t.Fatalf("notify reached %v subscribers, want 1", ev["subscribers"])
	}
	testutil.Eventually(t, 15*time.Second, "a notification", func() bool { return len(rc.received()) == 1 })
	first := rc.received()[0]
	if err := webhooksig.Verify(secret, first.header, first.body, time.Minute); err != nil {
		t.Fatalf("the notification does not verify with the subscriber's secret: %v", err)
	}

	rc.gone.Store(true)
	notifyCh1(t, base)
	testutil.Eventually(t, 15*time.Second, "disabled", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+id, testKey, "")
		return s["status"] == "disabled" && s["disabled_reason"] == "endpoint answered 410 Gone"
	})
	if ev := notifyCh1(t, base); ev["subscribers"] != 0.0 {
		t.Fatalf("a disabled subscriber still gets notifications: %v", ev)
	}
}

// tokenReceiver is a subscriber endpoint that refuses (403) requests without its token, answers
// the handshake with the challenge, and records notifications; once gone is set it answers them
// 410 Gone.
type tokenReceiver struct {
	*httptest.Server
	gone  atomic.Bool
	mu    sync.Mutex
	notes []note
}

func newTokenReceiver(t *testing.T, token string) *tokenReceiver {
	rc := &tokenReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Token, Type, Challenge string }
		_ = json.Unmarshal(body, &p)
		if p.Token != token {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if p.Type == "url_verification" {
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		rc.mu.Lock()
		rc.notes = append(rc.notes, note{r.Header.Clone(), body})
		rc.mu.Unlock()
		if rc.gone.Load() {
			w.WriteHeader(http.StatusGone)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *tokenReceiver) received() []note {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]note(nil), rc.notes...)
}

// notifyCh1 notifies channel ch-1 of a new message and expects 202.
func notifyCh1(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, ev := do(t, "POST", base+"/channel/ch-1/notify", testKey, `{"type": "update_notification", "update_type": "message_created", "message": {"content": "hi"}}`)
	if resp.StatusCode != 202 {
		t.Fatalf("notify: %d %v", resp.StatusCode, ev)
	}
	return ev
}
