package notifier

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Standard Webhooks header names (https://www.standardwebhooks.com/). Go canonicalises them on the
// wire; receivers match them case-insensitively.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret: "whsec_" followed by the base64 of the key.
const SecretPrefix = "whsec_"

// ErrBadSecret is returned (wrapped) for a secret that is not "whsec_<base64>". The error never
// repeats the secret.
var ErrBadSecret = errors.New("notifier: signing secret must be whsec_ followed by base64 (at least 16 bytes)")

// ErrSignature is wrapped by every Verify failure.
var ErrSignature = errors.New("notifier: webhook signature does not verify")

// secretKey decodes the HMAC key of a "whsec_<base64>" secret.
func secretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok || b64 == "" {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Tolerate unpadded and URL-safe encodings, which some secret generators produce.
		if key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
			if key, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
				return nil, ErrBadSecret
			}
		}
	}
	if len(key) < 16 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// NewSecret returns a fresh signing secret: "whsec_" + the base64 of 24 random bytes.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// CheckSecret reports whether secret is a usable signing secret ("" is: it means unsigned).
func CheckSecret(secret string) error {
	if secret == "" {
		return nil
	}
	_, err := secretKey(secret)
	return err
}

// Sign returns the Standard Webhooks signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for a
// message, keyed with the base64-decoded part of secret after "whsec_". ts is sent in seconds.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return sign(key, msgID, ts.Unix(), body), nil
}

func sign(key []byte, msgID string, unix int64, body []byte) string {
	return newSigner(key).sign(msgID, unix, body)
}

// signer signs with one key, reusing its HMAC states (an endpoint's config holds one per secret).
type signer struct {
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 with key
}

func newSigner(key []byte) *signer {
	s := &signer{key: key}
	s.macs.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

// sign is the package's sign with a pooled HMAC.
func (s *signer) sign(msgID string, unix int64, body []byte) string {
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	var pre [128]byte
	b := append(pre[:0], msgID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	m.Write(b)
	m.Write(body)
	var sum [sha256.Size]byte
	sig := "v1," + base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
	s.macs.Put(m)
	return sig
}

// signatureHeader returns the webhook-signature value for a message: one signature per signer,
// separated by spaces (the Standard Webhooks form for rotation). Nil signers are skipped.
func signatureHeader(msgID string, unix int64, body []byte, signers ...*signer) string {
	var sigs []string
	for _, s := range signers {
		if s != nil {
			sigs = append(sigs, s.sign(msgID, unix, body))
		}
	}
	return strings.Join(sigs, " ")
}

// Verify checks a signed request as a receiver would: the webhook-id, webhook-timestamp and
// webhook-signature headers, the timestamp within tolerance of now (default 5 minutes), and at
// least one v1 signature made with secret. It is the Go twin of the official libraries' verify.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	id, tsRaw, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s header", ErrSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not a unix time in seconds", ErrSignature, HeaderTimestamp)
	}
	if d := time.Since(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp is outside the %s tolerance", ErrSignature, tolerance)
	}
	want := []byte(sign(key, id, unix, body))
	for _, s := range strings.Fields(sigs) {
		if !strings.HasPrefix(s, "v1,") {
			continue
		}
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrSignature)
}
