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
