package redisx_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

var setScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1]) return 1`)

// With Replicas set, a write through RunScript returns only once that many replicas hold it
// (the first call also loads the script the server does not know yet); when the master has no
// replica to acknowledge, the write stands on the master but the call fails with the transient
// ErrNotReplicated, after the timeout.
func TestRunScriptWaitsForReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := redistest.Start(t, "--repl-diskless-sync-delay", "0") // sync a replica at once
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	mc, rc := master.Client(t), replica.Client(t)
	testutil.Eventually(t, 10*time.Second, "the replica to sync", func() bool {
		return strings.Contains(rc.Info(ctx, "replication").Val(), "master_link_status:up")
	})
	r := redisx.Replication{Replicas: 1, Timeout: 2 * time.Second}

	if err := r.RunScript(ctx, mc, setScript, []string{"k"}, "v1").Err(); err != nil {
		t.Fatalf("a replicated write: %v", err)
	}
	if v := rc.Get(ctx, "k").Val(); v != "v1" {
		t.Fatalf("the replica holds %q once the write returned; want v1", v)
	}

	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the master to lose its replica", func() bool {
		return strings.Contains(mc.Info(ctx, "replication").Val(), "connected_slaves:0")
	})
	r.Timeout = 200 * time.Millisecond
	start := time.Now()
	err := r.RunScript(ctx, mc, setScript, []string{"k"}, "v2").Err()
	if !errors.Is(err, redisx.ErrNotReplicated) || !redisx.IsTransient(err) {
		t.Fatalf("a write no replica acknowledged: err %v; want ErrNotReplicated, transient", err)
	}
	if waited := time.Since(start); waited < r.Timeout {
		t.Errorf("failed after %s, before the timeout %s", waited, r.Timeout)
	}
	if v := mc.Get(ctx, "k").Val(); v != "v2" {
		t.Errorf("the master holds %q; want v2 (the write stands)", v)
	}
}

var incrScript = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

// A wait longer than the client's read timeout (go-redis's default 3 s) is still a wait: the call
// ends with ErrNotReplicated after it, and the script ran once (a read that timed out would have
// been retried, script and all).
func TestRunScriptWaitsPastTheReadTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.Start(t).Client(t) // no replica
	r := redisx.Replication{Replicas: 1, Timeout: 3500 * time.Millisecond}
	if err := r.RunScript(ctx, c, incrScript, []string{"n"}).Err(); !errors.Is(err, redisx.ErrNotReplicated) {
		t.Fatalf("err %v; want ErrNotReplicated", err)
	}
	if n := c.Get(ctx, "n").Val(); n != "1" {
		t.Fatalf("the script ran %s times; want once", n)
	}
}

// Without replicas asked for, RunScript is the script's own Run: no WAIT is sent.
func TestRunScriptWithoutReplicasSendsNoWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.Start(t).Client(t)
	if err := (redisx.Replication{}).RunScript(ctx, c, setScript, []string{"k"}, "v").Err(); err != nil {
		t.Fatal(err)
	}
	if stats := c.Info(ctx, "commandstats").Val(); strings.Contains(stats, "cmdstat_wait:") {
		t.Fatalf("WAIT was sent:\n%s", stats)
	}
}

func TestReplicationCheck(t *testing.T) {
	for _, tc := range []struct {
		r  redisx.Replication
		ok bool
	}{
		{redisx.Replication{}, true},
		{redisx.Replication{Replicas: 1, Timeout: time.Second}, true},
		{redisx.Replication{Replicas: -1, Timeout: time.Second}, false},
		{redisx.Replication{Replicas: 1}, false},
		{redisx.Replication{Replicas: 1, Timeout: 500 * time.Microsecond}, false}, // WAIT 1 0 waits for ever
	} {
		if err := tc.r.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: Check() = %v; want ok %v", tc.r, err, tc.ok)
		}
	}
}
