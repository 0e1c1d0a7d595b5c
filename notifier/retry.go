package notifier

import (
	"math/rand/v2"
	"time"
)

// retryPolicy is the one rule for what follows a failed try: when the next try is due, or why
// the delivery is dead. Its inputs come from Config; decide is a pure function of them.
type retryPolicy struct {
	schedule      []time.Duration // the wait before each retry
	jitter        float64         // every wait spread by up to ±jitter of itself
	maxRetryAfter time.Duration   // a receiver's Retry-After is honoured up to this
	maxAge        time.Duration   // a delivery older than this (since accepted) is dead
	rand          func() float64  // in [0, 1)
}

func newRetryPolicy(cfg Config) retryPolicy {
	return retryPolicy{schedule: cfg.RetrySchedule, jitter: cfg.Jitter, maxRetryAfter: cfg.MaxRetryAfter,
		maxAge: cfg.MaxDeliveryAge, rand: rand.Float64}
}

// decision is what a finished try does to its delivery.
type decision struct {
	outcome finishOutcome
	due     int64  // finishRetry: when the next try is due (ms)
	reason  string // finishDead: why
}

// decide judges a try with verdict v, the delivery's tries-th (this one included), which ended
// at nowMS; the delivery was accepted at acceptedMS and the receiver asked to wait retryAfter
// (0: it did not). A delivered try finishes the delivery. A failed one is retried after the
// schedule's wait for it (jittered; lengthened to a Retry-After, capped) unless the failure is
// not retryable, the schedule is spent, or the retry would fall past the maximum age: then it
// is dead, with that reason.
func (p retryPolicy) decide(v verdict, tries int, retryAfter time.Duration, nowMS, acceptedMS int64) decision {
	if v.Delivered {
		return decision{outcome: finishDelivered}
	}
	var wait time.Duration
	if tries <= len(p.schedule) {
		wait = p.spread(p.schedule[tries-1])
	}
	if retryAfter > 0 {
		wait = max(wait, min(retryAfter, p.maxRetryAfter))
	}
	due := nowMS + wait.Milliseconds()
	switch {
	case !v.Retryable:
		return decision{outcome: finishDead, reason: v.Reason}
	case tries > len(p.schedule):
		return decision{outcome: finishDead, reason: ReasonMaxTries}
	case due-acceptedMS > p.maxAge.Milliseconds(): // age counts from acceptance: a replay resets it
		return decision{outcome: finishDead, reason: ReasonMaxAge}
	}
	return decision{outcome: finishRetry, due: due}
}

// spread jitters d by up to ±p.jitter of itself.
func (p retryPolicy) spread(d time.Duration) time.Duration {
	if p.jitter <= 0 || d <= 0 {
		return d
	}
	f := 1 + p.jitter*(2*p.rand()-1)
	return time.Duration(float64(d) * f)
}
