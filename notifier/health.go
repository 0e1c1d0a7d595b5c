package notifier

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Endpoint health: what every process learns of an endpoint's tries and breaker, kept in Redis
// per endpoint (P:{T}:eh:<endpoint>, in the endpoint's home shard) for Engine.Health.
//
// A process keeps what it learns in memory, in the endpoint's breaker (a tally), and writes it
// with one healthScript call per shard for all the endpoints due, once a healthFlushEvery: at
// once (within that second) for a failed try, a breaker change, or the first success after a
// recorded failure; an endpoint that only succeeds is written at most once a healthQuietEvery,
// so a healthy endpoint costs Redis one small write a minute per process, not one per delivery.
// Nothing is written on a try's path.
//
// Breakers are per process (doc.go). Each process records its breaker's state when it changes,
// under its own name, and Health reports every live process's (a process whose heartbeat is gone
// is left out, and its record dropped), this process's as it is in memory, and the worst of them.

const (
	healthFlushEvery = time.Second
	healthQuietEvery = time.Minute
	// healthBucket and healthBuckets: tries are counted in buckets of five minutes, twelve of
	// them, so recent counts cover the last hour.
	healthBucket  = 5 * time.Minute
	healthBuckets = 12
	// healthChunk bounds the endpoints of one healthScript call.
	healthChunk = 200
)

// tally is what this process learnt of an endpoint since it last wrote the endpoint's health.
// It lives in the endpoint's breaker, guarded by the breaker's mu.
type tally struct {
	tries, failures int
	okAt, failAt    int64 // ms of the last delivered and failed try, 0 none
	err             string
	code            int
	breaker         BreakerState // the breaker's new state, "" when unchanged since the last write
	breakerAt       int64
	queued          bool  // in the engine's health queue
	writtenAt       int64 // ms of the last write, 0 never
	failing         bool  // what was last written ends with a failure
}

// healthDue is the one rule for when a tally is written: at once for a failure, a breaker change,
// or a success after a recorded failure (or when final: the engine stops); successes alone once a
// healthQuietEvery.
func healthDue(t *tally, nowMS int64, final bool) bool {
	switch {
	case t.tries == 0 && t.breaker == "":
		return false
	case final, t.failures > 0, t.breaker != "", t.failing:
		return true
	}
	return nowMS-t.writtenAt >= healthQuietEvery.Milliseconds()
}

// noteTry counts a try of b's endpoint made at atMS: delivered, or failed with errText and code.
func (e *Engine) noteTry(b *breaker, delivered bool, errText string, code int, atMS int64) {
	b.mu.Lock()
	t := &b.tally
	t.tries++
	if delivered {
		t.okAt = max(t.okAt, atMS)
	} else if atMS >= t.failAt {
		t.failures++
		t.failAt, t.err, t.code = atMS, errText, code
	} else {
		t.failures++
	}
	queue := !t.queued
	t.queued = true
	b.mu.Unlock()
	if queue {
		e.queueHealth(b)
	}
}

// noteBreaker records a change of b's state; called from the breaker's OnStateChange.
func (e *Engine) noteBreaker(b *breaker, to BreakerState, at time.Time) {
	b.mu.Lock()
	b.changedAt = at
	b.tally.breaker, b.tally.breakerAt = to, at.UnixMilli()
	queue := !b.tally.queued
	b.tally.queued = true
	b.mu.Unlock()
	if queue {
		e.queueHealth(b)
	}
}

func (e *Engine) queueHealth(b *breaker) {
	e.healthMu.Lock()
	e.healthQueue = append(e.healthQueue, b)
	e.healthMu.Unlock()
}

// take returns b's tally as an item to write and starts a new one, when it is due; keep is true
// when it is not due yet (it stays queued).
func (b *breaker) take(nowMS int64, final bool) (it healthItem, due, keep bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &b.tally
	if !healthDue(t, nowMS, final) {
		t.queued = t.tries > 0 || t.breaker != ""
		return healthItem{}, false, t.queued
	}
	it = healthItem{ep: b.ep, tries: t.tries, failures: t.failures, okAt: t.okAt, failAt: t.failAt, err: t.err,
		code: t.code, breaker: t.breaker, breakerAt: t.breakerAt}
	if t.tries > 0 {
		t.failing = t.failAt > t.okAt
	}
	*t = tally{writtenAt: nowMS, failing: t.failing}
	return it, true, false
}

// giveBack puts a tally that could not be written back into b, merged with what came since.
func (b *breaker) giveBack(it healthItem) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &b.tally
	t.tries += it.tries
	t.failures += it.failures
	t.okAt = max(t.okAt, it.okAt)
	if it.failAt > t.failAt {
		t.failAt, t.err, t.code = it.failAt, it.err, it.code
	}
	if t.breaker == "" {
		t.breaker, t.breakerAt = it.breaker, it.breakerAt
	}
	queue := !t.queued
	t.queued = true
	return queue
}

