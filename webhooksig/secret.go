package webhooksig

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
)

// SecretPrefix starts every signing secret: "whsec_" followed by the base64 of the key.
const SecretPrefix = "whsec_"

// MinKeyLen is the shortest HMAC key a secret may hold, in bytes.
const MinKeyLen = 16

// newKeyLen is the length of the keys NewSecret makes, in bytes.
const newKeyLen = 24

// ErrBadSecret is returned for a secret that is not "whsec_<base64>" with a key of at least
// MinKeyLen bytes. The error never repeats the secret.
var ErrBadSecret = errors.New("webhooksig: signing secret must be whsec_ followed by base64 (at least 16 bytes)")

// NewSecret returns a fresh signing secret: "whsec_" + the base64 of 24 random bytes.
func NewSecret() string {
	var b [newKeyLen]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// ParseSecret returns the HMAC key of a "whsec_<base64>" secret. Standard base64 is expected;
// unpadded and URL-safe encodings, which some secret generators produce, are accepted too.
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok || b64 == "" {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw := strings.TrimRight(b64, "=")
		if key, err = base64.RawStdEncoding.DecodeString(raw); err != nil {
			if key, err = base64.RawURLEncoding.DecodeString(raw); err != nil {
				return nil, ErrBadSecret
			}
		}
	}
	if len(key) < MinKeyLen {
		return nil, ErrBadSecret
	}
	return key, nil
}

// CheckSecret reports whether secret is a usable signing secret; "" is, meaning unsigned.
func CheckSecret(secret string) error {
	if secret == "" {
		return nil
	}
	_, err := ParseSecret(secret)
	return err
}
