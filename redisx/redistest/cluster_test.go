package redistest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

// TestClusterFailover kills the master of a key's slot in a cluster of three masters with a
// replica each, and checks that its replica takes over with the key, that the helpers follow the
// change, and that clients write to the slot again.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	began := time.Now()
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	t.Logf("cluster of 6 ready in %s", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if len(cl.Nodes) != 6 || len(cl.Addrs) != 6 {
		t.Fatalf("%d nodes, %d addresses; want 6", len(cl.Nodes), len(cl.Addrs))
	}
	for i, s := range cl.Nodes {
		if cl.Addrs[i] != s.Addr {
			t.Fatalf("Addrs[%d] = %s, but node %d is on %s", i, cl.Addrs[i], i, s.Addr)
		}
	}
	wantMasters(ctx, t, cl, cl.Nodes[:3])
	// Nodes[3+i] is the replica of Nodes[i], in sync: ROLE answers slave, host, port, state, offset.
	for i, r := range cl.Nodes[3:] {
		role, err := r.Client(t).Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatalf("ROLE on replica %d: %v", i, err)
		}
		if len(role) < 4 || role[0] != "slave" || role[2] != int64(cl.Nodes[i].Port) || role[3] != "connected" {
			t.Fatalf("ROLE on node %d = %v, want a connected replica of port %d", 3+i, role, cl.Nodes[i].Port)
		}
	}

	client := cl.Client(t)
	const key = "failover-key"
	if err := client.Set(ctx, key, "v1", 0).Err(); err != nil {
		t.Fatalf("SET before the failover: %v", err)
	}
	slot := redisx.Slot(key)
	old, err := cl.MasterOf(ctx, slot)
	if err != nil {
		t.Fatalf("MasterOf(%d): %v", slot, err)
	}
	i := slices.Index(cl.Nodes, old)
	if i < 0 || i >= 3 {
		t.Fatalf("MasterOf(%d) = node %d, want a master", slot, i)
	}
	if v, err := old.Client(t).Get(ctx, key).Result(); err != nil || v != "v1" {
		t.Fatalf("GET on the master MasterOf named: %q, %v", v, err)
	}
	replica := cl.Nodes[3+i]
	// Replication is asynchronous: wait for the replica to have the key, so that losing it in the
	// failover would be a failure of the failover, not of timing.
	rc := replica.Client(t)
	testutil.Eventually(t, 5*time.Second, "the key on the replica", func() bool {
		var get *redis.StringCmd
		_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ReadOnly(ctx)
			get = p.Get(ctx, key)
			return nil
		})
		return err == nil && get.Val() == "v1"
	})

	old.Kill()
	killed := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	if _, err := cl.MasterOf(wctx, slot); !errors.Is(err, redistest.ErrNotServed) {
		// A replica cannot have taken over yet: the others need a node timeout (2 s) to notice.
		t.Errorf("MasterOf(%d) right after the kill: %v, want ErrNotServed", slot, err)
	}
	got, err := cl.WaitServed(wctx, slot)
	if err != nil {
		t.Fatalf("WaitServed(%d) after killing node %d: %v", slot, i, err)
	}
	t.Logf("node %d took over from node %d in %s", slices.Index(cl.Nodes, got), i, time.Since(killed).Round(time.Millisecond))
	if got != replica {
		t.Fatalf("WaitServed(%d) = node %d, want node %d, the replica of the killed master", slot, slices.Index(cl.Nodes, got), 3+i)
	}
	if m, err := cl.MasterOf(ctx, slot); err != nil || m != replica {
		t.Fatalf("MasterOf(%d) after the failover = %v, %v; want node %d", slot, m, err, 3+i)
	}
	wantMasters(ctx, t, cl, slices.DeleteFunc(append([]*redistest.Server{}, cl.Nodes[:3]...), func(s *redistest.Server) bool { return s == old }), replica)

	// A new client finds the new master at once, and the key survived.
	fresh := cl.Client(t)
	if v, err := fresh.Get(ctx, key).Result(); err != nil || v != "v1" {
		t.Fatalf("GET after the failover: %q, %v; want v1", v, err)
	}
	if err := fresh.Set(ctx, key, "v2", 0).Err(); err != nil {
		t.Fatalf("SET from a new client after the failover: %v", err)
	}
	// The client made before the failover keeps sending the slot's commands to the dead master
	// until it reloads the cluster's layout, which go-redis does by itself only every
	// ClusterStateReloadInterval (60 s by default) when the old master refuses connections
	// (redis/go-redis#3979). Asked to reload, it writes again.
	client.ReloadState(ctx)
	testutil.Eventually(t, 5*time.Second, "a SET from the client made before the failover", func() bool {
		return client.Set(ctx, key, "v3", 0).Err() == nil
	})
	if v, err := fresh.Get(ctx, key).Result(); err != nil || v != "v3" {
		t.Fatalf("GET after the old client's SET: %q, %v; want v3", v, err)
	}

	// The killed master, restarted, rejoins as a replica of the node that took over, and syncs.
	if err := old.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	oc := old.Client(t)
	testutil.Eventually(t, 10*time.Second, "the restarted master to replicate its successor", func() bool {
		role, err := oc.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) >= 4 && role[0] == "slave" && role[2] == int64(replica.Port) && role[3] == "connected"
	})
	wantMasters(ctx, t, cl, slices.DeleteFunc(append([]*redistest.Server{}, cl.Nodes[:3]...), func(s *redistest.Server) bool { return s == old }), replica)
}