// healthLoop writes the endpoints' health every healthFlushEvery until the engine stops; Stop
// writes the rest once the tries are done.
func (e *Engine) healthLoop() {
	defer e.loops.Done()
	t := time.NewTicker(healthFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-e.soft.Done():
			return
		case <-t.C:
		}
		e.flushHealth(e.soft, false)
	}
}

// flushHealthAtStop writes every tally left once the tries are done, within a few seconds, or
// until Stop's deadline abandons what is left.
func (e *Engine) flushHealthAtStop() {
	ctx, cancel := context.WithTimeout(e.hard, 2*time.Second)
	defer cancel()
	e.flushHealth(ctx, true)
}

// flushHealth writes the tallies that are due (all of them when final), one script call per shard
// and chunk. A tally that could not be written is kept for the next flush.
func (e *Engine) flushHealth(ctx context.Context, final bool) {
	e.healthMu.Lock()
	queued := e.healthQueue
	e.healthQueue = nil
	e.healthMu.Unlock()
	if len(queued) == 0 {
		return
	}
	now := e.nowMS()
	type pending struct {
		items []healthItem
		from  []*breaker
	}
	byShard := map[*shard]*pending{}
	var later []*breaker
	for _, b := range queued {
		it, due, keep := b.take(now, final)
		if keep {
			later = append(later, b)
		}
		if !due {
			continue
		}
		sh := e.home(b.ep)
		p := byShard[sh]
		if p == nil {
			p = &pending{}
			byShard[sh] = p
		}
		p.items, p.from = append(p.items, it), append(p.from, b)
	}
	start := now - now%healthBucket.Milliseconds()
	args := healthArgs{consumer: e.cfg.Consumer, ttlMS: e.horizonMS(), bucketStart: start,
		bucket: string(hFieldBucketOf) + strconv.FormatInt(start/healthBucket.Milliseconds()%healthBuckets, 10)}
	for sh, p := range byShard {
		for i := 0; i < len(p.items); i += healthChunk {
			j := min(i+healthChunk, len(p.items))
			args.items = p.items[i:j]
			if err := healthScript.Run(ctx, e.rdb, []string{sh.k.stream()}, args.argv(sh.k.p)...).Err(); err != nil {
				if ctx.Err() == nil {
					e.redisFailed("record endpoint health", err)
				}
				for k, b := range p.from[i:j] {
					if b.giveBack(p.items[i+k]) {
						later = append(later, b)
					}
				}
			}
		}
	}
	e.healthMu.Lock()
	e.healthQueue = append(e.healthQueue, later...)
	e.healthMu.Unlock()
}

