package notifier

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/webhooksig"
	"github.com/sony/gobreaker/v2"
)

// try is one entry on its way through process: what dispatch learnt of it, then what a worker
// does with it.
type try struct {
	entry
	done       func(error) // the breaker's callback, nil when it refused
	breaker    *breaker    // the endpoint's, in this process
	breakerErr error
	beginErr   error       // the begin script failed
	answer     beginAnswer // the begin script's answer
	fc         *finishCall // the worker's, for recording the try
	rate       int         // the endpoint's rate limit per minute
	allowed    bool        // the rate limiter let it through
	retryAfter time.Duration
	rateErr    error
}

// process takes one dispatched entry through its steps (doc.go's state table): drop an entry
// that is not ours, defer it while the breaker is open, stop at the begin script's or the rate
// limiter's answer, else make the try and record it.
func (e *Engine) process(t *try) {
	switch {
	case t.id == "" || t.ep == "":
		e.dropForeign(t.entry)
	case t.breakerErr != nil:
		e.deferForBreaker(t)
	case e.admitted(t):
		e.attempt(t)
	}
}

// dropForeign acknowledges a stream entry that is not a delivery of this engine.
func (e *Engine) dropForeign(en entry) {
	ctx, cancel := e.redisCtx()
	defer cancel()
	e.rdb.XAck(ctx, en.sh.k.stream(), group, en.sid)
}

// deferForBreaker puts back a delivery whose endpoint's breaker refused it: no lease, no rate
// token, no try. Half-open: the probe's answer is awaited (a try takes at most the request
// timeout, usually far less), so look again soon. Open: come back when it lets a probe through.
// The spread (a tenth of the cooldown, at most a second) keeps the deferred deliveries from
// arriving all at once; a wider one only delays them once the endpoint is back.
func (e *Engine) deferForBreaker(t *try) {
	delay := 250 * time.Millisecond
	if errors.Is(t.breakerErr, gobreaker.ErrOpenState) {
		delay = time.Until(t.breaker.reopenAt(e.cfg.BreakerCooldown))
	}
	spread := min(e.cfg.BreakerCooldown/10, time.Second)
	delay = max(delay, 0) + time.Duration(float64(spread)*rnd())
	e.deferTry(t.entry, delay, false, 0, ReasonBreakerOpen)
}

// admitted handles every answer but "try now": a failed begin, the begin script's skip, wait and
// dead, a failed or refusing rate limiter. Each tells the breaker nothing was sent.
func (e *Engine) admitted(t *try) bool {
	notSent := func() { t.done(errNotSent) }
	switch {
	case t.beginErr != nil:
		notSent()
		e.redisFailed("begin a try", t.beginErr) // the entry stays pending here; the reaper hands it back
	case t.answer.verdict == beginSkip:
		notSent()
	case t.answer.verdict == beginWait:
		notSent()
		e.m.deliveries.WithLabelValues("parked", ReasonMaxInFlight).Inc()
	case t.answer.verdict == beginDead:
		notSent()
		e.m.deliveries.WithLabelValues("dead", t.answer.deadReason).Inc()
		e.report(Outcome{DeliveryID: t.id, EndpointID: t.ep, Reason: t.answer.deadReason, Dead: true, At: e.cfg.Now()})
	case t.rateErr != nil: // a Redis error is an error, not a limit
		notSent()
		e.redisFailed("rate limiter", t.rateErr)
		e.deferTry(t.entry, time.Second, true, 0, "")
	case !t.allowed:
		notSent()
		e.m.rateLimitWaits.Inc()
		interval := time.Minute / time.Duration(t.rate)
		e.deferTry(t.entry, max(t.retryAfter, interval, time.Millisecond), true, interval, ReasonRateLimited)
	default:
		return true
	}
	return false
}

// attempt makes the try, tells the breaker and the metrics, decides what comes next and records
// it. A try the engine's stop aborted does not count: the delivery goes back as it was.
func (e *Engine) attempt(t *try) {
	bg := t.answer.begun
	ts := e.cfg.Now()
	tr := e.sendSigned(t.entry, bg, ts)
	if tr.aborted {
		t.done(errNotSent)
		e.deferTry(t.entry, 0, true, 0, "")
		return
	}
	v := classify(tr.status, tr.err)
	e.countTry(t, v, tr)
	e.noteTry(t.breaker, v.Delivered, tryErrorText(tr, v), tr.status, ts.UnixMilli())
	tries := bg.tries + 1 // including this one
	finishedAt := e.nowMS()
	d := e.retry.decide(v, tries, tr.retryAfter, finishedAt, bg.acc)
	item := finishItem{id: t.id, entry: t.sid, now: finishedAt, outcome: d.outcome, due: d.due, deadReason: d.reason,
		attempt: attemptJSON(ts, tr, v), endpoint: bg.ep, tries: tries, line: bg.line, accepted: bg.acc}
	if !e.record(t.sh, t.fc, item) {
		return
	}
	e.countFinish(t.sh, d, v, finishedAt-bg.acc)
	e.report(Outcome{
		DeliveryID: t.id, EndpointID: bg.ep, EventID: bg.evt, SubscriberID: bg.sub, StatusCode: tr.status,
		Reason: v.Reason, Delivered: v.Delivered, Dead: d.outcome == finishDead, Tried: !v.Unsent, At: ts,
	})
}

