package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartCluster starts a Redis Cluster of three masters (no replicas) on free ports for this test,
// and returns the node addresses once every slot is served. It is stopped when the test ends.
func StartCluster(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redistest: redis-cli is needed to form a cluster: %v", err)
	}
	var addrs []string
	for i := 0; i < 3; i++ {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+strconv.Itoa(i)+".conf",
			"--cluster-node-timeout", "2000")
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		ok := err == nil && strings.Contains(info, "cluster_state:ok")
		if ok {
			// Every node must agree before clients are handed the addresses.
			err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				if i, err := n.ClusterInfo(ctx).Result(); err != nil || !strings.Contains(i, "cluster_state:ok") {
					return fmt.Errorf("node %s not ready", n.Options().Addr)
				}
				return nil
			})
			ok = err == nil
		}
		cancel()
		if ok {
			return addrs
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster did not become ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
