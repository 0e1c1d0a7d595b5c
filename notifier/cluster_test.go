package notifier

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

// clusterClient opens the client herald opens on a Cluster (redisx.Open: it follows failovers).
func clusterClient(t *testing.T, addrs []string) redis.UniversalClient {
	t.Helper()
	conn, err := redisx.Open(context.Background(), redisx.Options{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.Client
}

// evalCalls returns each master's count of script calls (EVALSHA and EVAL) so far.
func evalCalls(t *testing.T, masters []*redistest.Server) []int64 {
	t.Helper()
	out := make([]int64, len(masters))
	for i, m := range masters {
		info, err := m.Client(t).Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_eval:") {
				calls, _, _ := strings.Cut(strings.TrimPrefix(line[strings.Index(line, ":")+1:], "calls="), ",")
				n, _ := strconv.ParseInt(calls, 10, 64)
				out[i] += n
			}
		}
	}
	return out
}

// On a Cluster of three masters, three queue shards put the queue's work on all three, and two
// engines (one of them killed with SIGKILL mid-run) deliver every delivery.
func TestShardsSpreadOverClusterMasters(t *testing.T) {
	t.Parallel()
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3})
	rdb := clusterClient(t, cl.Addrs)
	prefix := "c" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ctx := context.Background()
	masters := map[string]bool{}
	for i := range 3 {
		m, err := cl.MasterOf(ctx, redisx.Slot(shardTag(prefix, i, 3)))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("3 shards on %d masters", len(masters))
	}

	child := startChildEngine(t, strings.Join(cl.Addrs, ","), prefix, 3)
	cfg := testConfig(prefix)
	cfg.QueueShards = 3
	e := startEngine(t, rdb, cfg)
	rc := newIDCounter(t)
	var reqs []Request
	for i := range 30 {
		ep := fmt.Sprintf("ep-%02d", i)
		putEndpoint(t, e, Endpoint{ID: ep, URL: rc.URL, RateLimitPerMinute: 1_000_000})
		for j := range 20 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("d-%02d-%02d", i, j), EndpointID: ep, Body: []byte(`{}`)})
		}
	}
	before := evalCalls(t, cl.Nodes[:3])
	ids := enqueue(t, e, reqs...)
	testutil.Eventually(t, 10*time.Second, "some deliveries", func() bool { return rc.total() >= 100 })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	testutil.Eventually(t, 20*time.Second, "every delivery", func() bool { return rc.total() >= len(ids) })
	if bad := rc.exactlyOnce(ids); bad != "" {
		// A try the child made just before it died is made again by the parent: at least once.
		t.Logf("after the kill: %s", bad)
	}
	for _, id := range ids {
		waitStatus(t, e, id, StatusDelivered, 5*time.Second)
	}
	after := evalCalls(t, cl.Nodes[:3])
	var total int64
	share := make([]int64, 3)
	for i := range share {
		share[i] = after[i] - before[i]
		total += share[i]
	}
	t.Logf("script calls per master: %v of %d", share, total)
	for i, n := range share {
		if n < total/6 {
			t.Errorf("master %d ran %d of %d script calls: the queue's work is not spread", i, n, total)
		}
	}
}

// A master fails over to its replica mid-run: herald keeps delivering. What Redis's asynchronous
// replication lost in that window is counted: deliveries accepted but gone with the old master.
// With Config.Replication asking for the replica, Enqueue returns only once the replica holds
// the deliveries (WAIT on the master of each shard's slot): none accepted may be lost.
func TestQueueSurvivesMasterFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		repl redisx.Replication
	}{
		{"asynchronous", redisx.Replication{}},
		{"wait for the replica", redisx.Replication{Replicas: 1, Timeout: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			survivesFailover(t, tc.repl)
		})
	}
}

func survivesFailover(t *testing.T, repl redisx.Replication) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	rdb := clusterClient(t, cl.Addrs)
	prefix := "f" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cfg := testConfig(prefix)
	cfg.QueueShards = 3
	cfg.Replication = repl
	e := startEngine(t, rdb, cfg)
	rc := newIDCounter(t)
	for i := range 12 {
		putEndpoint(t, e, Endpoint{ID: fmt.Sprintf("ep-%02d", i), URL: rc.URL, RateLimitPerMinute: 1_000_000})
	}
	ctx := context.Background()
	victimSlot := redisx.Slot(shardTag(prefix, 1, 3))
	victim, err := cl.MasterOf(ctx, victimSlot)
	if err != nil {
		t.Fatal(err)
	}
	enqueueRound := func(round int) []string {
		var reqs []Request
		for i := range 12 {
			reqs = append(reqs, Request{ID: fmt.Sprintf("r%03d-%02d", round, i), EndpointID: fmt.Sprintf("ep-%02d", i), Body: []byte(`{}`)})
		}
		ids, err := e.Enqueue(ctx, reqs...)
		if err != nil {
			return nil // refused while the shard fails over: the publisher retries; not accepted
		}
		return ids
	}
	var accepted []string
	for round := range 20 {
		accepted = append(accepted, enqueueRound(round)...)
	}
	victim.Kill()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cl.WaitServed(waitCtx, victimSlot); err != nil {
		t.Fatal(err)
	}
	if repl.Replicas > 0 {
		// The promoted replica has no replica of its own: its shard refuses work (not replicated)
		// until the old master is back, as its replica.
		if err := victim.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	var afterFailover []string
	round := 20
	testutil.Eventually(t, 30*time.Second, "20 rounds accepted after the failover", func() bool {
		ids := enqueueRound(round)
		round++
		accepted = append(accepted, ids...)
		afterFailover = append(afterFailover, ids...)
		return len(afterFailover) >= 20*12
	})
	testutil.Eventually(t, 30*time.Second, "the deliveries accepted after the failover", func() bool {
		return rc.missing(afterFailover) == 0
	})
	// The others are received or gone: a record the old master had not passed on is not pending.
	testutil.Eventually(t, 30*time.Second, "every accepted delivery received or gone", func() bool {
		for _, id := range accepted {
			if _, err := e.Get(ctx, id); err == nil && rc.missing([]string{id}) == 1 {
				return false
			}
		}
		return true
	})
	lost := rc.missing(accepted)
	t.Logf("accepted %d, of which %d after the failover; lost in the failover window: %d", len(accepted), len(afterFailover), lost)
	if lost > len(accepted)-len(afterFailover) {
		t.Errorf("lost %d, more than were accepted before the failover", lost)
	}
	if repl.Replicas > 0 && lost > 0 {
		t.Errorf("lost %d accepted deliveries although each was acknowledged by a replica", lost)
	}
	if repl.Replicas > 0 && waitsRun(ctx, t, cl) == 0 {
		t.Error("no master ran a WAIT")
	}
}

// waitsRun is how many WAIT commands the cluster's live masters have run.
func waitsRun(ctx context.Context, t *testing.T, cl *redistest.Cluster) int {
	t.Helper()
	masters, err := cl.Masters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range masters {
		for _, line := range strings.Split(m.Client(t).Info(ctx, "commandstats").Val(), "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
				calls, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				n += calls
			}
		}
	}
	return n
}

// missing counts the ids never received.
func (c *idCounter) missing(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c.seen[id] == 0 {
			n++
		}
	}
	return n
}
