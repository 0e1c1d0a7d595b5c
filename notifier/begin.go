package notifier

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

// epConf is what a try needs of its endpoint: where to send, how to sign, its limits.
type epConf struct {
	url       string
	prevUntil int64 // ms: the previous secret signs until then
	rate      int   // per minute; 0 = the default
	mif       int   // max in flight, the default applied
	// signers of the secret and the previous one, their keys decoded once (nil: none); keyErr
	// when a secret does not decode: the try is not sent (never unsigned), see attempt
	signer, prevSigner *webhooksig.Signer
	keyErr             error
}

// newEpConf builds an endpoint's config from what the begin script read, decoding its keys.
func newEpConf(f *epFields) *epConf {
	c := &epConf{url: f.url, prevUntil: f.prevUntil, rate: f.rate, mif: f.maxInFlight}
	c.signer, c.keyErr = signerFor(f.secret)
	if c.keyErr == nil {
		c.prevSigner, c.keyErr = signerFor(f.prevSecret)
	}
	return c
}

// signerFor returns the signer of a "whsec_" secret, nil for "".
func signerFor(secret string) (*webhooksig.Signer, error) {
	if secret == "" {
		return nil, nil
	}
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return webhooksig.NewSigner(key), nil
}

// epCache keeps a shard's endpoint configs as of one generation of its endpoints (P:{T}:epgen, bumped by
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

// snapshot returns the generation the cache holds and, per try, its endpoint's config in it
// (nil when not cached).
func (c *epCache) snapshot(tries []*try) (int64, []*epConf) {
	c.mu.Lock()
	defer c.mu.Unlock()
	confs := make([]*epConf, len(tries))
	for i, t := range tries {
		confs[i] = c.conf[t.ep]
	}
	return c.gen, confs
}

// update records the endpoint configs read at generation gen; another generation than the one
// held empties the cache first. Usually it is newer; an older one (of a batch that overlapped)
// resets it too: the script is the judge, and it will not trust a stale generation.
func (c *epCache) update(gen int64, read map[string]*epConf) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		c.gen, c.conf = gen, map[string]*epConf{}
	}
	for ep, conf := range read {
		if len(c.conf) < maxCachedEndpoints || c.conf[ep] != nil {
			c.conf[ep] = conf
		}
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

// beginAnswer is the begin script's answer for one entry: {BEGIN_SKIP}, {BEGIN_WAIT},
// {BEGIN_DEAD, reason}, or {BEGIN_GO, endpoint, tries, accepted, body, event, subscriber, line}
// followed, in the first go answer of an endpoint the call read, by the endpoint's url, secret,
// previous secret, its expiry, rate and max in flight (endpoint).
type beginAnswer struct {
	verdict    beginVerdict
	deadReason string    // beginDead
	begun      *begun    // beginGo, conf not set yet
	endpoint   *epFields // beginGo, when the script read the endpoint
}

// epFields is an endpoint as the begin script read it.
type epFields struct {
	url, secret, prevSecret string
	prevUntil               int64
	rate, maxInFlight       int
}

var errBeginAnswer = errors.New("unexpected answer from the begin script")

// parseBeginAnswer reads one answer of the begin script.
func parseBeginAnswer(v any) (beginAnswer, error) {
	a, _ := v.([]any)
	s := make([]string, len(a))
	for j, x := range a {
		s[j], _ = x.(string)
	}
	if len(s) == 0 {
		return beginAnswer{}, errBeginAnswer
	}
	switch verdict := beginVerdict(s[0]); {
	case len(s) == 1 && (verdict == beginSkip || verdict == beginWait):
		return beginAnswer{verdict: verdict}, nil
	case len(s) == 2 && verdict == beginDead:
		return beginAnswer{verdict: verdict, deadReason: s[1]}, nil
	case (len(s) == 8 || len(s) == 14) && verdict == beginGo:
		ans := beginAnswer{verdict: verdict, begun: &begun{ep: s[1], tries: int(atoi64(s[2])), acc: atoi64(s[3]),
			body: []byte(s[4]), evt: s[5], sub: s[6], line: s[7]}}
		if len(s) == 14 {
			ans.endpoint = &epFields{url: s[8], secret: s[9], prevSecret: s[10], prevUntil: atoi64(s[11]),
				rate: int(atoi64(s[12])), maxInFlight: int(atoi64(s[13]))}
		}
		return ans, nil
	}
	return beginAnswer{}, errBeginAnswer
}

// begin runs the begin script for tries, all in shard sh (one call for all of them), and sets
// each try's answer, or t.beginErr.
func (e *Engine) begin(ctx context.Context, sh *shard, tries []*try) {
	gen, cached := sh.eps.snapshot(tries)
	args := beginArgs{now: e.nowMS(), defaultInFlight: e.cfg.MaxInFlight, leaseMS: e.leaseMS(),
		maxAgeMS: e.cfg.MaxDeliveryAge.Milliseconds(), retentionMS: e.cfg.Retention.Milliseconds(),
		horizonMS: e.horizonMS(), generation: gen, items: make([]beginItem, len(tries))}
	for i, t := range tries {
		args.items[i] = beginItem{id: t.id, entry: t.sid}
		if cached[i] != nil {
			args.items[i].cachedInFlight = strconv.Itoa(cached[i].mif)
		}
	}
	answers, err := beginScript.Run(ctx, e.rdb, []string{sh.k.stream()}, args.argv(sh.k.p)...).Slice()
	if err == nil && len(answers) != len(tries)+1 {
		err = errBeginAnswer
	}
	if err != nil {
		for _, t := range tries {
			t.beginErr = err
		}
		return
	}
	cur, _ := answers[0].(int64)
	read := map[string]*epConf{} // endpoints the script read, one config each
	for i, t := range tries {
		ans, err := parseBeginAnswer(answers[i+1])
		if err == nil && ans.verdict == beginGo {
			ans.begun.conf, err = confFor(ans, read, cur == gen, cached[i])
		}
		t.answer, t.beginErr = ans, err
	}
	sh.eps.update(cur, read)
}

// confFor finds a go answer's endpoint config: read by this call for an earlier try, sent with
// this answer, or cached (trusted only when the cache's generation is current).
func confFor(ans beginAnswer, read map[string]*epConf, current bool, cached *epConf) (*epConf, error) {
	ep := ans.begun.ep
	switch {
	case read[ep] != nil:
		return read[ep], nil
	case ans.endpoint != nil:
		read[ep] = newEpConf(ans.endpoint)
		return read[ep], nil
	case current && cached != nil:
		return cached, nil
	}
	return nil, errBeginAnswer
}

// leaseMS is how long an in-flight lease lasts: a try's request timeout and a margin to record it.
func (e *Engine) leaseMS() int64 { return (e.cfg.RequestTimeout + 5*time.Second).Milliseconds() }
