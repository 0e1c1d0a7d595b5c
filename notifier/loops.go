package notifier

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx"
)

// The engine's background loops (the retry pump, the reaper) and the helpers that keep a try's
// Redis calls going through an outage.

// untilRedisAnswers runs call (a script that moves a try on) until Redis answers it, waiting
// 100 ms doubling to 2 s between calls while Redis is unreachable, loading its data after a
// restart, or otherwise failing in passing. It gives up on an error that another call would
// only repeat (a script error) and when Stop abandons the tries in flight; the entry then stays
// pending in this process and the reaper hands it back.
func (e *Engine) untilRedisAnswers(what string, call func(context.Context) error) error {
	return e.retryRedis(what, func() error {
		ctx, cancel := e.redisCtx()
		defer cancel()
		return call(ctx)
	})
}

// retryRedis is untilRedisAnswers for a call that bounds its own time.
func (e *Engine) retryRedis(what string, call func() error) error {
	wait := newBackoff(100*time.Millisecond, 2*time.Second)
	for first := true; ; first = false {
		err := call()
		if err == nil {
			return nil
		}
		// A lost consumer group passes too: the fetcher recreates it (redisx.IsTransient alone
		// would give up on NOGROUP).
		transient := redisx.IsTransient(err) || groupMissing(err)
		if first || !transient {
			e.redisFailed(what, err) // once per outage and try, not once per call
		} else {
			e.m.redisErrors.Inc()
		}
		if !transient {
			return err
		}
		select {
		case <-e.hard.Done():
			return err
		case <-time.After(wait.next()):
		}
	}
}

// backoff is a wait that doubles from its first value up to its cap.
type backoff struct{ first, cur, cap time.Duration }

func newBackoff(first, cap time.Duration) *backoff {
	return &backoff{first: first, cur: first, cap: cap}
}

// next returns the wait to make now and doubles the one after.
func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(2*b.cur, b.cap)
	return d
}

func (b *backoff) reset() { b.cur = b.first }

func (e *Engine) redisFailed(what string, err error) {
	e.m.redisErrors.Inc()
	e.cfg.Logger.Warn("delivery engine: redis call failed", "op", what, "err", err)
}

// poke wakes a shard's pump now; pokeAt when due is sooner than it planned to sleep.
func (sh *shard) poke() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) pokeAt(sh *shard, dueMS int64) {
	if dueMS-e.nowMS() < int64(pumpMaxSleep/time.Millisecond) {
		sh.poke()
	}
}

const pumpMaxSleep = 250 * time.Millisecond

// pumpLoop moves due retries and deferred deliveries from a shard's delayed set to its stream.
// Every process runs one per shard; the script makes them safe together.
func (e *Engine) pumpLoop(sh *shard) {
	defer e.loops.Done()
	ctx := e.soft
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-sh.wake:
			// A retry due soon: sleep until it.
		}
		sleep := pumpMaxSleep
		res, err := pumpScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p, e.nowMS(), 500).Int64Slice()
		if err != nil {
			if ctx.Err() == nil {
				e.redisFailed("pump retries", err)
				sleep = time.Second
			}
		} else if res[0] == 500 {
			sleep = 0 // more are due
		} else if res[1] >= 0 {
			sleep = min(sleep, max(time.Duration(res[1]-e.nowMS())*time.Millisecond, time.Millisecond))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(sleep)
	}
}

// beat renews this process's heartbeat.
func (e *Engine) beat(ctx context.Context) error {
	return e.rdb.Set(ctx, e.base().k.heartbeat(e.cfg.Consumer), e.nowMS(), 3*e.cfg.Heartbeat).Err()
}

// reaperLoop renews the heartbeat and, every beat, learns of shard counts other processes use
// (starting the shards they add) and, in every shard, takes over the pending entries of consumers
// whose heartbeat is gone (killed processes), retries this process's own orphaned entries,
// wakes deliveries waiting for in-flight slots that leases of dead processes held, and trims the
// stream of acknowledged entries.
func (e *Engine) reaperLoop() {
	defer e.loops.Done()
	ctx := e.soft
	t := time.NewTicker(e.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.housekeep(ctx)
	}
}

