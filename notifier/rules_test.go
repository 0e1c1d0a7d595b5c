package notifier

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/egress"
)

// The engine's decisions, each made by one rule, specified here as tables: what a try's answer
// means (classify), what the breaker counts, how long a receiver asks to wait (Retry-After), what
// follows a failed try (decide) and how waits are spread (spread).

func TestClassify(t *testing.T) {
	refused := fmt.Errorf("POST x: %w", egress.ErrRefused)
	cases := []struct {
		name   string
		status int
		err    error
		want   verdict
	}{
		{"200 delivers", 200, nil, verdict{Delivered: true, BreakerOK: true}},
		{"204 delivers", 204, nil, verdict{Delivered: true, BreakerOK: true}},
		{"299 delivers", 299, nil, verdict{Delivered: true, BreakerOK: true}},
		{"301 is not followed, retried", 301, nil, verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP3xx}},
		{"100 is odd, retried", 100, nil, verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP3xx}},
		{"400 is the request's fault", 400, nil, verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP4xx}},
		{"404 is the request's fault", 404, nil, verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP4xx}},
		{"410 Gone is never retried", 410, nil, verdict{BreakerOK: true, Reason: ReasonGone}},
		{"408 counts against the endpoint", 408, nil, verdict{Retryable: true, Reason: ReasonHTTP4xx}},
		{"429 counts against the endpoint", 429, nil, verdict{Retryable: true, Reason: ReasonHTTP4xx}},
		{"500 counts against the endpoint", 500, nil, verdict{Retryable: true, Reason: ReasonHTTP5xx}},
		{"503 counts against the endpoint", 503, nil, verdict{Retryable: true, Reason: ReasonHTTP5xx}},
		{"connection refused", 0, fmt.Errorf("POST x: %w", syscall.ECONNREFUSED), verdict{Retryable: true, Reason: ReasonNetwork}},
		{"our timeout", 0, fmt.Errorf("POST x: %w", errAttemptTimeout), verdict{Retryable: true, Reason: ReasonTimeout}},
		{"a net timeout", 0, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, verdict{Retryable: true, Reason: ReasonTimeout}},
		{"deadline exceeded", 0, context.DeadlineExceeded, verdict{Retryable: true, Reason: ReasonTimeout}},
		{"refused target is never retried", 0, refused, verdict{BreakerOK: true, Reason: ReasonRefused}},
		{"unusable secret sends nothing", 0, errSecretUnusable, verdict{Retryable: true, Unsent: true, Reason: ReasonSecretUnusable}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := classify(c.status, c.err); got != c.want {
				t.Errorf("classify(%d, %v) = %+v, want %+v", c.status, c.err, got, c.want)
			}
		})
	}
}