// Health returns the health of each endpoint, in the order asked: an endpoint nothing has been
// recorded for has a closed breaker and no tries. Two round trips: the records (in the endpoint's
// home under every shard count in use: while the count changes, processes of each count write to
// their own), then the heartbeats of the processes whose breakers they name. The breakers of
// processes that are gone are left out (their fields expire with the record).
func (e *Engine) Health(ctx context.Context, endpointIDs ...string) ([]*EndpointHealth, error) {
	out := make([]*EndpointHealth, len(endpointIDs))
	if len(endpointIDs) == 0 {
		return out, nil
	}
	pipe := e.rdb.Pipeline()
	cmds := make([][]*redis.MapStringStringCmd, len(endpointIDs))
	for i, ep := range endpointIDs {
		for _, sh := range e.endpointHomes(ep) {
			cmds[i] = append(cmds[i], pipe.HGetAll(ctx, sh.k.health(ep)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	now := e.cfg.Now()
	recs := make([]healthRecord, len(endpointIDs))
	var named []string
	for i, homes := range cmds {
		recs[i] = parseHealth(homes[0].Val())
		for _, c := range homes[1:] {
			recs[i] = recs[i].merge(parseHealth(c.Val()))
		}
		for p := range recs[i].breakers {
			if p != e.cfg.Consumer && !slices.Contains(named, p) {
				named = append(named, p)
			}
		}
	}
	alive, err := e.aliveConsumers(ctx, named)
	if err != nil {
		return nil, err
	}
	for i, ep := range endpointIDs {
		out[i] = e.healthOf(ep, recs[i], alive, now)
	}
	return out, nil
}

// healthRecord is an endpoint's health hash, parsed.
type healthRecord struct {
	okAt, failAt int64
	err          string
	code         int
	breakers     map[string]ProcessBreaker // by process
	buckets      [][3]int64                // start ms, tries, failures
}

// merge is the record of r and o, two homes' records of one endpoint: the later success and
// failure (with its error), each process's later breaker, the tries of each bucket summed.
func (r healthRecord) merge(o healthRecord) healthRecord {
	r.okAt = max(r.okAt, o.okAt)
	if o.failAt > r.failAt {
		r.failAt, r.err, r.code = o.failAt, o.err, o.code
	}
	for p, b := range o.breakers {
		if cur, ok := r.breakers[p]; !ok || b.Since.After(cur.Since) {
			r.breakers[p] = b
		}
	}
	for _, b := range o.buckets {
		i := slices.IndexFunc(r.buckets, func(x [3]int64) bool { return x[0] == b[0] })
		if i < 0 {
			r.buckets = append(r.buckets, b)
			continue
		}
		r.buckets[i][1] += b[1]
		r.buckets[i][2] += b[2]
	}
	return r
}

func parseHealth(h map[string]string) healthRecord {
	r := healthRecord{okAt: atoi64(h[string(hFieldOKAt)]), failAt: atoi64(h[string(hFieldFailAt)]),
		err: h[string(hFieldError)], code: int(atoi64(h[string(hFieldCode)])), breakers: map[string]ProcessBreaker{}}
	for f, v := range h {
		if p, ok := strings.CutPrefix(f, string(hFieldBreakerOf)); ok {
			state, since, _ := strings.Cut(v, " ")
			r.breakers[p] = ProcessBreaker{Process: p, State: BreakerState(state), Since: msTime(since)}
		} else if strings.HasPrefix(f, string(hFieldBucketOf)) {
			var b [3]int64
			for i, s := range strings.SplitN(v, " ", 3) {
				b[i] = atoi64(s)
			}
			r.buckets = append(r.buckets, b)
		}
	}
	return r
}

// aliveConsumers returns which of the processes named still have a heartbeat.
func (e *Engine) aliveConsumers(ctx context.Context, named []string) (map[string]bool, error) {
	alive := map[string]bool{e.cfg.Consumer: true}
	if len(named) == 0 {
		return alive, nil
	}
	pipe := e.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(named))
	for i, p := range named {
		cmds[i] = pipe.Exists(ctx, e.base().k.heartbeat(p))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for i, p := range named {
		alive[p] = cmds[i].Val() == 1
	}
	return alive, nil
}

// healthOf builds endpoint ep's health from its record: the live processes' breakers (this
// process's as it is in memory), the last success and failure, the tries of the last hour.
func (e *Engine) healthOf(ep string, r healthRecord, alive map[string]bool, now time.Time) *EndpointHealth {
	h := &EndpointHealth{Breaker: BreakerClosed, Breakers: []ProcessBreaker{}, LastError: r.err, LastStatusCode: r.code,
		Recent: RecentTries{WindowSeconds: int((healthBucket * healthBuckets).Seconds())}}
	if own, ok := e.ownBreaker(ep); ok {
		r.breakers[e.cfg.Consumer] = own
	}
	for p, b := range r.breakers {
		if !alive[p] {
			continue
		}
		h.Breakers = append(h.Breakers, e.asNow(b, now))
	}
	slices.SortFunc(h.Breakers, func(a, b ProcessBreaker) int { return strings.Compare(a.Process, b.Process) })
	for _, b := range h.Breakers {
		h.Breaker = worse(h.Breaker, b.State)
	}
	if r.okAt > 0 {
		t := time.UnixMilli(r.okAt).UTC()
		h.LastSuccessAt = &t
	}
	if r.failAt > 0 {
		t := time.UnixMilli(r.failAt).UTC()
		h.LastFailureAt = &t
	}
	from := now.Add(-healthBucket * healthBuckets).UnixMilli()
	for _, b := range r.buckets {
		if b[0] > from {
			h.Recent.Tries += int(b[1])
			h.Recent.Failures += int(b[2])
		}
	}
	if h.Recent.Tries > 0 {
		rate := float64(h.Recent.Tries-h.Recent.Failures) / float64(h.Recent.Tries)
		h.Recent.SuccessRate = &rate
	}
	return h
}

// ownBreaker is this process's breaker of ep as it is now, when it has changed state.
func (e *Engine) ownBreaker(ep string) (ProcessBreaker, bool) {
	e.breakersMu.Lock()
	b := e.breakers[ep]
	e.breakersMu.Unlock()
	if b == nil {
		return ProcessBreaker{}, false
	}
	state := breakerState(b.cb.State())
	b.mu.Lock()
	since := b.changedAt
	b.mu.Unlock()
	if since.IsZero() {
		return ProcessBreaker{}, false
	}
	return ProcessBreaker{Process: e.cfg.Consumer, State: state, Since: since.UTC()}, true
}

// asNow is a recorded breaker as it stands at now: an open one lets a probe through once the
// cooldown has passed (half open, as gobreaker reports it at its next look); Until is when an open
// one does.
func (e *Engine) asNow(b ProcessBreaker, now time.Time) ProcessBreaker {
	if b.State != BreakerOpen {
		return b
	}
	until := b.Since.Add(e.cfg.BreakerCooldown)
	if !now.Before(until) {
		b.State = BreakerHalfOpen
		return b
	}
	b.Until = &until
	return b
}

// worse is the worse of two breaker states: open, then half open, then closed.
func worse(a, b BreakerState) BreakerState {
	if breakerRank(b) > breakerRank(a) {
		return b
	}
	return a
}

func breakerRank(s BreakerState) int {
	switch s {
	case BreakerOpen:
		return 2
	case BreakerHalfOpen:
		return 1
	}
	return 0
}
