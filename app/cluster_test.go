package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/redis/go-redis/v9"
)

// TestOnRedisCluster runs the walkthrough against a real three-node Redis Cluster, the delivery
// queue in three shards: every Lua script must keep its keys on one slot (a CROSSSLOT error would
// fail a request here).
func TestOnRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := redistest.StartCluster(t)
	// One master persists but evicts; the others persist nothing: only reading every master
	// finds both risks.
	first := redis.NewClient(&redis.Options{Addr: addrs[0]})
	defer first.Close()
	for _, kv := range [][2]string{{"appendonly", "yes"}, {"maxmemory-policy", "allkeys-lru"}} {
		if err := first.ConfigSet(context.Background(), kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	base, a := start(t, func(c *app.Config) {
		c.Redis.URL = ""
		c.Redis.Addrs = addrs
		c.QueueShards = 3 // the queue on every master
	})
	if n := a.Engine.QueueShards(); n != 3 {
		t.Fatalf("the engine runs %d queue shards, want 3", n)
	}
	ws := strings.Join(readyzWarnings(t, base), "\n")
	if !strings.Contains(ws, "no persistence") || !strings.Contains(ws, "allkeys-lru") {
		t.Errorf("readyz warnings on the cluster: %q, want the missing persistence and the eviction", ws)
	}
	rc := newReceiver(t)
	mustStatus := func(want int, method, path, body string) map[string]any {
		t.Helper()
		resp, m := do(t, method, base+path, "", body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, m, want)
		}
		return m
	}
	mustStatus(201, "POST", "/channel", `{"channel_id": "c1", "channel_tags": ["slack"], "channel_metadata": {"endpoint_url": "`+rc.URL+`/incoming"}}`)
	mustStatus(200, "PUT", "/channel/c1", `{"channel_tags": ["slack", "b"]}`)
	if got := mustStatus(200, "POST", "/channels", `{"channel_tags": {"$in": ["b"]}}`); len(got["channels"].([]any)) != 1 {
		t.Fatalf("query: %v", got)
	}
	sub := mustStatus(201, "POST", "/subscribers", `{"url": "`+rc.URL+`/hook", "channel_tags": ["slack"]}`)
	testutil.Eventually(t, 10*time.Second, "verification on the cluster", func() bool {
		_, s := do(t, "GET", base+"/subscribers/"+sub["id"].(string), "", "")
		return s["status"] == "verified"
	})
	evt := mustStatus(202, "POST", "/channel/c1/notify", `{"type": "republish_request"}`)
	mustStatus(202, "POST", "/channel/message", `{"channel_id": "c1", "session_id": "s1", "message": "hi"}`)
	testutil.Eventually(t, 10*time.Second, "both deliveries on the cluster", func() bool { return len(rc.received()) >= 2 })
	testutil.Eventually(t, 10*time.Second, "the event's delivery record", func() bool {
		_, e := do(t, "GET", base+"/events/"+evt["event_id"].(string), "", "")
		ds, _ := e["deliveries"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["status"] == "delivered"
	})
	mustStatus(200, "GET", "/sessions/s1", "")
	mustStatus(200, "GET", "/deliveries?status=failed", "")
	mustStatus(200, "DELETE", "/subscribers/"+sub["id"].(string), "")
	mustStatus(200, "DELETE", "/channel/c1", "")
}
