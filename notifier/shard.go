package notifier

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/heraldhq/herald/redisx"
)

// The queue's shards. A shard is a full set of the engine's keys under one hash tag (keys.go):
// its stream, delayed set, backlog counter, endpoints, records, leases, waiters, rate slots,
// ordering lines and indexes. On a Redis Cluster each shard lives on one slot, so N shards spread
// the queue's work over up to N masters; on a single Redis they only split it.
//
// A delivery's shard follows from its endpoint (homeIndex), so an endpoint's leases, waiters,
// rate slot and ordering lines stay in one slot with its deliveries, and every script still works
// on one slot. An endpoint is written to its home shard (PutEndpoint).
//
// Changing the shard count. Every engine records the count it runs with (P:{P}:shardcounts) and
// works the shards of every count recorded within the horizon (MaxDeliveryAge + Retention), so
// the deliveries of a shard nobody's count names any more are still delivered. While more than one
// count is recorded, Enqueue looks for each delivery in its homes under the other counts first:
// a delivery id already there is not enqueued again, and a delivery whose ordering line is held
// there joins it there, so nothing is duplicated and a line keeps its order (route). An endpoint
// missing from its new home is copied from an old one (copyEndpoint); PutEndpoint writes it to
// its home under every count in use, DeleteEndpoint deletes it from every shard. Every process
// reads the counts every heartbeat; the first process of a new count waits three heartbeats
// before it starts (awaitNewCountSeen), so that every process knows both counts before anything
// is enqueued, copied or deleted under the new one.

// shard is one set of the queue's keys and what an engine keeps per set: the batcher of its
// finish and rate calls, its endpoint cache (its generation key is the shard's), the pump's wake.
type shard struct {
	tag   string
	k     keys
	batch *batcher
	eps   epCache
	wake  chan struct{} // pokes the shard's pump when a retry is scheduled sooner than it sleeps
}

// layout is the shards of one shard count, in order: an endpoint's home is shards[homeIndex].
type layout struct {
	n      int
	shards []*shard
}

// maxQueueShards bounds Config.QueueShards: shardTag puts each shard in a section of the slots of
// its own, and 256 sections of 64 slots fit the 16,384 slots.
const (
	maxQueueShards = 256
	tagWindow      = 32 // slots around a section's middle a shard's tag may hash to
)

// shardTag returns the hash tag of shard i of n. The slots are cut into n equal sections, as
// redis-cli --cluster create cuts them among masters. Shard 0's tag is the prefix itself, in
// whatever section that hashes to; shard i's is the first "P.<x>" that hashes near the middle of
// the i-th section after shard 0's. So the n shards take one section each, and on a Cluster whose
// masters hold equal ranges of slots each master gets its share (n a multiple of the masters).
func shardTag(prefix string, i, n int) string {
	if i == 0 {
		return prefix
	}
	section := (redisx.Slot(prefix)*n/redisx.SlotCount + i) % n
	from := (2*section+1)*redisx.SlotCount/(2*n) - tagWindow/2
	for x := 1; ; x++ {
		tag := prefix + "." + strconv.Itoa(x)
		if s := redisx.Slot(tag); s >= from && s < from+tagWindow {
			return tag
		}
	}
}

// homeIndex is the index of endpoint ep's home among n shards.
func homeIndex(ep string, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(ep))
	return int(h.Sum32() % uint32(n))
}

// newShard builds the shard with tag tag.
func (e *Engine) newShard(tag string) *shard {
	sh := &shard{tag: tag, k: newKeys(e.cfg.Prefix, tag), wake: make(chan struct{}, 1)}
	sh.batch = newBatcher(e.rdb, e.cfg.Workers, sh.k, finishFixed{retentionMS: e.cfg.Retention.Milliseconds(),
		attemptsKept: maxAttemptsKept, horizonMS: e.horizonMS()})
	return sh
}