// housekeep is one beat of the reaper.
func (e *Engine) housekeep(ctx context.Context) {
	if err := e.beat(ctx); err != nil {
		if ctx.Err() == nil {
			e.redisFailed("heartbeat", err)
		}
		return
	}
	e.learnShards(ctx)
	alive := map[string]bool{} // consumers' heartbeats, read once per beat for every shard
	for _, sh := range e.workedShards() {
		e.reap(ctx, sh, alive)
		e.wakeWaiters(ctx, sh)
		if err := trimScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p).Err(); err != nil && ctx.Err() == nil && !groupMissing(err) {
			e.redisFailed("trim the queue", err)
		}
	}
}

// learnShards records this process's shard count and starts the shards of counts other
// processes use that it does not work yet.
func (e *Engine) learnShards(ctx context.Context) {
	topo, err := e.refreshTopology(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.redisFailed("shard counts", err)
		}
		return
	}
	for _, sh := range topo.added {
		if err := e.ensureGroup(ctx, sh); err != nil && ctx.Err() == nil {
			e.redisFailed("create consumer group", err)
		}
		e.cfg.Logger.Info("working a queue shard of another shard count", "shard", sh.tag)
		e.startShard(sh)
	}
}

func (e *Engine) reap(ctx context.Context, sh *shard, alive map[string]bool) {
	consumers, err := e.rdb.XInfoConsumers(ctx, sh.k.stream(), group).Result()
	if err != nil {
		if groupMissing(err) {
			_ = e.ensureGroup(ctx, sh)
		} else if ctx.Err() == nil {
			e.redisFailed("list consumers", err)
		}
		return
	}
	for _, c := range consumers {
		if c.Name == e.cfg.Consumer {
			if c.Pending > 0 {
				e.claim(ctx, sh, c.Name, 2*e.cfg.Heartbeat)
			}
			continue
		}
		if live, err := e.consumerAlive(ctx, c.Name, alive); err != nil || live {
			continue
		}
		if c.Pending == 0 {
			if c.Idle > 3*e.cfg.Heartbeat {
				e.rdb.XGroupDelConsumer(ctx, sh.k.stream(), group, c.Name)
			}
			continue
		}
		e.cfg.Logger.Warn("taking over the deliveries of a dead process", "consumer", c.Name, "pending", c.Pending)
		e.claim(ctx, sh, c.Name, 0)
	}
}

// consumerAlive reports whether consumer's heartbeat is there, asking Redis once per beat (memo).
func (e *Engine) consumerAlive(ctx context.Context, consumer string, memo map[string]bool) (bool, error) {
	if live, ok := memo[consumer]; ok {
		return live, nil
	}
	n, err := e.rdb.Exists(ctx, e.base().k.heartbeat(consumer)).Result()
	if err != nil {
		return false, err
	}
	memo[consumer] = n == 1
	return n == 1, nil
}

// claim takes consumer's pending entries idle for at least minIdle and starts them here, as far
// as workers are free (the rest are claimed on the next beat).
func (e *Engine) claim(ctx context.Context, sh *shard, consumer string, minIdle time.Duration) {
	free := cap(e.slots) - len(e.slots)
	if free <= 0 {
		return
	}
	pend, err := e.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: sh.k.stream(), Group: group, Consumer: consumer, Start: "-", End: "+", Count: int64(min(free, 256)),
	}).Result()
	if err != nil || len(pend) == 0 {
		return
	}
	var ids []string
	e.activeMu.Lock()
	for _, p := range pend {
		if _, busy := e.active[p.ID]; !busy && p.Idle >= minIdle {
			ids = append(ids, p.ID)
		}
	}
	e.activeMu.Unlock()
	if len(ids) == 0 {
		return
	}
	msgs, err := e.rdb.XClaim(ctx, &redis.XClaimArgs{
		Stream: sh.k.stream(), Group: group, Consumer: e.cfg.Consumer, MinIdle: minIdle, Messages: ids,
	}).Result()
	if err != nil {
		e.redisFailed("claim entries", err)
		return
	}
	e.m.reclaimed.Add(float64(len(msgs)))
	es := toEntries(sh, msgs)
	n := 0
	for n < len(es) {
		select {
		case e.slots <- struct{}{}:
			n++
			continue
		default:
		}
		break // no free worker: the rest stay here as orphans for the next beat
	}
	e.dispatch(es[:n])
}

func (e *Engine) wakeWaiters(ctx context.Context, sh *shard) {
	iter := e.rdb.SScan(ctx, sh.k.waiting(), 0, "", 100).Iterator()
	n := 0
	for iter.Next(ctx) && n < 1000 {
		n++
		if err := wakeScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p, iter.Val(), e.nowMS(), e.cfg.MaxInFlight).Err(); err != nil {
			e.redisFailed("wake waiters", err)
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