// wantMasters fails t unless cl.Masters names want and then extra, in the order of cl.Nodes.
func wantMasters(ctx context.Context, t *testing.T, cl *redistest.Cluster, want []*redistest.Server, extra ...*redistest.Server) {
	t.Helper()
	want = append(want, extra...)
	slices.SortFunc(want, func(a, b *redistest.Server) int { return slices.Index(cl.Nodes, a) - slices.Index(cl.Nodes, b) })
	got, err := cl.Masters(ctx)
	if err != nil {
		t.Fatalf("Masters: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Masters = %v, want %v", addrs(got), addrs(want))
	}
}

func addrs(ss []*redistest.Server) string {
	var a []string
	for _, s := range ss {
		a = append(a, s.Addr)
	}
	return strings.Join(a, ",")
}

// TestStartCluster checks the cluster StartCluster gives: three masters, no replicas, every slot
// served.
func TestStartCluster(t *testing.T) {
	t.Parallel()
	addrs := redistest.StartCluster(t)
	if len(addrs) != 3 {
		t.Fatalf("StartCluster gave %d addresses, want 3", len(addrs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SHARDS: %v", err)
	}
	slots := 0
	for _, sh := range shards {
		if len(sh.Nodes) != 1 || sh.Nodes[0].Role != "master" {
			t.Errorf("shard %+v: want one master and no replica", sh)
		}
		for _, r := range sh.Slots {
			slots += int(r.End-r.Start) + 1
		}
	}
	if len(shards) != 3 || slots != redisx.SlotCount {
		t.Fatalf("%d shards with %d slots, want 3 with %d", len(shards), slots, redisx.SlotCount)
	}
	// Every node takes writes for its own slots.
	for i := range 100 {
		if err := c.Set(ctx, "k"+string(rune('a'+i%26))+strings.Repeat("x", i), i, 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
}

func TestClusterArgumentChecks(t *testing.T) {
	t.Parallel()
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, slot := range []int{-1, redisx.SlotCount} {
		if _, err := cl.MasterOf(ctx, slot); err == nil {
			t.Errorf("MasterOf(%d) = nil error", slot)
		}
		if _, err := cl.WaitServed(ctx, slot); err == nil {
			t.Errorf("WaitServed(%d) = nil error", slot)
		}
	}
	// One master serves every slot.
	for _, slot := range []int{0, 8191, redisx.SlotCount - 1} {
		if s, err := cl.WaitServed(ctx, slot); err != nil || s != cl.Nodes[0] {
			t.Errorf("WaitServed(%d) = %v, %v; want the only node", slot, s, err)
		}
	}
}
