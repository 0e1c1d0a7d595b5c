package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
	waitFor(t, "the first try", 5*time.Second, func() bool { return got.Load() >= 1 })

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
	// The retry that was due finds no endpoint: no more requests reach the old server.
	time.Sleep(time.Second)
	n := got.Load()
	time.Sleep(time.Second)
	if got.Load() != n || n > 2 {
		t.Errorf("the deleted channel's server got %d requests, still growing or more than the one or two before the delete", got.Load())
	}
}
