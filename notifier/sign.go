package notifier

import (
	"net/http"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

// Signing lives in package webhooksig, which imports only the standard library; this file keeps
// the engine's names for it. The exported identifiers below forward to webhooksig and are kept for
// callers not yet moved there: new code should use webhooksig.

// Standard Webhooks header names: webhooksig.HeaderID, HeaderTimestamp and HeaderSignature.
const (
	HeaderID        = webhooksig.HeaderID
	HeaderTimestamp = webhooksig.HeaderTimestamp
	HeaderSignature = webhooksig.HeaderSignature
)

// SecretPrefix is webhooksig.SecretPrefix: "whsec_".
const SecretPrefix = webhooksig.SecretPrefix

// ErrBadSecret is webhooksig.ErrBadSecret (the same value, so errors.Is matches either name).
var ErrBadSecret = webhooksig.ErrBadSecret

// ErrSignature is webhooksig.ErrSignature (the same value).
var ErrSignature = webhooksig.ErrSignature

// NewSecret forwards to webhooksig.NewSecret.
func NewSecret() string { return webhooksig.NewSecret() }

// CheckSecret forwards to webhooksig.CheckSecret.
func CheckSecret(secret string) error { return webhooksig.CheckSecret(secret) }

// Sign forwards to webhooksig.Sign.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	return webhooksig.Sign(secret, msgID, ts, body)
}

// Verify forwards to webhooksig.Verify.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return webhooksig.Verify(secret, header, body, tolerance)
}

// secretKey decodes the HMAC key of a "whsec_<base64>" secret.
func secretKey(secret string) ([]byte, error) { return webhooksig.ParseSecret(secret) }

// signer signs with one key, reusing its HMAC states (an endpoint's config holds one per secret).
type signer = webhooksig.Signer

func newSigner(key []byte) *signer { return webhooksig.NewSigner(key) }

// signatureHeader returns the webhook-signature value for a message: one signature per signer,
// separated by spaces (the Standard Webhooks form for rotation). Nil signers are skipped.
func signatureHeader(msgID string, unix int64, body []byte, signers ...*signer) string {
	return webhooksig.Header(msgID, unix, body, signers...)
}
