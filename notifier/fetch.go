package notifier

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// The fetch side of the engine: the fetcher reads due entries, a dispatcher begins a batch of
// them (breakers, the begin script, the rate limits) and hands each try to a worker (try.go).

// entry is one stream entry: a delivery that is due.
type entry struct {
	sh  *shard // the shard whose stream it is in
	sid string // stream entry id
	id  string // delivery id
	ep  string // endpoint id
}

func toEntries(sh *shard, msgs []redis.XMessage) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values[entryDelivery].(string)
		ep, _ := m.Values[entryEndpoint].(string)
		out = append(out, entry{sh: sh, sid: m.ID, id: id, ep: ep})
	}
	return out
}

// fetchLoop reads due deliveries from a shard's stream as workers free up and hands each batch to
// a dispatcher. It never holds more entries than free workers (and one), so memory stays bounded
// whatever the backlog. Every shard has one, and they share the workers (fetch).
func (e *Engine) fetchLoop(sh *shard) {
	defer e.loops.Done()
	ctx := e.soft
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	idle := false
	for ctx.Err() == nil {
		es, err := e.fetch(ctx, sh, idle)
		if err != nil {
			if e.readFailed(ctx, sh, err) {
				sleepCtx(ctx, backoff.next())
			}
			continue
		}
		backoff.reset()
		if idle = len(es) == 0; idle {
			continue
		}
		if !e.handOver(es) {
			return
		}
	}
}

// fetch reads due entries of a shard and returns them with a worker slot held for each. A busy
// shard takes the free slots first (waiting for one at most, so fetchers never hold each other
// up), reads that many at most without waiting, and gives back the slots it did not fill. An idle
// shard waits on its stream for one entry holding no slot, then waits for a slot for it: a
// fetcher waiting on an idle stream keeps no worker from a busy shard. Stopping, an entry read
// but not given a slot stays pending here, and another process takes it over.
func (e *Engine) fetch(ctx context.Context, sh *shard, idle bool) ([]entry, error) {
	if idle {
		es, err := e.read(ctx, sh, 1, true)
		if err != nil || len(es) == 0 {
			return nil, err
		}
		if e.takeSlots(ctx, true) == 0 {
			return nil, ctx.Err()
		}
		return es, nil
	}
	held := e.takeSlots(ctx, false)
	if held == 0 {
		return nil, ctx.Err()
	}
	es, err := e.read(ctx, sh, held, false)
	e.releaseSlots(held - len(es))
	return es, err
}

// maxFetch bounds the entries one read takes.
const maxFetch = 256

