package notifier

import (
	"sync"
	"time"
)

// rateCredits holds, per endpoint, rate-limit tokens this process has already taken from the
// shared limiter (redis_rate) but not used yet.
//
// The shared limit is the only authority: a token is counted against the endpoint when the limiter
// grants it, whichever process later sends. A process asking the limiter for a batch of tries
// asks for a few tokens more when the endpoint's limit is high, keeps the surplus as credit, and
// spends it on the endpoint's next tries. Credit lapses after creditWindow, so a process holds at
// most a window's worth of the endpoint's rate (and never more than maxCredit), and a send trails
// its grant by at most the window: over any stretch of time the endpoint gets no more than the
// limit grants over that stretch plus one window. Tokens not used in time are lost, which errs
// below the limit, never above. An endpoint limited to less than
// creditMinPerMinute never gets credit: each try asks the limiter, so its limit holds to the token.
//
// This saves the limiter call (a script run in Redis and a round trip) per endpoint per fetched
// batch for busy endpoints, which is one per delivery when many endpoints each get a few.
type rateCredits struct {
	mu    sync.Mutex
	m     map[string]credit
	swept time.Time // the last sweep of lapsed credit
}

type credit struct {
	n     int
	until time.Time
}

const (
	creditWindow = time.Second
	maxCredit    = 64
	// creditMinPerMinute is the lowest limit that gets credit: 100 a second.
	creditMinPerMinute = 6000
	// maxCreditEndpoints bounds the endpoints holding credit at once.
	maxCreditEndpoints = 4096
)

// creditExtra is how many tokens beyond its need a process asks for, for an endpoint limited to
// perMinute: none below creditMinPerMinute, where every token counts (the limit's burst must
// stay usable to the last token), else a second's worth, at most maxCredit.
func creditExtra(perMinute int) int {
	if perMinute < creditMinPerMinute {
		return 0
	}
	return min(int(int64(perMinute)*int64(creditWindow)/int64(time.Minute)), maxCredit)
}

// take spends up to want tokens of ep's credit and returns how many it spent.
func (c *rateCredits) take(ep string, want int, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr, ok := c.m[ep]
	if !ok {
		return 0
	}
	if !now.Before(cr.until) {
		delete(c.m, ep)
		return 0
	}
	n := min(want, cr.n)
	cr.n -= n
	if cr.n == 0 {
		delete(c.m, ep)
	} else {
		c.m[ep] = cr
	}
	return n
}

// keep stores n granted but unused tokens of ep, usable until now+creditWindow. It replaces
// any credit left: the new grant is the fresher one, and keeping both could let the process
// hold more than a window's worth.
func (c *rateCredits) keep(ep string, n int, now time.Time) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]credit{}
	}
	if len(c.m) >= maxCreditEndpoints && now.Sub(c.swept) >= creditWindow {
		c.swept = now
		for k, v := range c.m { // lapsed credit of endpoints not tried since
			if !now.Before(v.until) {
				delete(c.m, k)
			}
		}
	}
	if _, ok := c.m[ep]; !ok && len(c.m) >= maxCreditEndpoints {
		return // bounded memory: the tokens lapse unused
	}
	c.m[ep] = credit{n: n, until: now.Add(creditWindow)}
}
