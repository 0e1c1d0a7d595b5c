package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testutil"
)

// Deleting a channel drops its relay endpoint: a message still waiting for a retry is
// dead-lettered instead of being sent to the server of a channel that no longer exists, and the
// endpoint does not stay behind in Redis.
func TestDeletedChannelTakesItsRelayEndpoint(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(t)
	cfg.RetrySchedule = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	base, _, _ := serve(t, cfg)
	if resp, _ := do(t, "POST", base+"/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "`+srv.URL+`/incoming"}}`); resp.StatusCode != 201 {
		t.Fatalf("create channel: %d", resp.StatusCode)
	}
	if resp, m := do(t, "POST", base+"/channel/message", "", `{"channel_id": "c1", "session_id": "s1", "message": "hi"}`); resp.StatusCode != 202 {
		t.Fatalf("message: %d %v", resp.StatusCode, m)
	}
	testutil.Eventually(t, 5*time.Second, "the first try", func() bool { return got.Load() >= 1 })

	opt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	epKey := cfg.RedisPrefix + ":{" + cfg.RedisPrefix + "}:ep:chan:c1"
	if rdb.Exists(context.Background(), epKey).Val() != 1 {
		t.Fatalf("no relay endpoint at %s while the channel exists", epKey)
	}
	if resp, _ := do(t, "DELETE", base+"/channel/c1", "", ""); resp.StatusCode != 200 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if rdb.Exists(context.Background(), epKey).Val() != 0 {
		t.Error("the relay endpoint outlived its channel")
	}
	// The retry that was due finds no endpoint: the message is dead-lettered, so no more requests
	// can reach the old server.
	testutil.Eventually(t, 10*time.Second, "the message to be dead-lettered as endpoint_deleted", func() bool {
		_, m := do(t, "GET", base+"/deliveries?status=failed", "", "")
		ds, _ := m["deliveries"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["dead_reason"] == "endpoint_deleted"
	})
	if n := got.Load(); n > 2 {
		t.Errorf("the deleted channel's server got %d requests, more than the one or two before the delete", n)
	}
}

// A channel whose server keeps failing shows, on GET /channel/{id}?include=health, its relay
// endpoint's open breaker and last error; and its relayed message shows it waits for that
// breaker. Without ?include the channel stays the seed's object, key for key.
func TestChannelShowsItsRelayEndpointHealth(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(t)
	cfg.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	cfg.APIRateLimit = 0 // the test polls faster than a client may
	base, _, _ := serve(t, cfg)
	if resp, _ := do(t, "POST", base+"/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "`+srv.URL+`/incoming"}}`); resp.StatusCode != 201 {
		t.Fatalf("create channel: %d", resp.StatusCode)
	}
	_, m := do(t, "GET", base+"/channel/c1?include=health", "", "")
	if h, _ := m["health"].(map[string]any); h["breaker"] != "closed" || h["last_error"] != "" {
		t.Fatalf("health of a new channel: %v", m)
	}
	// Two sessions, four tries each: the fifth failure opens the breaker.
	for _, s := range []string{"s1", "s2"} {
		if resp, m := do(t, "POST", base+"/channel/message", "", `{"channel_id": "c1", "session_id": "`+s+`", "message": "hi"}`); resp.StatusCode != 202 {
			t.Fatalf("message: %d %v", resp.StatusCode, m)
		}
	}
	var h map[string]any
	testutil.Eventually(t, 10*time.Second, "the channel to show its breaker open and the last error", func() bool {
		_, m := do(t, "GET", base+"/channel/c1?include=health", "", "")
		h, _ = m["health"].(map[string]any)
		return h["breaker"] == "open" && h["last_error"] == "HTTP 503"
	})
	if h["last_status_code"] != 503.0 || h["last_failure_at"] == nil || h["last_success_at"] != nil {
		t.Errorf("health %v, want the last failure's status and time, and no success", h)
	}
	resp, m := do(t, "POST", base+"/channel/message", "", `{"channel_id": "c1", "session_id": "s3", "message": "hi"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("message: %d %v", resp.StatusCode, m)
	}
	id, _ := m["delivery_id"].(string)
	testutil.Eventually(t, 5*time.Second, "the message to wait for the breaker", func() bool {
		_, d := do(t, "GET", base+"/deliveries/"+id, "", "")
		w, _ := d["waiting"].(map[string]any)
		return d["status"] == "pending" && w["reason"] == "breaker_open"
	})
	_, sess := do(t, "GET", base+"/sessions/s3", "", "")
	msgs, _ := sess["messages"].([]any)
	var w map[string]any
	if len(msgs) == 1 {
		msg, _ := msgs[0].(map[string]any)
		w, _ = msg["waiting"].(map[string]any)
	}
	if w["reason"] != "breaker_open" {
		t.Errorf("GET /sessions/s3: %v, want its message waiting for the breaker", sess["messages"])
	}

	_, plain := do(t, "GET", base+"/channel/c1", "", "")
	for k := range plain {
		switch k {
		case "channel_id", "channel_name", "channel_description", "channel_metadata", "channel_tags":
		default:
			t.Errorf("GET /channel/c1 has %q, not a field of the seed's ChannelStoreObject", k)
		}
	}
	if resp, m := do(t, "GET", base+"/channel/c1?include=stats", "", ""); resp.StatusCode != 400 || errCode(m) != "invalid_value" {
		t.Errorf("?include=stats: %d %v, want 400 naming include", resp.StatusCode, m)
	}
}
