package app_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/internal/testutil"
)

// TestMaximumLengthIDsEndToEnd takes ids of the longest valid length through every path that
// derives other ids from them: the relay's endpoint of the channel, a session, a subscriber
// filtering on the channel and its notification. Each is accepted, delivered and shown, never a
// 500 because a derived id outgrew the limit.
func TestMaximumLengthIDsEndToEnd(t *testing.T) {
	t.Parallel()
	base, _ := start(t, nil)
	rc := newReceiver(t)
	chID := "c" + strings.Repeat("x", ids.MaxLen-1)
	sessID := "s" + strings.Repeat("y", ids.MaxLen-1)

	resp, m := do(t, "POST", base+"/channel", "", `{"channel_id": "`+chID+`", "channel_metadata": {"endpoint_url": "`+rc.URL+`/incoming"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create channel: %d %v", resp.StatusCode, m)
	}
	resp, m = do(t, "POST", base+"/channel/message", "", `{"channel_id": "`+chID+`", "session_id": "`+sessID+`", "message": "hi"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("relay to a channel with a %d-character id: %d %v", len(chID), resp.StatusCode, m)
	}
	relayed := waitForBody(t, rc, `"session_id":"`+sessID+`"`)
	var msg struct {
		ResponseURL string `json:"response_url"`
	}
	if err := json.Unmarshal(relayed, &msg); err != nil || msg.ResponseURL == "" {
		t.Fatalf("relayed body %s: %v", relayed, err)
	}
	if resp, m = do(t, "POST", msg.ResponseURL, "", `{"session_id": "`+sessID+`", "response_data": "ok"}`); resp.StatusCode != 200 {
		t.Fatalf("callback: %d %v", resp.StatusCode, m)
	}
	resp, m = do(t, "GET", base+"/sessions/"+sessID, "", "")
	if resp.StatusCode != 200 || len(m["responses"].([]any)) != 1 {
		t.Fatalf("session: %d %v", resp.StatusCode, m)
	}

	resp, sub := do(t, "POST", base+"/subscribers", "", `{"url": "`+rc.URL+`/hook", "channel_ids": ["`+chID+`"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create subscriber: %d %v", resp.StatusCode, sub)
	}
	testutil.Eventually(t, 10*time.Second, "the subscriber to be verified", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+sub["id"].(string), "", "")
		return s["status"] == "verified"
	})
	resp, ev := do(t, "POST", base+"/channel/"+chID+"/notify", "", `{"type": "republish_request"}`)
	if resp.StatusCode != 202 || ev["subscribers"] != 1.0 {
		t.Fatalf("notify: %d %v", resp.StatusCode, ev)
	}
	waitForBody(t, rc, `"channel":"`+chID+`"`)

	if resp, m = do(t, "DELETE", base+"/channel/"+chID, "", ""); resp.StatusCode != 200 {
		t.Fatalf("delete channel: %d %v", resp.StatusCode, m)
	}
}

// waitForBody waits for rc to receive a request whose body contains part, and returns that body.
func waitForBody(t *testing.T, rc *receiver, part string) []byte {
	t.Helper()
	var body []byte
	testutil.Eventually(t, 10*time.Second, "a request with "+part, func() bool {
		for _, n := range rc.received() {
			if strings.Contains(string(n.body), part) {
				body = n.body
				return true
			}
		}
		return false
	})
	return body
}
