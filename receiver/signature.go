package receiver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

// Standard Webhooks header names (webhooksig's). Go canonicalises them on the wire; http.Header
// finds them in any case.
const (
	HeaderID        = webhooksig.HeaderID
	HeaderTimestamp = webhooksig.HeaderTimestamp
	HeaderSignature = webhooksig.HeaderSignature
)

// Limits and defaults: webhooksig's, which signs herald's requests.
const (
	// SecretPrefix starts every signing secret: "whsec_" followed by the base64 of the HMAC key.
	SecretPrefix = webhooksig.SecretPrefix
	// MinKeyLen is the shortest HMAC key a secret may hold, in bytes (herald refuses shorter ones).
	MinKeyLen = webhooksig.MinKeyLen
	// DefaultTolerance is how far a request's webhook-timestamp may be from now, either way: the
	// official Standard Webhooks libraries' window against replays.
	DefaultTolerance = webhooksig.DefaultTolerance
)

// Errors. Every refusal of a request's signature headers wraps ErrSignature, and one of the more
// precise errors below it (webhooksig's own, which verifies); none of them ever repeats a secret.
var (
	// ErrBadSecret: a secret is not "whsec_" followed by the base64 of at least MinKeyLen bytes,
	// or no secret was given.
	ErrBadSecret = errors.New("receiver: signing secret must be whsec_ followed by base64 of at least 16 bytes")
	// ErrSignature: the request is not proven to come from the holder of a secret.
	ErrSignature = webhooksig.ErrSignature
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature is missing (the error names it).
	ErrMissingHeader = webhooksig.ErrMissingHeader
	// ErrBadTimestamp: webhook-timestamp is not a whole number of unix seconds.
	ErrBadTimestamp = webhooksig.ErrBadTimestamp
	// ErrTooOld: webhook-timestamp is further in the past than the tolerance (a replay, or a clock off).
	ErrTooOld = webhooksig.ErrTooOld
	// ErrTooNew: webhook-timestamp is further in the future than the tolerance (a clock off).
	ErrTooNew = webhooksig.ErrTooNew
	// ErrNoMatch: no "v1," signature in webhook-signature was made with a secret of the Verifier
	// (a wrong secret, or a body or id changed on the way).
	ErrNoMatch = webhooksig.ErrNoMatch
)

// Delivery is what a verified request's headers say about it.
type Delivery struct {
	// ID is the webhook-id header: herald's delivery id, the same on every retry of one delivery.
	// herald delivers at least once: de-duplicate on it.
	ID string
	// Timestamp is the webhook-timestamp header: when this try was signed.
	Timestamp time.Time
}

// signers returns a signer per secret (herald's own webhooksig, which imports only the standard
// library, parses and signs); at least one secret is needed. Standard base64 is expected;
// unpadded and URL-safe encodings, which some secret generators produce, are accepted too, as
// herald accepts them.
func signers(secrets []string) ([]*webhooksig.Signer, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w (none given)", ErrBadSecret)
	}
	out := make([]*webhooksig.Signer, len(secrets))
	for i, s := range secrets {
		key, err := webhooksig.ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%w (secret %d of %d)", ErrBadSecret, i+1, len(secrets))
		}
		out[i] = webhooksig.NewSigner(key)
	}
	return out, nil
}

// Sign returns the webhook-signature value of a message sent at ts: one "v1," signature per
// secret, separated by spaces (the form a sender uses while it rotates its secret). Use it to sign
// requests in your tests, or to send Standard Webhooks yourself.
func Sign(id string, ts time.Time, body []byte, secrets ...string) (string, error) {
	ss, err := signers(secrets)
	if err != nil {
		return "", err
	}
	return webhooksig.Header(id, ts.Unix(), body, ss...), nil
}

// SetHeaders sets the three Standard Webhooks headers of a message sent at ts on h, signed with
// every secret.
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, secrets ...string) error {
	sig, err := Sign(id, ts, body, secrets...)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Verifier checks the signatures of requests against one or more secrets. It is safe for
// concurrent use.
type Verifier struct {
	signers   []*webhooksig.Signer
	tolerance time.Duration
}

// NewVerifier returns a Verifier that accepts a request signed with any of secrets (give the old
// and the new one while you move to a new secret) whose timestamp is within tolerance of now
// (<= 0: DefaultTolerance). It returns an error wrapping ErrBadSecret when a secret is malformed
// or none is given; the error says which one by position, never by value.
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	ss, err := signers(secrets)
	if err != nil {
		return nil, err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	return &Verifier{signers: ss, tolerance: tolerance}, nil
}

// Verify checks a request's webhook-id, webhook-timestamp and webhook-signature headers against
// its raw body, as the official Standard Webhooks libraries do: the timestamp within the
// tolerance of now, and at least one of the space-separated "v1," signatures made with one of the
// Verifier's secrets (any match passes; signatures of other schemes are skipped). body must be the
// bytes received, before any decoding. The error wraps ErrSignature and a more precise error.
func (v *Verifier) Verify(h http.Header, body []byte) (Delivery, error) {
	return v.VerifyAt(h, body, time.Now())
}

// VerifyAt is Verify with now as the current time.
func (v *Verifier) VerifyAt(h http.Header, body []byte, now time.Time) (Delivery, error) {
	id, ts, err := webhooksig.VerifyAny(h, body, v.tolerance, now, v.signers...)
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{ID: id, Timestamp: ts}, nil
}

// Verify is the one-off form of Verifier.Verify with one secret and DefaultTolerance. Keep a
// Verifier (or a Handler) to check many requests.
func Verify(secret string, h http.Header, body []byte) (Delivery, error) {
	v, err := NewVerifier([]string{secret}, 0)
	if err != nil {
		return Delivery{}, err
	}
	return v.Verify(h, body)
}
