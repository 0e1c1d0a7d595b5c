package notifier

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// entry is one stream entry: a delivery that is due.
type entry struct {
	sid string // stream entry id
	id  string // delivery id
	ep  string // endpoint id
}

func toEntries(msgs []redis.XMessage) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["d"].(string)
		ep, _ := m.Values["e"].(string)
		out = append(out, entry{sid: m.ID, id: id, ep: ep})
	}
	return out
}

// fetchLoop reads due deliveries from the stream as workers free up and starts a try for each.
// It never holds more entries than free workers, so memory stays bounded whatever the backlog.
func (e *Engine) fetchLoop() {
	defer e.loops.Done()
	ctx := e.soft
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		// Wait for at least one free worker.
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1 + cap(e.slots) - len(e.slots)
		free = min(free, 256)
		streams, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: e.cfg.Consumer, Streams: []string{e.k.stream(), ">"},
			Count: int64(free), Block: time.Second,
		}).Result()
		if err != nil {
			<-e.slots
			if errors.Is(err, redis.Nil) || ctx.Err() != nil {
				continue
			}
			if isNoGroup(err) {
				// Redis lost its data (restart without persistence) or someone deleted the
				// stream: recreate the group and carry on.
				e.cfg.Logger.Warn("delivery queue consumer group missing; recreating it")
				if err := e.ensureGroup(ctx); err != nil {
					e.cfg.Logger.Warn("recreate consumer group", "err", err)
				}
				_ = e.beat(ctx)
				continue
			}
			e.cfg.Logger.Warn("read delivery queue", "err", err)
			e.m.redisErrors.Inc()
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		var es []entry
		for _, s := range streams {
			es = append(es, toEntries(s.Messages)...)
		}
		if len(es) == 0 {
			<-e.slots
			continue
		}
		// One slot is held already; take one more per extra entry (free ones exist: we asked
		// for no more than were free; should the reaper have taken one meanwhile, this waits
		// for a try to end).
		for range len(es) - 1 {
			e.slots <- struct{}{}
		}
		// Dispatch (two round trips: the begin script, the rate limits) runs beside the next read,
		// so entries that arrive meanwhile do not wait for it. It counts as a try for Stop.
		e.tries.Add(1)
		select {
		case e.batches <- es:
		case <-e.hard.Done():
			e.tries.Done()
			for range es {
				<-e.slots // abandoned: still pending here; the next process takes them over
			}
			return
		}
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

// dispatch starts a try for each entry; the caller holds one worker slot per entry. The
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
		done, err := b.cb.Allow()
		if err != nil {
			t.breakerErr, t.breaker = err, b
			continue
		}
		t.done = done
		begins = append(begins, t)
	}
	if len(begins) > 0 {
		e.begin(ctx, begins)
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

// try is one entry on its way through process.
type try struct {
	entry
	done       func(error) // the breaker's callback, nil when it refused
	breaker    *breaker
	breakerErr error
	beginErr   error       // the begin script failed
	state      string      // the begin script's answer: go, skip, wait or dead
	deadReason string      // for dead
	begun      *begun      // for go
	fc         *finishCall // the worker's, for recording the try
	rate       int         // the endpoint's rate limit per minute
	allowed    bool        // the rate limiter let it through
	retryAfter time.Duration
	rateErr    error
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
		if t.beginErr != nil || t.state != "go" {
			continue
		}
		t.rate = t.begun.conf.rate
		if t.rate <= 0 {
			t.rate = e.cfg.RateLimitPerMinute
		}
		g := groups[t.begun.ep]
		if g == nil {
			g = &group{rate: t.rate}
			groups[t.begun.ep] = g
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
			rl, err := e.limiter.AllowAtMost(ctx, e.k.rate(ep), redis_rate.PerMinute(g.rate), len(need)+extra)
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

// redisCtx is for the Redis calls of a try: they must complete even while the engine stops, or
// the delivery would stay in this process's pending list until the reaper took it back.
func (e *Engine) redisCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisCallTimeout)
}

const redisCallTimeout = 10 * time.Second

// process makes one try of a due delivery, or defers it without using a try.
func (e *Engine) process(t *try) {
	en := t.entry
	if en.id == "" || en.ep == "" {
		ctx, cancel := e.redisCtx()
		defer cancel()
		e.rdb.XAck(ctx, e.k.stream(), group, en.sid)
		return
	}

	// An open breaker defers at once: no lease, no rate token, no try.
	if t.breakerErr != nil {
		// Half-open: the probe's answer is awaited (a try takes at most the request timeout,
		// usually far less), so look again soon. Open: come back when it lets a probe through.
		// The spread (a tenth of the cooldown, at most a second) keeps the deferred deliveries
		// from arriving all at once; a wider one only delays them once the endpoint is back.
		delay := 250 * time.Millisecond
		if errors.Is(t.breakerErr, gobreaker.ErrOpenState) {
			delay = time.Until(t.breaker.reopenAt(e.cfg.BreakerCooldown))
		}
		spread := min(e.cfg.BreakerCooldown/10, time.Second)
		delay = max(delay, 0) + time.Duration(float64(spread)*rnd())
		e.deferTry(en, delay, false, 0, ReasonBreakerOpen)
		return
	}
	done := t.done
	notSent := func() { done(errNotSent) }

	if err := t.beginErr; err != nil {
		notSent()
		e.redisFailed("begin a try", err)
		return // the entry stays pending here; the reaper hands it back
	}
	switch t.state {
	case "skip":
		notSent()
		return
	case "wait":
		notSent()
		e.m.deliveries.WithLabelValues("parked", ReasonMaxInFlight).Inc()
		return
	case "dead":
		notSent()
		e.m.deliveries.WithLabelValues("dead", t.deadReason).Inc()
		e.report(Outcome{DeliveryID: en.id, EndpointID: en.ep, Reason: t.deadReason, Dead: true, At: e.cfg.Now()})
		return
	}
	bg := t.begun
	ep, tries, acc := bg.ep, bg.tries, bg.acc
	body, evt, sub := bg.body, bg.evt, bg.sub
	conf := bg.conf
	// The endpoint's rate limit (checked by dispatch; a Redis error is an error, not a limit).
	if t.rateErr != nil {
		notSent()
		e.redisFailed("rate limiter", t.rateErr)
		e.deferTry(en, time.Second, true, 0, "")
		return
	}
	if !t.allowed {
		notSent()
		e.m.rateLimitWaits.Inc()
		interval := time.Minute / time.Duration(t.rate)
		e.deferTry(en, max(t.retryAfter, interval, time.Millisecond), true, interval, ReasonRateLimited)
		return
	}

	// The try.
	ts := e.cfg.Now()
	// Canonical header names, set directly (Header.Set would canonicalise them on every try).
	h := http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {e.ua},
		"Webhook-Id":        {en.id},
		"Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)},
	}
	prev := conf.prevSigner
	if conf.prevUntil <= ts.UnixMilli() {
		prev = nil // the overlap after a rotation is over
	}
	if conf.keyErr != nil {
		e.cfg.Logger.Warn("endpoint secret unusable; sending unsigned", "endpoint", ep)
	} else if sig := signatureHeader(en.id, ts.Unix(), body, conf.signer, prev); sig != "" {
		h["Webhook-Signature"] = []string{sig}
	}
	e.m.inflight.Inc()
	tr := e.send(conf.url, h, body)
	e.m.inflight.Dec()
	if tr.aborted {
		notSent()
		e.deferTry(en, 0, true, 0, "")
		return
	}
	v := classify(tr.status, tr.err)
	if v.Delivered {
		done(nil)
		e.m.attemptOK.Inc()
	} else {
		done(&tryError{v})
		e.m.attempts.WithLabelValues(v.Reason).Inc()
	}
	e.m.attemptSeconds.Observe(tr.duration.Seconds())

	att := Attempt{At: ts.UTC(), DurationMS: tr.duration.Milliseconds(), StatusCode: tr.status, Response: tr.response}
	if tr.err != nil {
		att.Error = tr.err.Error()
	} else if !v.Delivered {
		att.Error = "HTTP " + strconv.Itoa(tr.status)
	}
	attJSON := appendAttempt(make([]byte, 0, 128+len(att.Error)+len(att.Response)), att)

	tries++ // including this one
	outcome, due, dead := "ok", int64(0), ""
	finishedAt := e.nowMS()
	if !v.Delivered {
		wait := time.Duration(0)
		if tries <= len(e.cfg.RetrySchedule) {
			wait = e.jitter(e.cfg.RetrySchedule[tries-1])
		}
		if tr.retryAfter > 0 {
			wait = max(wait, min(tr.retryAfter, e.cfg.MaxRetryAfter))
		}
		due = finishedAt + wait.Milliseconds()
		switch {
		case !v.Retryable:
			outcome, dead = "dead", v.Reason
		case tries > len(e.cfg.RetrySchedule):
			outcome, dead = "dead", ReasonMaxTries
		case due-acc > e.cfg.MaxDeliveryAge.Milliseconds(): // age counts from acceptance: a replay resets it
			outcome, dead = "dead", ReasonMaxAge
		default:
			outcome = "retry"
		}
	}
	// Run through the batcher: the finishes of concurrent tries share one script call. The try was
	// made: record it as soon as Redis answers again (an outage, a restart still loading its
	// data) rather than leave it to the reaper, which would make it again while its lease kept
	// other deliveries of the endpoint waiting.
	// The batcher bounds its calls itself: no context (and its timer) per try.
	var fin int64
	err := e.retryRedis("record a try", func() (err error) {
		fin, err = e.batch.finish(t.fc, en.id, en.sid, finishedAt, outcome, due, dead, attJSON, ep, tries, bg.line, acc)
		return err
	})
	if err != nil {
		return // stopping, or not a passing Redis failure: pending here; the reaper hands it back
	}
	if fin == 0 {
		return // another process finished it meanwhile
	}
	switch outcome {
	case "ok":
		e.m.deliveredOK.Inc()
		e.m.e2eSeconds.Observe(float64(finishedAt-acc) / 1000)
	case "retry":
		e.m.deliveries.WithLabelValues("retry", v.Reason).Inc()
		e.pokeAt(due)
	default:
		e.m.deliveries.WithLabelValues("dead", dead).Inc()
	}
	e.report(Outcome{
		DeliveryID: en.id, EndpointID: ep, EventID: evt, SubscriberID: sub,
		StatusCode: tr.status, Reason: v.Reason, Delivered: v.Delivered, Dead: outcome == "dead", Tried: true, At: ts,
	})
}

