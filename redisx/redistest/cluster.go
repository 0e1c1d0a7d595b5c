package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx"
)

// nodeTimeout is the --cluster-node-timeout of test clusters: the time a node may not answer
// before the others flag it as failing. A replica takes over about two to three of these after its
// master dies. Shorter would fail over faster but could flag a healthy node that the shared test
// machine starved of CPU for a moment.
const nodeTimeout = 2 * time.Second

// StartCluster starts a Redis Cluster of three masters (no replicas) on free ports for this test,
// and returns the node addresses once every slot is served. It is stopped when the test ends.
func StartCluster(t testing.TB) []string {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{}).Addrs
}

// ClusterOptions shapes the cluster StartClusterWith starts.
type ClusterOptions struct {
	Masters           int // masters, which share the 16384 slots evenly; 0 means 3
	ReplicasPerMaster int // replicas of each master; 0 means none
}

// Cluster is a Redis Cluster owned by one test: every node is a Server on a free loopback port,
// killed when the test ends. Kill a master to make its replica take over; the methods that ask
// where a slot is served (MasterOf, Masters, WaitServed) ask the nodes that are still running.
// Restart brings a killed node back, empty, with its cluster identity (its nodes.conf survives):
// it rejoins, and a master that lost its slots meanwhile comes back as a replica of its successor.
//
// Its methods are safe for concurrent use, also while nodes are killed or restarted.
type Cluster struct {
	Nodes []*Server // every node: the masters first, then the replicas of Nodes[0], of Nodes[1], …
	Addrs []string  // the nodes' addresses, in the same order, for redis.ClusterOptions.Addrs
}

// StartClusterWith starts a Redis Cluster as o says and returns it once it is ready: every slot is
// assigned; every node knows every other, agrees on who is whose replica and reports
// cluster_state:ok; and every replica has synchronised with its master (master_link_status:up).
//
// The nodes run with a 2-second --cluster-node-timeout and --cluster-replica-validity-factor 0, so
// when a master is killed its replica takes over within a few seconds however long it was
// disconnected; they keep no data on disk. Replica j of master i is
// Nodes[Masters + i*ReplicasPerMaster + j].
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.Masters < 0 || o.ReplicasPerMaster < 0 || o.Masters > redisx.SlotCount {
		t.Fatalf("redistest: cannot start a cluster of %d masters with %d replicas each", o.Masters, o.ReplicasPerMaster)
	}
	c := &Cluster{}
	n := o.Masters * (1 + o.ReplicasPerMaster)
	for i := range n {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+strconv.Itoa(i)+".conf",
			"--cluster-node-timeout", strconv.Itoa(int(nodeTimeout/time.Millisecond)),
			// A replica fails over however long ago it last heard from its master.
			"--cluster-replica-validity-factor", "0",
			// Keep each replica with the master it was given.
			"--cluster-allow-replica-migration", "no",
			// A replica starts its full sync at once instead of waiting 5 s for others to join.
			"--repl-diskless-sync-delay", "0")
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.form(ctx, o); err != nil {
		t.Fatalf("redistest: form a cluster of %d masters with %d replicas each: %v", o.Masters, o.ReplicasPerMaster, err)
	}
	return c
}

// form makes the started nodes one cluster, as redis-cli --cluster create would but with the
// masters and replicas exactly where StartClusterWith says, and waits until it is ready.
func (c *Cluster) form(ctx context.Context, o ClusterOptions) error {
	clients := make([]*redis.Client, len(c.Nodes))
	for i, s := range c.Nodes {
		clients[i] = nodeClient(s)
		defer clients[i].Close()
	}
	ids := make([]string, len(c.Nodes))
	for i, cl := range clients {
		id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID on %s: %w", c.Addrs[i], err)
		}
		ids[i] = id
		// Distinct config epochs from the start, as redis-cli gives them: otherwise the nodes settle
		// their collisions one at a time after they meet.
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("CLUSTER SET-CONFIG-EPOCH on %s: %w", c.Addrs[i], err)
		}
	}
	for i := range o.Masters {
		lo, hi := i*redisx.SlotCount/o.Masters, (i+1)*redisx.SlotCount/o.Masters-1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", lo, hi, c.Addrs[i], err)
		}
	}
	for i := 1; i < len(c.Nodes); i++ {
		if err := clients[i].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.Nodes[0].Port)).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET from %s: %w", c.Addrs[i], err)
		}
	}
	// masterOf[i] is the index of node i's master, or -1 for a master.
	masterOf := make([]int, len(c.Nodes))
	for i := range masterOf {
		masterOf[i] = -1
		if i >= o.Masters {
			masterOf[i] = (i - o.Masters) / o.ReplicasPerMaster
		}
	}
	replicated := make([]bool, len(c.Nodes))
	return poll(ctx, func() error {
		// A replica can be told whose replica it is only once it has heard of that master; until
		// then CLUSTER REPLICATE answers "Unknown node".
		for i, m := range masterOf {
			if m < 0 || replicated[i] {
				continue
			}
			if err := clients[i].ClusterReplicate(ctx, ids[m]).Err(); err != nil {
				return fmt.Errorf("CLUSTER REPLICATE on %s: %w", c.Addrs[i], err)
			}
			replicated[i] = true
		}
		for i, cl := range clients {
			if err := checkView(ctx, cl, ids, masterOf); err != nil {
				return fmt.Errorf("node %s: %w", c.Addrs[i], err)
			}
			if masterOf[i] >= 0 {
				info, err := cl.Info(ctx, "replication").Result()
				if err != nil {
					return fmt.Errorf("INFO replication on %s: %w", c.Addrs[i], err)
				}
				if !strings.Contains(info, "master_link_status:up") {
					return fmt.Errorf("replica %s has not synchronised with its master yet", c.Addrs[i])
				}
			}
		}
		return nil
	})
}

