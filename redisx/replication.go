package redisx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replication is an opt-in durability setting for the writes that accept work (the ones a 202
// answers for). Redis replicates asynchronously: a master that fails over loses the writes its
// replica had not received yet, a few milliseconds' worth. With Replicas > 0 each such write is
// followed, on the same connection, by WAIT Replicas Timeout: the write counts as accepted only
// once that many replicas of the master that took it hold it.
type Replication struct {
	Replicas int           // replicas that must acknowledge; 0 (the default) does not wait
	Timeout  time.Duration // how long to wait for them; must be positive when Replicas is
}

// DefaultReplicationTimeout is Replication.Timeout's default: replicas on the same network
// acknowledge within a millisecond or two, so a second means one is down or far behind.
const DefaultReplicationTimeout = time.Second

// ErrNotReplicated is returned (wrapped) when the master took a write but fewer replicas than
// Replication.Replicas acknowledged it within the timeout. The write stands on the master and may
// still be lost if it fails over now. It is transient (IsTransient): the API answers 503 with
// Retry-After, and a retry with the same idempotency key does not write it twice.
var ErrNotReplicated = errors.New("redis replicas did not acknowledge the write in time")

// Check says what is wrong with r, or nil.
func (r Replication) Check() error {
	switch {
	case r.Replicas < 0:
		return fmt.Errorf("replicas must be 0 (do not wait) or positive, got %d", r.Replicas)
	case r.Replicas > 0 && r.Timeout < time.Millisecond:
		// WAIT counts milliseconds, and WAIT n 0 would wait for ever
		return fmt.Errorf("the timeout must be at least 1ms when waiting for replicas, got %s", r.Timeout)
	}
	return nil
}

// RunScript runs s as s.Run would and, when r asks for replicas, waits for them to acknowledge
// the write: the script, then WAIT, on one connection to the master of keys[0], so WAIT counts
// this connection's write. (Not one pipeline: go-redis extends its read timeout for a WAIT only
// when sent as Wait, and a pipeline that times out is sent again, script included; s.Run also
// loads a script Redis lost before anything waits.) It answers as s.Run does, with
// ErrNotReplicated (wrapped) as the error when too few replicas acknowledged.
func (r Replication) RunScript(ctx context.Context, rdb redis.UniversalClient, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if r.Replicas <= 0 {
		return s.Run(ctx, rdb, keys, args...)
	}
	node, err := masterFor(ctx, rdb, keys[0])
	if err != nil {
		return failedCmd(ctx, err)
	}
	conn := node.Conn()
	defer conn.Close()
	cmd := s.Run(ctx, conn, keys, args...)
	if cmd.Err() != nil {
		return cmd
	}
	switch n, err := conn.Wait(ctx, r.Replicas, r.Timeout).Result(); {
	case err != nil:
		cmd.SetErr(fmt.Errorf("redis WAIT: %w", err))
	case n < int64(r.Replicas):
		cmd.SetErr(fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, r.Replicas, r.Timeout))
	}
	return cmd
}

// masterFor is the client of the master that serves key: the Cluster's master of its slot, or the
// single (or Sentinel-followed) server itself.
func masterFor(ctx context.Context, rdb redis.UniversalClient, key string) (*redis.Client, error) {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, fmt.Errorf("redisx: waiting for replicas needs a single, Sentinel or Cluster client, not %T", rdb)
}

func failedCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