const maxAttemptsKept = 100

// deferTry puts the entry back without using a try, due after delay. interval > 0 spreads
// rate-limited deliveries over the endpoint's future slots.
func (e *Engine) deferTry(en entry, delay time.Duration, release bool, interval time.Duration, reason string) {
	rel := "0"
	if release {
		rel = "1"
	}
	var due int64
	err := e.untilRedisAnswers("defer a try", func(ctx context.Context) (err error) {
		now := e.nowMS()
		due, err = deferScript.Run(ctx, e.rdb, []string{e.k.stream()}, e.k.p, en.id, en.sid, now,
			now+delay.Milliseconds(), rel, interval.Milliseconds()).Int64()
		return err
	})
	if err != nil {
		return // pending here; the reaper hands it back
	}
	if due >= 0 && reason != "" {
		e.m.deliveries.WithLabelValues("deferred", reason).Inc()
		e.report(Outcome{DeliveryID: en.id, EndpointID: en.ep, Reason: reason, At: e.cfg.Now()})
	}
	if due >= 0 {
		e.pokeAt(due)
	}
}

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
	wait, first := 100*time.Millisecond, true
	for {
		err := call()
		if err == nil {
			return nil
		}
		if first || !passing(err) {
			e.redisFailed(what, err) // once per outage and try, not once per call
		} else {
			e.m.redisErrors.Inc()
		}
		first = false
		if !passing(err) {
			return err
		}
		select {
		case <-e.hard.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// passing tells a Redis failure that may pass (no connection, a timeout, a restart loading its
// data, a read-only replica during a failover) from an answer another call would repeat.
func passing(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	s := err.Error()
	return !strings.HasPrefix(s, "ERR") && !strings.HasPrefix(s, "WRONGTYPE")
}

func (e *Engine) redisFailed(what string, err error) {
	e.m.redisErrors.Inc()
	e.cfg.Logger.Warn("delivery engine: redis call failed", "op", what, "err", err)
}

// poke wakes the pump now; pokeAt when due is sooner than it planned to sleep.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) pokeAt(dueMS int64) {
	if dueMS-e.nowMS() < int64(pumpMaxSleep/time.Millisecond) {
		e.poke()
	}
}

const pumpMaxSleep = 250 * time.Millisecond

// pumpLoop moves due retries and deferred deliveries from the delayed set to the stream. Every
// process runs one; the script makes them safe together.
func (e *Engine) pumpLoop() {
	defer e.loops.Done()
	ctx := e.soft
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-e.wake:
			// A retry due soon: sleep until it.
		}
		sleep := pumpMaxSleep
		res, err := pumpScript.Run(ctx, e.rdb, []string{e.k.stream()}, e.k.p, e.nowMS(), 500).Int64Slice()
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
	return e.rdb.Set(ctx, e.k.heartbeat(e.cfg.Consumer), e.nowMS(), 3*e.cfg.Heartbeat).Err()
}