// checkView returns nil when the node cl reports cluster_state:ok with every slot served, and its
// CLUSTER NODES shows exactly the nodes ids, all connected and not failing, with the master of
// ids[i] being ids[masterOf[i]] (masterOf[i] < 0: a master).
func checkView(ctx context.Context, cl *redis.Client, ids []string, masterOf []int) error {
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER INFO: %w", err)
	}
	for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:" + strconv.Itoa(redisx.SlotCount)} {
		if !strings.Contains(info, want+"\r\n") {
			return fmt.Errorf("CLUSTER INFO has no %s", want)
		}
	}
	nodes, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER NODES: %w", err)
	}
	seen := 0
	for line := range strings.Lines(nodes) {
		// <id> <ip:port@cport> <flags> <master id or -> <ping-sent> <pong-recv> <epoch> <link-state> <slots>…
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		i := slices.Index(ids, f[0])
		if i < 0 {
			return fmt.Errorf("it knows a node %s that is not in this cluster", f[0])
		}
		seen++
		flags := "," + f[2] + ","
		for _, bad := range []string{",fail,", ",fail?,", ",handshake,", ",noaddr,", ",nofailover,"} {
			if strings.Contains(flags, bad) {
				return fmt.Errorf("it sees node %s as %s", f[1], f[2])
			}
		}
		if f[7] != "connected" {
			return fmt.Errorf("its link to node %s is %s", f[1], f[7])
		}
		switch m := masterOf[i]; {
		case m < 0 && !strings.Contains(flags, ",master,"):
			return fmt.Errorf("it sees master %s as %s", f[1], f[2])
		case m >= 0 && (!strings.Contains(flags, ",slave,") || f[3] != ids[m]):
			return fmt.Errorf("it sees replica %s as %s of %s", f[1], f[2], f[3])
		}
	}
	if seen != len(ids) {
		return fmt.Errorf("it knows %d of the %d nodes", seen, len(ids))
	}
	return nil
}

// Client returns a cluster client on c, closed when the test ends. It has go-redis's default
// options, unlike herald's (redisx.Open reloads the slot map every few seconds): when a master is
// killed, a client made before keeps sending that master's slots' commands to the dead address
// until it reloads the cluster's layout, which go-redis does then only every
// ClusterStateReloadInterval (60 s by default; redis/go-redis#3979). Call its ReloadState after
// WaitServed, or make a new client, to see the new master at once.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// ErrNotServed is returned (wrapped) by MasterOf when no live master serves the slot, as while a
// failover is under way.
var ErrNotServed = errors.New("slot not served")

// MasterOf returns the node that serves slot now, as the first live node that answers sees it (the
// same after a failover). It returns an error wrapping ErrNotServed when that node names a master
// that does not answer, such as one that was killed and whose replica has not taken over yet.
func (c *Cluster) MasterOf(ctx context.Context, slot int) (*Server, error) {
	if slot < 0 || slot >= redisx.SlotCount {
		return nil, fmt.Errorf("redistest: slot %d out of range", slot)
	}
	shards, err := c.shards(ctx)
	if err != nil {
		return nil, err
	}
	n, ok := slotMaster(shards, slot)
	if !ok {
		return nil, fmt.Errorf("redistest: slot %d: %w: no master has it", slot, ErrNotServed)
	}
	s := c.live(ctx, n)
	if s == nil {
		return nil, fmt.Errorf("redistest: slot %d: %w: its master on port %d is %s or does not answer", slot, ErrNotServed, n.Port, n.Health)
	}
	return s, nil
}