// takeSlots waits for one free worker slot and, unless one is all it wants, takes the other free
// ones too, up to maxFetch. It returns how many it holds: 0 when the engine stops first.
func (e *Engine) takeSlots(ctx context.Context, one bool) int {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for !one && n < maxFetch {
		select {
		case e.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (e *Engine) releaseSlots(n int) {
	for range n {
		<-e.slots
	}
}

// read reads up to count due entries; wait says to wait up to a second for one when none is due.
func (e *Engine) read(ctx context.Context, sh *shard, count int, wait bool) ([]entry, error) {
	block := time.Duration(-1) // no BLOCK: answer at once
	if wait {
		block = time.Second
	}
	streams, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: e.cfg.Consumer, Streams: []string{sh.k.stream(), ">"},
		Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil // none due
	}
	if err != nil {
		return nil, err
	}
	var es []entry
	for _, s := range streams {
		es = append(es, toEntries(sh, s.Messages)...)
	}
	return es, nil
}

// readFailed handles a failed read and says whether to back off before the next: not for a
// timeout of the blocking read or a stop, nor after recreating a lost consumer group.
func (e *Engine) readFailed(ctx context.Context, sh *shard, err error) (backOff bool) {
	switch {
	case ctx.Err() != nil:
		return false
	case isNoGroup(err):
		// Redis lost its data (restart without persistence) or someone deleted the stream:
		// recreate the group and carry on.
		e.cfg.Logger.Warn("delivery queue consumer group missing; recreating it")
		if err := e.ensureGroup(ctx, sh); err != nil {
			e.cfg.Logger.Warn("recreate consumer group", "err", err)
		}
		_ = e.beat(ctx)
		return false
	}
	e.cfg.Logger.Warn("read delivery queue", "err", err)
	e.m.redisErrors.Inc()
	return true
}

// handOver gives a fetched batch to the dispatchers. Dispatch (two round trips: the begin script,
// the rate limits) runs beside the next read, so entries that arrive meanwhile do not wait for
// it; it counts as a try for Stop. False when Stop abandoned the batch.
func (e *Engine) handOver(es []entry) bool {
	e.tries.Add(1)
	select {
	case e.batches <- es:
		return true
	case <-e.hard.Done():
		e.tries.Done()
		for range es {
			<-e.slots // abandoned: still pending here; the next process takes them over
		}
		return false
	}
}

// dispatchers is how many fetched batches may be dispatched at once.
const dispatchers = 4

// dispatcher dispatches fetched batches until Stop closes the batches channel. Like the workers,
// the dispatchers live as long as the engine.
func (e *Engine) dispatcher() {
	defer e.dispatching.Done()
	for es := range e.batches {
		e.dispatch(es)
		e.tries.Done()
	}
}

// dispatch starts a try for each entry, all of one shard; the caller holds one worker slot per
// entry. The
// breaker is asked first (an open one defers the delivery without touching its lease or rate
// limit), then one begin script call starts all the others (begin.go), the rate limits are
// checked, and each try goes to a worker.
func (e *Engine) dispatch(es []entry) {
	started := make([]*try, 0, len(es))
	e.activeMu.Lock()
	for _, en := range es {
		if _, dup := e.active[en.sid]; dup {
			<-e.slots
			continue
		}
		e.active[en.sid] = struct{}{}
		e.tries.Add(1)
		started = append(started, &try{entry: en})
	}
	e.activeMu.Unlock()

	ctx, cancel := e.redisCtx()
	defer cancel()
	var begins []*try
	for _, t := range started {
		if t.id == "" || t.ep == "" {
			continue // not an entry of ours: process drops it
		}
		b := e.breakerFor(t.ep)
		t.breaker = b
		done, err := b.cb.Allow()
		if err != nil {
			t.breakerErr = err
			continue
		}
		t.done = done
		begins = append(begins, t)
	}
	if len(begins) > 0 {
		e.begin(ctx, begins[0].sh, begins)
		e.checkRates(ctx, begins)
	}
	for _, t := range started {
		e.work <- t // never blocks: it holds one of the slots, and there are as many workers
	}
}

// worker runs tries handed over by dispatch until Stop closes the work channel. The workers
// live as long as the engine, so a try does not pay for a new goroutine and its stack growth.
func (e *Engine) worker() {
	defer e.workers.Done()
	fc := newFinishCall()
	for t := range e.work {
		t.fc = fc
		e.process(t)
		e.activeMu.Lock()
		delete(e.active, t.sid)
		e.activeMu.Unlock()
		<-e.slots
		e.tries.Done()
	}
}

// checkRates asks the endpoints' rate limits for the tries whose begin said go: once per
// endpoint for all its tries in the batch (AllowAtMost), all endpoints at once through the
// batcher. The limits are shared by every process.
func (e *Engine) checkRates(ctx context.Context, begins []*try) {
	type group struct {
		tries []*try
		rate  int
	}
	groups := map[string]*group{}
	for _, t := range begins {
		if t.beginErr != nil || t.answer.verdict != beginGo {
			continue
		}
		bg := t.answer.begun
		t.rate = cmp.Or(bg.conf.rate, e.cfg.RateLimitPerMinute)
		g := groups[bg.ep]
		if g == nil {
			g = &group{rate: t.rate}
			groups[bg.ep] = g
		}
		g.tries = append(g.tries, t)
	}
	var wg sync.WaitGroup
	now := time.Now()
	for ep, g := range groups {
		// Credit first (see rateCredits): tokens this process took from the limiter moments ago.
		n := e.credits.take(ep, len(g.tries), now)
		for _, t := range g.tries[:n] {
			t.allowed = true
		}
		need := g.tries[n:]
		if len(need) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			extra := creditExtra(g.rate)
			rl, err := e.limiter.AllowAtMost(ctx, e.base().k.rate(ep), redis_rate.PerMinute(g.rate), len(need)+extra)
			for i, t := range need {
				t.rateErr = err
				if err == nil {
					t.allowed = i < rl.Allowed
					t.retryAfter = rl.RetryAfter
				}
			}
			if err == nil {
				e.credits.keep(ep, rl.Allowed-len(need), now)
			}
		}()
	}
	wg.Wait()
}