// layoutOf returns the layout of n shards, building the shards this engine does not know yet;
// the new ones are returned too (the caller starts them). Called with topoMu held, or before
// the engine is shared.
func (e *Engine) layoutOf(n int) (layout, []*shard) {
	l := layout{n: n, shards: make([]*shard, n)}
	var added []*shard
	for i := range n {
		tag := shardTag(e.cfg.Prefix, i, n)
		sh := e.byTag[tag]
		if sh == nil {
			sh = e.newShard(tag)
			e.byTag[tag] = sh
			e.shards = append(e.shards, sh)
			added = append(added, sh)
		}
		l.shards[i] = sh
	}
	return l, added
}

// base is shard 0, which every layout shares: the heartbeats, the layout version and the shard
// counts live there.
func (e *Engine) base() *shard { return e.own.shards[0] }

// home is endpoint ep's shard under this engine's shard count.
func (e *Engine) home(ep string) *shard { return e.own.shards[homeIndex(ep, e.own.n)] }

// workedShards returns every shard this engine works.
func (e *Engine) workedShards() []*shard {
	e.topoMu.RLock()
	defer e.topoMu.RUnlock()
	return slices.Clone(e.shards)
}

// formerHomes returns endpoint ep's homes under the other shard counts in use, other than its home
// now: where its deliveries and ordering lines may still be.
func (e *Engine) formerHomes(ep string) []*shard { return e.home(ep).formerIn(ep, e.otherLayouts()) }

// otherLayouts returns the layouts of the other shard counts in use, as they are now.
func (e *Engine) otherLayouts() []layout {
	e.topoMu.RLock()
	defer e.topoMu.RUnlock()
	return slices.Clone(e.others)
}

// formerIn returns endpoint ep's homes in layouts other than home, its home now.
func (home *shard) formerIn(ep string, layouts []layout) []*shard {
	var out []*shard
	for _, l := range layouts {
		if sh := l.shards[homeIndex(ep, l.n)]; sh != home && !slices.Contains(out, sh) {
			out = append(out, sh)
		}
	}
	return out
}

// endpointHomes returns endpoint ep's home under every shard count in use, its home now first.
func (e *Engine) endpointHomes(ep string) []*shard {
	return append([]*shard{e.home(ep)}, e.formerHomes(ep)...)
}

// topology is what refreshTopology learnt: the shards it added to those this engine works (the
// caller starts them), and whether this engine's count is new to the fleet, that is, other
// counts are in use and this one was not (see Start).
type topology struct {
	added    []*shard
	newCount bool
}

// refreshTopology records this engine's shard count as in use now and learns the counts other
// engines use (those recorded within the horizon).
func (e *Engine) refreshTopology(ctx context.Context) (topology, error) {
	key := e.base().k.shardCounts()
	now := e.nowMS()
	pipe := e.rdb.Pipeline()
	counts := pipe.HGetAll(ctx, key) // as they were before this engine's count is recorded
	pipe.HSet(ctx, key, strconv.Itoa(e.own.n), now)
	if _, err := pipe.Exec(ctx); err != nil {
		return topology{}, err
	}
	e.topoMu.Lock()
	defer e.topoMu.Unlock()
	var t topology
	known := false
	e.others = e.others[:0]
	for s, seen := range counts.Val() {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxQueueShards || now-atoi64(seen) > e.horizonMS() {
			continue
		}
		if n == e.own.n {
			known = true
			continue
		}
		l, ok := e.layouts[n]
		if !ok {
			var more []*shard
			l, more = e.layoutOf(n)
			e.layouts[n] = l
			t.added = append(t.added, more...)
		}
		e.others = append(e.others, l)
	}
	slices.SortFunc(e.others, func(a, b layout) int { return a.n - b.n })
	t.newCount = !known && len(e.others) > 0
	return t, nil
}

// BacklogKeys returns the keys of the backlog counters of the queue's shards with prefix and
// shards shards, for tools that watch the queue from outside (their sum is the backlog).
func BacklogKeys(prefix string, shards int) []string {
	out := make([]string, shards)
	for i := range shards {
		out[i] = newKeys(prefix, shardTag(prefix, i, shards)).backlog()
	}
	return out
}

// QueueShards returns the shard count this engine enqueues with (Config.QueueShards).
func (e *Engine) QueueShards() int { return e.own.n }