// sendSigned makes the signed POST of a try. An endpoint whose secret does not decode gets no
// request at all: never an unsigned one (errSecretUnusable, which classify reads).
func (e *Engine) sendSigned(en entry, bg *begun, ts time.Time) tryResult {
	conf := bg.conf
	if conf.keyErr != nil {
		e.cfg.Logger.Error("endpoint secret unusable; not sending unsigned", "endpoint", bg.ep)
		return tryResult{err: errSecretUnusable}
	}
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
	if sig := webhooksig.Header(en.id, ts.Unix(), bg.body, conf.signer, prev); sig != "" {
		h["Webhook-Signature"] = []string{sig}
	}
	e.m.inflight.Inc()
	defer e.m.inflight.Dec()
	return e.send(conf.url, h, bg.body)
}

// countTry tells the endpoint's breaker and the attempt metrics what the try came to.
func (e *Engine) countTry(t *try, v verdict, tr tryResult) {
	switch {
	case v.Unsent:
		t.done(errNotSent)
	case v.Delivered:
		t.done(nil)
	default:
		t.done(&tryError{v})
	}
	if v.Delivered {
		e.m.attemptOK.Inc()
	} else {
		e.m.attempts.WithLabelValues(v.Reason).Inc()
	}
	if !v.Unsent {
		e.m.attemptSeconds.Observe(tr.duration.Seconds())
	}
}

// attemptJSON is the attempt record of a try.
func attemptJSON(ts time.Time, tr tryResult, v verdict) []byte {
	att := Attempt{At: ts.UTC(), DurationMS: tr.duration.Milliseconds(), StatusCode: tr.status, Response: tr.response,
		Error: tryErrorText(tr, v)}
	return appendAttempt(make([]byte, 0, 128+len(att.Error)+len(att.Response)), att)
}

// tryErrorText is a try's error as its attempt shows it: "" when it delivered.
func tryErrorText(tr tryResult, v verdict) string {
	switch {
	case tr.err != nil:
		return tr.err.Error()
	case !v.Delivered:
		return "HTTP " + strconv.Itoa(tr.status)
	}
	return ""
}

// record runs the try's finish through the batcher: the finishes of concurrent tries share one
// script call. The try was made: record it as soon as Redis answers again (an outage, a restart
// still loading its data) rather than leave it to the reaper, which would make it again while
// its lease kept other deliveries of the endpoint waiting. False when it was not recorded:
// stopping or a lasting Redis failure (pending here; the reaper hands it back), or another
// process finished the delivery meanwhile.
func (e *Engine) record(sh *shard, fc *finishCall, item finishItem) bool {
	var fin int64
	err := e.retryRedis("record a try", func() (err error) {
		fin, err = sh.batch.finish(fc, item) // the batcher bounds its calls itself
		return err
	})
	return err == nil && fin == 1
}

// countFinish counts a recorded finish and wakes the pump for a retry due soon.
func (e *Engine) countFinish(sh *shard, d decision, v verdict, ageMS int64) {
	switch d.outcome {
	case finishDelivered:
		e.m.deliveredOK.Inc()
		e.m.e2eSeconds.Observe(float64(ageMS) / 1000)
	case finishRetry:
		e.m.deliveries.WithLabelValues("retry", v.Reason).Inc()
		e.pokeAt(sh, d.due)
	default:
		e.m.deliveries.WithLabelValues("dead", d.reason).Inc()
	}
}

// deferTry puts the entry back without using a try, due after delay. interval > 0 spreads
// rate-limited deliveries over the endpoint's future slots. A reason reports the deferral, and is
// what the delivery shows it waits for (its WaitReason); without one it is simply due again.
func (e *Engine) deferTry(en entry, delay time.Duration, release bool, interval time.Duration, reason string) {
	wait := WaitDue
	if reason != "" {
		wait = WaitReason(reason)
	}
	var due int64
	err := e.untilRedisAnswers("defer a try", func(ctx context.Context) (err error) {
		now := e.nowMS()
		args := deferArgs{id: en.id, entry: en.sid, now: now, due: now + delay.Milliseconds(),
			releaseLease: release, intervalMS: interval.Milliseconds(), wait: wait}
		due, err = deferScript.Run(ctx, e.rdb, []string{en.sh.k.stream()}, args.argv(en.sh.k.p)...).Int64()
		return err
	})
	if err != nil || due < 0 {
		return // pending here (the reaper hands it back), or stale
	}
	if reason != "" {
		e.m.deliveries.WithLabelValues("deferred", reason).Inc()
		e.report(Outcome{DeliveryID: en.id, EndpointID: en.ep, Reason: reason, At: e.cfg.Now()})
	}
	e.pokeAt(en.sh, due)
}

// redisCtx is for the Redis calls of a try: they must complete even while the engine stops, or
// the delivery would stay in this process's pending list until the reaper took it back.
func (e *Engine) redisCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisCallTimeout)
}

const redisCallTimeout = 10 * time.Second

// maxAttemptsKept is how many attempts a record keeps (the last ones).
const maxAttemptsKept = 100