// reaperLoop renews the heartbeat and, every beat, takes over the pending entries of consumers
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
		if err := e.beat(ctx); err != nil {
			if ctx.Err() == nil {
				e.redisFailed("heartbeat", err)
			}
			continue
		}
		e.reap(ctx)
		e.wakeWaiters(ctx)
		if err := trimScript.Run(ctx, e.rdb, []string{e.k.stream()}, e.k.p).Err(); err != nil && ctx.Err() == nil && !groupMissing(err) {
			e.redisFailed("trim the queue", err)
		}
	}
}

func (e *Engine) reap(ctx context.Context) {
	consumers, err := e.rdb.XInfoConsumers(ctx, e.k.stream(), group).Result()
	if err != nil {
		if groupMissing(err) {
			_ = e.ensureGroup(ctx)
		} else if ctx.Err() == nil {
			e.redisFailed("list consumers", err)
		}
		return
	}
	for _, c := range consumers {
		if c.Name == e.cfg.Consumer {
			if c.Pending > 0 {
				e.claim(ctx, c.Name, 2*e.cfg.Heartbeat)
			}
			continue
		}
		alive, err := e.rdb.Exists(ctx, e.k.heartbeat(c.Name)).Result()
		if err != nil || alive == 1 {
			continue
		}
		if c.Pending == 0 {
			if c.Idle > 3*e.cfg.Heartbeat {
				e.rdb.XGroupDelConsumer(ctx, e.k.stream(), group, c.Name)
			}
			continue
		}
		e.cfg.Logger.Warn("taking over the deliveries of a dead process", "consumer", c.Name, "pending", c.Pending)
		e.claim(ctx, c.Name, 0)
	}
}

// claim takes consumer's pending entries idle for at least minIdle and starts them here, as far
// as workers are free (the rest are claimed on the next beat).
func (e *Engine) claim(ctx context.Context, consumer string, minIdle time.Duration) {
	free := cap(e.slots) - len(e.slots)
	if free <= 0 {
		return
	}
	pend, err := e.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: e.k.stream(), Group: group, Consumer: consumer, Start: "-", End: "+", Count: int64(min(free, 256)),
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
		Stream: e.k.stream(), Group: group, Consumer: e.cfg.Consumer, MinIdle: minIdle, Messages: ids,
	}).Result()
	if err != nil {
		e.redisFailed("claim entries", err)
		return
	}
	e.m.reclaimed.Add(float64(len(msgs)))
	es := toEntries(msgs)
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

func (e *Engine) wakeWaiters(ctx context.Context) {
	iter := e.rdb.SScan(ctx, e.k.waiting(), 0, "", 100).Iterator()
	n := 0
	for iter.Next(ctx) && n < 1000 {
		n++
		if err := wakeScript.Run(ctx, e.rdb, []string{e.k.stream()}, e.k.p, iter.Val(), e.nowMS(), e.cfg.MaxInFlight).Err(); err != nil {
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
