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
	url       string
	prevUntil int64 // ms: the previous secret signs until then
	rate      int   // per minute; 0 = the default
	mif       int   // max in flight, the default applied
	// signers of the secret and the previous one, their keys decoded once (nil: none); keyErr
	// when a secret does not decode (the try goes unsigned, with a warning)
	signer, prevSigner *signer
	keyErr             error
}

// newEpConf builds an endpoint's config from what the begin script read, decoding its keys.
func newEpConf(url, secret, prevSecret string, prevUntil int64, rate, mif int) *epConf {
	c := &epConf{url: url, prevUntil: prevUntil, rate: rate, mif: mif}
	c.signer, c.keyErr = signerFor(secret)
	if c.keyErr == nil {
		c.prevSigner, c.keyErr = signerFor(prevSecret)
	}
	return c
}

// signerFor returns the signer of a "whsec_" secret, nil for "".
func signerFor(secret string) (*signer, error) {
	if secret == "" {
		return nil, nil
	}
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return newSigner(key), nil
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

var errBeginAnswer = errors.New("unexpected answer from the begin script")

// begin runs the begin script for tries (one call for all of them) and sets each try's answer:
// t.begun for "go", t.state "skip", "wait" or "dead" (t.deadReason), or t.beginErr.
func (e *Engine) begin(ctx context.Context, tries []*try) {
	gen, cached := e.eps.snapshot(tries)
	args := make([]any, 0, 9+3*len(tries))
	args = append(args, e.k.p, e.nowMS(), e.cfg.MaxInFlight, (e.cfg.RequestTimeout + 5*time.Second).Milliseconds(),
		e.cfg.MaxDeliveryAge.Milliseconds(), e.cfg.Retention.Milliseconds(), e.horizonMS(), gen, len(tries))
	for i, t := range tries {
		mif := ""
		if cached[i] != nil {
			mif = strconv.Itoa(cached[i].mif)
		}
		args = append(args, t.id, t.sid, mif)
	}
	answers, err := beginScript.Run(ctx, e.rdb, []string{e.k.stream()}, args...).Slice()
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
		case len(s) == 8 && s[0] == "go" && read[s[1]] != nil: // read for an earlier try of this call
			t.state, t.begun = "go", beganFrom(s, read[s[1]])
		case len(s) == 8 && s[0] == "go" && cur == gen && cached[i] != nil:
			t.state, t.begun = "go", beganFrom(s, cached[i])
		case len(s) == 14 && s[0] == "go":
			conf := newEpConf(s[8], s[9], s[10], atoi64(s[11]), int(atoi64(s[12])), int(atoi64(s[13])))
			read[s[1]] = conf
			t.state, t.begun = "go", beganFrom(s, conf)
		default:
			t.beginErr = errBeginAnswer
		}
	}
	e.eps.update(cur, read)
}

func beganFrom(s []string, conf *epConf) *begun {
	return &begun{ep: s[1], tries: int(atoi64(s[2])), acc: atoi64(s[3]), body: []byte(s[4]),
		evt: s[5], sub: s[6], line: s[7], conf: conf}
}