// slotMaster returns the master of the shard that has slot in shards.
func slotMaster(shards []redis.ClusterShard, slot int) (redis.Node, bool) {
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if slot < int(r.Start) || slot > int(r.End) {
				continue
			}
			for _, n := range sh.Nodes {
				if n.Role == "master" {
					return n, true
				}
			}
		}
	}
	return redis.Node{}, false
}

// Masters returns the live masters that serve slots now, as the first live node that answers sees
// them, in the order of Nodes.
func (c *Cluster) Masters(ctx context.Context) ([]*Server, error) {
	shards, err := c.shards(ctx)
	if err != nil {
		return nil, err
	}
	serving := map[*Server]bool{}
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		for _, n := range sh.Nodes {
			if n.Role == "master" {
				if s := c.live(ctx, n); s != nil {
					serving[s] = true
				}
			}
		}
	}
	var masters []*Server
	for _, s := range c.Nodes {
		if serving[s] {
			masters = append(masters, s)
		}
	}
	return masters, nil
}

// WaitServed waits until a live master serves slot, and returns it: the master answers a command
// on a key of that slot, and every node still running names it as the slot's master, so a client
// that loads the cluster's layout now finds it whichever node it asks. Call it after killing the
// master of a slot to wait for its replica to take over. It polls until ctx is done, so give ctx a
// deadline; it then returns the last reason it had to wait.
func (c *Cluster) WaitServed(ctx context.Context, slot int) (*Server, error) {
	if slot < 0 || slot >= redisx.SlotCount {
		return nil, fmt.Errorf("redistest: slot %d out of range", slot)
	}
	key := keyInSlot(slot)
	var served *Server
	err := poll(ctx, func() error {
		s, err := c.MasterOf(ctx, slot)
		if err != nil {
			return err
		}
		cl := nodeClient(s)
		defer cl.Close()
		// A master that does not serve the slot answers MOVED, and one of a cluster that is down
		// (it has not yet heard of the failover) CLUSTERDOWN.
		if err := cl.Exists(ctx, key).Err(); err != nil {
			return fmt.Errorf("redistest: slot %d on %s: %w", slot, s.Addr, err)
		}
		for _, n := range c.Nodes {
			if !running(ctx, n) {
				continue
			}
			ncl := nodeClient(n)
			shards, err := ncl.ClusterShards(ctx).Result()
			ncl.Close()
			if err != nil {
				return fmt.Errorf("redistest: CLUSTER SHARDS on %s: %w", n.Addr, err)
			}
			if m, _ := slotMaster(shards, slot); m.Port != int64(s.Port) {
				return fmt.Errorf("redistest: slot %d: %s names port %d as its master, not %s", slot, n.Addr, m.Port, s.Addr)
			}
		}
		served = s
		return nil
	})
	return served, err
}

// shards returns CLUSTER SHARDS from the first node that answers it.
func (c *Cluster) shards(ctx context.Context) ([]redis.ClusterShard, error) {
	var errs []error
	for _, s := range c.Nodes {
		if !running(ctx, s) {
			errs = append(errs, fmt.Errorf("%s is not running", s.Addr))
			continue
		}
		cl := nodeClient(s)
		shards, err := cl.ClusterShards(ctx).Result()
		cl.Close()
		if err == nil {
			return shards, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Addr, err))
	}
	return nil, fmt.Errorf("redistest: no node answered CLUSTER SHARDS: %w", errors.Join(errs...))
}

// live returns the Server that n names if n is not flagged as failed and its process answers a
// PING, else nil.
func (c *Cluster) live(ctx context.Context, n redis.Node) *Server {
	if n.Health == "fail" {
		return nil
	}
	i := slices.IndexFunc(c.Nodes, func(s *Server) bool { return int64(s.Port) == n.Port })
	if i < 0 || !running(ctx, c.Nodes[i]) {
		return nil
	}
	cl := nodeClient(c.Nodes[i])
	defer cl.Close()
	if cl.Ping(ctx).Err() != nil {
		return nil
	}
	return c.Nodes[i]
}

// running reports whether s accepts TCP connections: a killed node refuses them. Checking this
// first keeps go-redis from logging a failed dial each time a poll meets a killed node.
func running(ctx context.Context, s *Server) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// nodeClient returns a client on one node that fails at once instead of retrying, for checks that
// are polled anyway.
func nodeClient(s *Server) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: s.Addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
}

// poll calls check every 50 ms until it returns nil or ctx is done; then it returns the last error
// check returned, together with ctx's.
func poll(ctx context.Context, check func() error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// keyInSlot returns a key that hashes to slot (0 <= slot < 16384), found by trying keys in turn:
// about 16384 tries on average.
func keyInSlot(slot int) string {
	for i := 0; ; i++ {
		if k := "slot-probe-" + strconv.Itoa(i); redisx.Slot(k) == slot {
			return k
		}
	}
}
