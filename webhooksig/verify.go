package webhooksig

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a request's timestamp may be from now when Verify is given none.
const DefaultTolerance = 5 * time.Minute

// Verification errors. Every failure of a well-formed secret wraps ErrSignature and one of the
// more precise errors below it; none of them repeats a secret.
var (
	// ErrSignature: the request is not proven to come from the holder of a secret.
	ErrSignature = errors.New("webhooksig: webhook signature does not verify")
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature is missing (the error names it).
	ErrMissingHeader = fmt.Errorf("%w: missing header", ErrSignature)
	// ErrBadTimestamp: webhook-timestamp is not a whole number of unix seconds.
	ErrBadTimestamp = fmt.Errorf("%w: %s is not a unix time in seconds", ErrSignature, HeaderTimestamp)
	// ErrTooOld: webhook-timestamp is further in the past than the tolerance (a replay, or a clock off).
	ErrTooOld = fmt.Errorf("%w: timestamp too old", ErrSignature)
	// ErrTooNew: webhook-timestamp is further in the future than the tolerance (a clock off).
	ErrTooNew = fmt.Errorf("%w: timestamp too new", ErrSignature)
	// ErrNoMatch: no "v1," signature in webhook-signature was made with the key (or keys) checked
	// (a wrong secret, or a body or id changed on the way).
	ErrNoMatch = fmt.Errorf("%w: no v1 signature matches", ErrSignature)
)

// The header names in Go's canonical form, which http.Header.Get finds without allocating.
var (
	canonicalID        = http.CanonicalHeaderKey(HeaderID)
	canonicalTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// Verify checks a signed request as a receiver would: the webhook-id, webhook-timestamp and
// webhook-signature headers, the timestamp within tolerance of now (<= 0: DefaultTolerance), and
// at least one v1 signature made with secret. It returns ErrBadSecret for a bad secret and an
// error wrapping ErrSignature otherwise. It is the Go twin of the official libraries' verify.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	return NewSigner(key).Verify(header, body, tolerance, time.Now())
}

// Verify is the package's Verify with this signer's key, and now as the time to check the
// timestamp against. Keep a Signer to verify many requests: it reuses its HMAC states.
func (s *Signer) Verify(header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	_, _, err := VerifyAny(header, body, tolerance, now, s)
	return err
}

// VerifyAny is Verify against several keys (a receiver that accepts the old and the new secret
// while a sender rotates): the request passes when one of its v1 signatures was made with any of
// signers. It returns the request's webhook-id and timestamp.
func VerifyAny(header http.Header, body []byte, tolerance time.Duration, now time.Time, signers ...*Signer) (id string, ts time.Time, err error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, tsRaw, sigs := header.Get(canonicalID), header.Get(canonicalTimestamp), header.Get(canonicalSignature)
	for _, h := range [...][2]string{{HeaderID, id}, {HeaderTimestamp, tsRaw}, {HeaderSignature, sigs}} {
		if h[1] == "" {
			return "", time.Time{}, fmt.Errorf("%w: %s", ErrMissingHeader, h[0])
		}
	}
	unix, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return "", time.Time{}, ErrBadTimestamp
	}
	ts = time.Unix(unix, 0)
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return "", time.Time{}, err
	}
	var buf [64]byte
	for _, s := range signers {
		if anyMatches(sigs, s.appendSig(buf[:0], id, unix, body)) {
			return id, ts, nil
		}
	}
	return "", time.Time{}, ErrNoMatch
}

// checkTimestamp refuses a timestamp further than tolerance from now.
func checkTimestamp(ts, now time.Time, tolerance time.Duration) error {
	switch age := now.Sub(ts); {
	case age > tolerance:
		return fmt.Errorf("%w: signed %s ago, the tolerance is %s", ErrTooOld, age.Round(time.Second), tolerance)
	case age < -tolerance:
		return fmt.Errorf("%w: signed %s in the future, the tolerance is %s", ErrTooNew, (-age).Round(time.Second), tolerance)
	}
	return nil
}

// anyMatches reports whether one of the space-separated signatures in sigs is want, compared in
// constant time as the official libraries compare them: whole strings, "v1," included, so other
// schemes never match.
func anyMatches(sigs string, want []byte) bool {
	for sig := range strings.FieldsSeq(sigs) {
		if hmac.Equal([]byte(sig), want) {
			return true
		}
	}
	return false
}
