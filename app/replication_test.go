package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

// With --redis-wait-replicas 1, a notify and a relayed message are answered 202 only once the
// master's replica holds them (herald sends WAIT after each write that accepts work); while the
// master has no replica to acknowledge, they are answered 503 with Retry-After, the daemon keeps
// serving, and a retry succeeds once the replica is back. What the master took meanwhile stands
// (it is delivered, its session kept): the 503 says only that it is not yet safe from a failover.
func TestWaitForReplicasBeforeAccepting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := redistest.Start(t, "--repl-diskless-sync-delay", "0") // sync a replica at once
	replica := redistest.Start(t)
	mc, rc := master.Client(t), replica.Client(t)
	follow(ctx, t, rc, mc, master)

	var got atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { got.Add(1) }))
	t.Cleanup(server.Close)
	cfg := testConfig(t)
	cfg.Redis.URL = "redis://" + master.Addr
	cfg.APIRateLimit = 0
	cfg.Replication = redisx.Replication{Replicas: 1, Timeout: redisx.DefaultReplicationTimeout} // a loaded machine's replica may lag some 100 ms
	base, _, _ := serve(t, cfg)
	do(t, "POST", base+"/channel", "", `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "`+server.URL+`/in"}}`)

	waitsBefore := waitCalls(ctx, t, mc)
	accepting := []request{
		{"POST", "/channel/c1/notify", `{"type": "republish_request"}`},
		{"POST", "/channel/message", `{"channel_id": "c1", "session_id": "s1", "message": "m"}`},
	}
	for _, r := range accepting {
		if resp, m := do(t, r.method, base+r.path, "", r.body); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s %s with the replica following: %d %v", r.method, r.path, resp.StatusCode, m)
		}
	}
	if waitCalls(ctx, t, mc) < waitsBefore+2 {
		t.Fatal("no WAIT reached the master for the accepted work")
	}
	testutil.Eventually(t, 5*time.Second, "the relayed message to arrive", func() bool { return got.Load() == 1 })

	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the master to lose its replica", func() bool {
		return strings.Contains(mc.Info(ctx, "replication").Val(), "connected_slaves:0")
	})
	for _, r := range []request{accepting[0], {"POST", "/channel/message", `{"channel_id": "c1", "session_id": "s2", "message": "m"}`}} {
		resp, m := do(t, r.method, base+r.path, "", r.body)
		wantUnavailable(t, r.method+" "+r.path+" with no replica", resp, m)
	}
	// The message the master took but no replica acknowledged stands: it is sent, and the session
	// it opened stays for the server's callback.
	testutil.Eventually(t, 5*time.Second, "the unreplicated message to be sent all the same", func() bool { return got.Load() == 2 })
	if resp, m := do(t, "GET", base+"/sessions/s2", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("the session of the unreplicated message: %d %v", resp.StatusCode, m)
	}
	if resp, _ := do(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	follow(ctx, t, rc, mc, master)
	if resp, m := do(t, "POST", base+"/channel/c1/notify", "", `{"type": "republish_request"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notify once the replica is back: %d %v", resp.StatusCode, m)
	}
}

// follow makes rc a replica of master and waits until master counts it in sync.
func follow(ctx context.Context, t *testing.T, rc, mc *redis.Client, master *redistest.Server) {
	t.Helper()
	if err := rc.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the replica to sync", func() bool {
		return strings.Contains(rc.Info(ctx, "replication").Val(), "master_link_status:up") &&
			strings.Contains(mc.Info(ctx, "replication").Val(), "connected_slaves:1")
	})
}

// waitCalls is how many WAIT commands the server has run.
func waitCalls(ctx context.Context, t *testing.T, c *redis.Client) int {
	t.Helper()
	for _, line := range strings.Split(c.Info(ctx, "commandstats").Val(), "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}
