package notifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/egress"
)

// Reasons a try did not deliver (the "reason" label of the metrics and Outcome.Reason).
const (
	ReasonTimeout      = "timeout"       // no complete answer within the request timeout
	ReasonNetwork      = "network"       // connection refused, reset, DNS, TLS...
	ReasonRefused      = "refused"       // the target rules refused the address (never retried)
	ReasonHTTP3xx      = "http_3xx"      // a redirect or other non-2xx below 400 (redirects are not followed)
	ReasonHTTP4xx      = "http_4xx"      // a 4xx answer (but 410)
	ReasonGone         = "http_410"      // 410 Gone: the receiver says the endpoint is gone for good (never retried)
	ReasonHTTP5xx      = "http_5xx"      // a 5xx answer
	ReasonBreakerOpen  = "breaker_open"  // deferred: the endpoint's breaker is open (no try used)
	ReasonRateLimited  = "rate_limited"  // deferred: the endpoint's rate limit (no try used)
	ReasonMaxInFlight  = "max_in_flight" // parked: the endpoint has max_in_flight tries running
	ReasonMaxTries     = "max_tries"     // dead: every try of the schedule failed
	ReasonMaxAge       = "max_age"       // dead: pending longer than the maximum delivery age
	ReasonEndpointGone = "endpoint_deleted"
	// ReasonEndpointDisabled: dead without a try, its endpoint disabled (DisableEndpoint, or
	// PutEndpoint with Disabled); replayable once the endpoint is enabled again.
	ReasonEndpointDisabled = "endpoint_disabled"
	// ReasonSecretUnusable: the endpoint's stored secret does not decode, so nothing was sent
	// (never unsigned); retried on the schedule, which a corrected endpoint then meets.
	ReasonSecretUnusable = "secret_unusable"
)

// verdict is what one try's result means. classify is the only place that decides it; the
// retry logic, the breaker (IsSuccessful) and the metrics all read it.
type verdict struct {
	Delivered bool
	Retryable bool
	// BreakerOK: the endpoint answered sanely (counted as a success by its breaker) even if the
	// delivery failed, e.g. a 400 or 404: the request is at fault, not the endpoint's health.
	BreakerOK bool
	// Unsent: no request went out; the breaker leaves it out of its counts.
	Unsent bool
	Reason string
}

// classify judges a try from its status code (0 without an answer) and its transport error.
func classify(status int, err error) verdict {
	if err != nil {
		switch {
		case errors.Is(err, errSecretUnusable):
			return verdict{Retryable: true, Unsent: true, Reason: ReasonSecretUnusable}
		case egress.IsRefused(err):
			return verdict{Reason: ReasonRefused, BreakerOK: true}
		case isTimeout(err):
			return verdict{Retryable: true, Reason: ReasonTimeout}
		default:
			return verdict{Retryable: true, Reason: ReasonNetwork}
		}
	}
	switch {
	case status >= 200 && status < 300:
		return verdict{Delivered: true, BreakerOK: true}
	case status == http.StatusGone:
		// The receiver says the endpoint is gone for good: retrying cannot help. A sane answer,
		// not a sign of overload, so the breaker counts it as one.
		return verdict{BreakerOK: true, Reason: ReasonGone}
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		// The endpoint is overloaded: back off, and let the breaker see it.
		return verdict{Retryable: true, Reason: ReasonHTTP4xx}
	case status >= 400 && status < 500:
		return verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP4xx}
	case status >= 500:
		return verdict{Retryable: true, Reason: ReasonHTTP5xx}
	default:
		return verdict{Retryable: true, BreakerOK: true, Reason: ReasonHTTP3xx}
	}
}

// errAttemptTimeout is the cause of a try's context when the request timeout passes.
var errAttemptTimeout = errors.New("request timeout")

// errSecretUnusable is a try's error when its endpoint's secret does not decode.
var errSecretUnusable = errors.New("endpoint secret unusable: not sent (herald never sends unsigned to a signed endpoint)")

// errNotSent tells the breaker a permitted request was not sent after all (excluded from counts).
var errNotSent = errors.New("not sent")

func isTimeout(err error) bool {
	if errors.Is(err, errAttemptTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tryError carries a failed try's verdict to the breaker.
type tryError struct{ v verdict }

func (t *tryError) Error() string { return t.v.Reason }

// tryResult is what one HTTP try produced.
type tryResult struct {
	status     int
	err        error // transport error, URL redacted
	retryAfter time.Duration
	response   string // the first bytes of the body
	duration   time.Duration
	aborted    bool // the engine is stopping: the try does not count
}

const (
	keepResponse = 1024     // bytes of the response body kept in the attempt record
	drainLimit   = 64 << 10 // bytes read past that so the connection can be reused
)

// send makes one try: POST body to target with the signature headers, within the request timeout.
func (e *Engine) send(target string, headers http.Header, body []byte) tryResult {
	ctx, cancel := context.WithTimeoutCause(e.hard, e.cfg.RequestTimeout, errAttemptTimeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return tryResult{err: fmt.Errorf("POST %s: cannot build request", egress.Redact(target)), duration: time.Since(start)}
	}
	req.Header = headers
	if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
		pw, _ := u.Password()
		req.SetBasicAuth(u.Username(), pw) // as http.Client would
	}
	// Straight to the transport: the client would only add its redirect machinery (redirects
	// are never followed) and a copy of the headers for it; the timeout is ctx's.
	resp, err := e.client.Transport.RoundTrip(req)
	if err != nil {
		res := tryResult{duration: time.Since(start)}
		if e.hard.Err() != nil {
			res.aborted = true
		}
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		if errors.Is(context.Cause(ctx), errAttemptTimeout) || isTimeout(err) {
			cause = fmt.Errorf("no answer within %s: %w", e.cfg.RequestTimeout, errAttemptTimeout)
		}
		res.err = fmt.Errorf("POST %s: %w", egress.Redact(target), cause)
		return res
	}
	defer resp.Body.Close()
	buf := respBufs.Get().(*[keepResponse]byte)
	n, _ := io.ReadFull(resp.Body, buf[:])
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	res := tryResult{status: resp.StatusCode, duration: time.Since(start), response: validUTF8(buf[:n])}
	respBufs.Put(buf)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// respBufs holds the buffers the first bytes of responses are read into (validUTF8 copies them).
var respBufs = sync.Pool{New: func() any { return new([keepResponse]byte) }}

func validUTF8(b []byte) string {
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1] // a multi-byte character cut at the limit
	}
	return string(b)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date. 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
