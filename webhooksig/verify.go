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

// ErrSignature is wrapped by every verification failure of a well-formed secret.
var ErrSignature = errors.New("webhooksig: webhook signature does not verify")

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
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, tsRaw, sigs := header.Get(canonicalID), header.Get(canonicalTimestamp), header.Get(canonicalSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s header", ErrSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not a unix time in seconds", ErrSignature, HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp is outside the %s tolerance", ErrSignature, tolerance)
	}
	var buf [64]byte
	want := s.appendSig(buf[:0], id, unix, body)
	if !anyMatches(sigs, want) {
		return fmt.Errorf("%w: no v1 signature matches", ErrSignature)
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
