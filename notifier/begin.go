package notifier

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// epConf is what a try needs of its endpoint: where to send, how to sign, its limits.
type epConf struct {
	url, secret, prevSecret string
	prevUntil               int64 // ms: the previous secret signs until then
	rate                    int   // per minute; 0 = the default
	mif                     int   // max in flight, the default applied
	// signers of secret and prevSecret, their keys decoded once (nil: none); keyErr when a
	// secret does not decode (the try goes unsigned, with a warning)
	signer, prevSigner *signer
	keyErr             error
}

// newEpConf builds an endpoint's config from what the begin script read, decoding its keys.
func newEpConf(url, secret, prevSecret string, prevUntil int64, rate, mif int) *epConf {
	c := &epConf{url: url, secret: secret, prevSecret: prevSecret, prevUntil: prevUntil, rate: rate, mif: mif}
	for _, s := range []struct {
		secret string
		to     **signer
	}{{secret, &c.signer}, {prevSecret, &c.prevSigner}} {
		if s.secret == "" || c.keyErr != nil {
			continue
		}
		key, err := secretKey(s.secret)
		if err != nil {
			c.keyErr = err
			continue
		}
		*s.to = newSigner(key)
	}
	return c
}

// epCache keeps endpoint configs as of one generation of the endpoints (P:{P}:epgen, bumped by
// every change to an endpoint). The begin script trusts what the cache holds only when its
// generation is still current, so a change made by any process is seen by the next batch of
// every process; until something changes, begin does not read the endpoints again.
type epCache struct {
	mu   sync.Mutex
	gen  int64 // 0: nothing cached yet
	conf map[string]*epConf
}

// maxCachedEndpoints bounds the cache; endpoints past it are read by every begin that needs them.
const maxCachedEndpoints = 50_000

// lookup returns the generation the cache holds and ep's config in it, if any.
func (c *epCache) lookup(ep string) (int64, *epConf) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.conf[ep]
}

func (c *epCache) snapshotGen() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// learn records ep's config read at generation gen; a newer generation empties the cache.
func (c *epCache) learn(gen int64, ep string, conf *epConf) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		// Usually newer. An older answer (of a batch that overlapped) resets it too: the script
		// is the judge, and it simply won't trust a stale generation.
		c.gen, c.conf = gen, map[string]*epConf{}
	}
	if conf != nil && (len(c.conf) < maxCachedEndpoints || c.conf[ep] != nil) {
		c.conf[ep] = conf
	}
}

// begun is the begin script's answer "go" for a try: the record's fields and the endpoint's
// config.
type begun struct {
	ep    string
	tries int   // tries used before this one
	acc   int64 // accepted at (ms)
	body  []byte
	evt   string
	sub   string
	line  string // the ordering line ("" none)
	conf  *epConf
}

var errBeginAnswer = errors.New("unexpected answer from the begin script")

// begin runs the begin script for tries (one call for all of them) and sets each try's answer:
// t.begun for "go", t.state "skip", "wait" or "dead" (t.deadReason), or t.beginErr.
func (e *Engine) begin(ctx context.Context, tries []*try) {
	gen := e.eps.snapshotGen()
	args := make([]any, 0, 9+3*len(tries))
	args = append(args, e.k.p, e.nowMS(), e.cfg.MaxInFlight, (e.cfg.RequestTimeout + 5*time.Second).Milliseconds(),
		e.cfg.MaxDeliveryAge.Milliseconds(), e.cfg.Retention.Milliseconds(), e.horizonMS(), gen, len(tries))
	cached := make([]*epConf, len(tries))
	for i, t := range tries {
		mif := ""
		if g, c := e.eps.lookup(t.ep); c != nil && g == gen {
			cached[i], mif = c, strconv.Itoa(c.mif)
		}
		args = append(args, t.id, t.sid, mif)
	}
	answers, err := beginScript.Run(ctx, e.rdb, []string{e.k.stream()}, args...).Slice()
	if err == nil && len(answers) != len(tries)+1 {
		err = errBeginAnswer
	}
	var cur int64
	if err == nil {
		cur, _ = answers[0].(int64)
	}
	for i, t := range tries {
		if err != nil {
			t.beginErr = err
			continue
		}
		a, _ := answers[i+1].([]any)
		s := make([]string, len(a))
		for j, v := range a {
			s[j], _ = v.(string)
		}
		switch {
		case len(s) == 1 && (s[0] == "skip" || s[0] == "wait"):
			t.state = s[0]
		case len(s) == 2 && s[0] == "dead":
			t.state, t.deadReason = "dead", s[1]
		case len(s) == 8 && s[0] == "go" && cur == gen && cached[i] != nil:
			t.state, t.begun = "go", beganFrom(s, cached[i])
		case len(s) == 14 && s[0] == "go":
			conf := newEpConf(s[8], s[9], s[10], atoi64(s[11]), int(atoi64(s[12])), int(atoi64(s[13])))
			e.eps.learn(cur, s[1], conf)
			t.state, t.begun = "go", beganFrom(s, conf)
		default:
			t.beginErr = errBeginAnswer
		}
	}
	if err == nil {
		e.eps.learn(cur, "", nil) // a newer generation with nothing read still empties the cache
	}
}

func beganFrom(s []string, conf *epConf) *begun {
	return &begun{ep: s[1], tries: int(atoi64(s[2])), acc: atoi64(s[3]), body: []byte(s[4]),
		evt: s[5], sub: s[6], line: s[7], conf: conf}
}
