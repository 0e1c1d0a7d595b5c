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
	"github.com/heraldhq/herald/notifier"
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
	var gone atomic.Bool
	var mu sync.Mutex
	type got struct {
		header http.Header
		body   []byte
	}
	var notes []got
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Token, Type, Challenge string }
		_ = json.Unmarshal(body, &p)
		if p.Token != "daemon-wide-token" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if p.Type == "url_verification" {
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		mu.Lock()
		notes = append(notes, got{r.Header.Clone(), body})
		mu.Unlock()
		if gone.Load() {
			w.WriteHeader(http.StatusGone)
		}
	}))
	defer rc.Close()

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
	notify := func() map[string]any {
		t.Helper()
		resp, ev := do(t, "POST", base+"/channel/ch-1/notify", testKey, `{"type": "update_notification", "update_type": "message_created", "message": {"content": "hi"}}`)
		if resp.StatusCode != 202 {
			t.Fatalf("notify: %d %v", resp.StatusCode, ev)
		}
		return ev
	}
	if ev := notify(); ev["subscribers"] != 1.0 {
		t.Fatalf("notify reached %v subscribers, want 1", ev["subscribers"])
	}
	testutil.Eventually(t, 15*time.Second, "a notification", func() bool { mu.Lock(); defer mu.Unlock(); return len(notes) == 1 })
	mu.Lock()
	first := notes[0]
	mu.Unlock()
	if err := notifier.Verify(secret, first.header, first.body, time.Minute); err != nil {
		t.Fatalf("the notification does not verify with the subscriber's secret: %v", err)
	}

	gone.Store(true)
	notify()
	testutil.Eventually(t, 15*time.Second, "disabled", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+id, testKey, "")
		return s["status"] == "disabled" && s["disabled_reason"] == "endpoint answered 410 Gone"
	})
	if ev := notify(); ev["subscribers"] != 0.0 {
		t.Fatalf("a disabled subscriber still gets notifications: %v", ev)
	}
}