// The breaker counts what classify says: a failure only when the endpoint is at fault; a try
// that sent nothing is left out.
func TestBreakerCounts(t *testing.T) {
	e := &Engine{cfg: Config{BreakerFailures: 1, BreakerCooldown: time.Hour}.withDefaults(), breakers: map[string]*breaker{}}
	e.m = newMetrics(e)
	cases := []struct {
		name   string
		err    error
		opened bool
	}{
		{"success", nil, false},
		{"a 404 is the request's fault", &tryError{classify(404, nil)}, false},
		{"a 410 is a sane answer", &tryError{classify(410, nil)}, false},
		{"a refused target", &tryError{classify(0, fmt.Errorf("dial: %w", egress.ErrRefused))}, false},
		{"not sent", errNotSent, false},
		{"a 500", &tryError{classify(500, nil)}, true},
		{"a 429", &tryError{classify(429, nil)}, true},
		{"a 408", &tryError{classify(408, nil)}, true},
		{"a timeout", &tryError{classify(0, errAttemptTimeout)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := e.breakerFor(c.name)
			done, err := b.cb.Allow()
			if err != nil {
				t.Fatal(err)
			}
			done(c.err)
			if got := e.BreakerState(c.name) == BreakerOpen; got != c.opened {
				t.Errorf("breaker open = %v after %q, want %v", got, c.name, c.opened)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{"120", 2 * time.Minute},
		{"-3", 0},
		{"soon", 0},
		{"1.5", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},              // IMF-fixdate
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},                                // obsolete RFC 850 form
		{now.Add(30 * time.Second).Format(time.ANSIC), 30 * time.Second},                   // asctime
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},                                 // in the past
		{now.Add(90*time.Second).Format(http.TimeFormat) + " garbage", 0},                  // not a date
		{now.Add(90 * time.Second).In(time.FixedZone("X", 3600)).Format(time.RFC1123Z), 0}, // not an HTTP date
	}
	for _, c := range cases {
		if got := parseRetryAfter(c.header, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	p := retryPolicy{
		schedule:      []time.Duration{4 * time.Second, 8 * time.Second, 10 * time.Second},
		maxRetryAfter: 10 * time.Minute,
		maxAge:        time.Hour,
		rand:          func() float64 { return 0.5 }, // no jitter at the middle
		jitter:        0.1,
	}
	const now, accepted = 1_000_000, 1_000_000 - 60_000 // accepted a minute ago
	failed, ok := classify(500, nil), classify(200, nil)
	cases := []struct {
		name       string
		v          verdict
		tries      int
		retryAfter time.Duration
		accepted   int64
		want       decision
	}{
		{"delivered", ok, 1, 0, accepted, decision{outcome: finishDelivered}},
		{"delivered on the last try", ok, 4, 0, accepted, decision{outcome: finishDelivered}},
		{"first failure waits the first wait", failed, 1, 0, accepted, decision{outcome: finishRetry, due: now + 4000}},
		{"third failure waits the third", failed, 3, 0, accepted, decision{outcome: finishRetry, due: now + 10_000}},
		{"the schedule spent", failed, 4, 0, accepted, decision{outcome: finishDead, reason: ReasonMaxTries}},
		{"a longer Retry-After wins", classify(429, nil), 1, 30 * time.Second, accepted, decision{outcome: finishRetry, due: now + 30_000}},
		{"a shorter Retry-After does not shorten", classify(503, nil), 2, time.Second, accepted, decision{outcome: finishRetry, due: now + 8000}},
		{"Retry-After is capped", classify(429, nil), 1, 24 * time.Hour, accepted, decision{outcome: finishRetry, due: now + 600_000}},
		{"Retry-After past the schedule still dies", classify(429, nil), 4, time.Minute, accepted, decision{outcome: finishDead, reason: ReasonMaxTries}},
		{"not retryable dies with its reason", classify(0, fmt.Errorf("dial: %w", egress.ErrRefused)), 1, 0, accepted, decision{outcome: finishDead, reason: ReasonRefused}},
		{"410 Gone dies on its first try", classify(410, nil), 1, 0, accepted, decision{outcome: finishDead, reason: ReasonGone}},
		{"a retry past the maximum age dies", failed, 1, 0, now - time.Hour.Milliseconds() + 1000, decision{outcome: finishDead, reason: ReasonMaxAge}},
		{"a retry just within the maximum age", failed, 1, 0, now - time.Hour.Milliseconds() + 4000, decision{outcome: finishRetry, due: now + 4000}},
		{"an unusable secret follows the schedule", classify(0, errSecretUnusable), 2, 0, accepted, decision{outcome: finishRetry, due: now + 8000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := p.decide(c.v, c.tries, c.retryAfter, now, c.accepted); got != c.want {
				t.Errorf("decide = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	const d = 10 * time.Second
	cases := []struct {
		jitter, rand float64
		want         time.Duration
	}{
		{0.1, 0, 9 * time.Second},             // the low end
		{0.1, 0.5, d},                         // the middle
		{0.1, 0.75, 10500 * time.Millisecond}, // half way to the high end
		{0.5, 0, 5 * time.Second},
		{0, 0, d}, // off
	}
	for _, c := range cases {
		p := retryPolicy{jitter: c.jitter, rand: func() float64 { return c.rand }}
		if got := p.spread(d); got != c.want {
			t.Errorf("spread(%v) with jitter %g at %g = %v, want %v", d, c.jitter, c.rand, got, c.want)
		}
	}
	p := newRetryPolicy(Config{Jitter: 0.1}) // the real random source stays within ±10%
	for range 1000 {
		if got := p.spread(d); got < 9*time.Second || got > 11*time.Second {
			t.Fatalf("spread(%v) = %v, outside ±10%%", d, got)
		}
	}
}

func TestParseBeginAnswer(t *testing.T) {
	goAnswer := []any{"go", "ep", "2", "1700", "{}", "evt", "sub", "k:line"}
	withEndpoint := append(append([]any{}, goAnswer...), "http://x", "whsec_a", "", "0", "600", "10")
	cases := []struct {
		name    string
		answer  any
		verdict beginVerdict
		err     bool
	}{
		{"skip", []any{"skip"}, beginSkip, false},
		{"wait", []any{"wait"}, beginWait, false},
		{"dead", []any{"dead", ReasonMaxAge}, beginDead, false},
		{"go", goAnswer, beginGo, false},
		{"go with its endpoint", withEndpoint, beginGo, false},
		{"dead without a reason", []any{"dead"}, "", true},
		{"go cut short", goAnswer[:5], "", true},
		{"unknown verdict", []any{"maybe"}, "", true},
		{"empty", []any{}, "", true},
		{"not a list", int64(1), "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := parseBeginAnswer(c.answer)
			if (err != nil) != c.err || a.verdict != c.verdict {
				t.Errorf("parseBeginAnswer = %+v, %v; want verdict %q, error %v", a, err, c.verdict, c.err)
			}
		})
	}
	a, _ := parseBeginAnswer(withEndpoint)
	if b := a.begun; b.ep != "ep" || b.tries != 2 || b.acc != 1700 || b.line != "k:line" || a.endpoint.rate != 600 || a.endpoint.maxInFlight != 10 {
		t.Errorf("go answer read as %+v, endpoint %+v", b, a.endpoint)
	}
}

// The scripts build the same keys as Go: both use the suffixes of keys.go.
func TestScriptKeysMatchGo(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	k := e.base().k
	probe := script(`return {STREAM_KEY, DELAYED_KEY, BACKLOG_KEY, EPGEN_KEY, WAITING_KEY, ALL_INDEX_KEY,
  FAILED_INDEX_KEY, GATED_KEY, WATERMARK_KEY, recordKey('x'), endpointKey('x'), inflightKey('x'), waitersKey('x'),
  slotKey('x'), lineKey('x'), gateKey('x'), subscriberIndexKey('x'), eventIndexKey('x'), endpointIndexKey('x'),
  healthKey('x')}`)
	got, err := probe.Run(context.Background(), b.rdb, []string{k.stream()}, k.p).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{k.stream(), k.delayed(), k.backlog(), k.endpointGen(), k.waiting(), k.ixAll(),
		k.ixFailed(), k.gated(), k.watermark(), k.record("x"), k.endpoint("x"), k.inflight("x"), k.waiters("x"),
		k.slot("x"), k.line("x"), k.gate("x"), k.ixSubscriber("x"), k.ixEvent("x"), k.ixEndpoint("x"), k.health("x")}
	if len(got) != len(want) || len(want) != len(luaKeyLayout) {
		t.Fatalf("%d keys from Lua, %d from Go, %d in the layout", len(got), len(want), len(luaKeyLayout))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("key %d: Lua %q, Go %q", i, got[i], want[i])
		}
	}
}

// Every name the scripts share with Go is defined once.
func TestLuaNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range luaNameTable {
		if seen[n.lua] {
			t.Errorf("Lua name %s defined twice", n.lua)
		}
		seen[n.lua] = true
	}
	for _, k := range luaKeyLayout {
		if seen[k.lua] {
			t.Errorf("Lua name %s defined twice", k.lua)
		}
		seen[k.lua] = true
	}
}
