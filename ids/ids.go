// Package ids makes and checks herald's ids: "evt_1x9...", "sub_...", caller-chosen channel ids.
// It imports only the standard library, so that a receiver or a tool can check ids without the
// daemon's dependencies.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// MaxLen is the longest id herald accepts.
const MaxLen = 128

// Rule says what Valid accepts, for error messages: "1 to 128 letters, digits, ...".
const Rule = "1 to 128 letters, digits, '-', '_', '.' or ':'"

// Valid reports whether s is a valid id: 1 to MaxLen letters, digits, '-', '_', '.' or ':'. Such
// ids are safe in a URL path and a Redis key.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':'
}

// encoding is Crockford-like base32 in lower case: no i, l, o or u, so ids read aloud well.
var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// randomLen is the length of the random part of New's ids: 16 bytes in base32.
const randomLen = 26

// New returns a random id with the given prefix, e.g. New("evt") = "evt_1x9...": 128 random bits
// in 26 lowercase characters after the prefix and an underscore.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, len(prefix)+1+randomLen)
	n := copy(out, prefix)
	out[n] = '_'
	encoding.Encode(out[n+1:], b[:])
	return string(out)
}

// Deriver makes ids from other ids, e.g. an engine endpoint id "chan:<channel id>" from a channel
// id. A valid id always gives a valid id: prefix + id while that fits in MaxLen, else hashed +
// the hex SHA-256 of the id (64 characters). The same id always gives the same result, so ids
// derived for idempotency stay idempotent; and because neither prefix starts with the other, a
// plain form never equals a hashed one, so two ids never give one derived id, however they are
// chosen.
type Deriver struct{ prefix, hashed string }

// NewDeriver returns the Deriver with those prefixes. It panics when they could collide (one
// starts with the other), are not valid ids, or leave no room for the hash: call it once, for a
// package variable, so that any test finds a wrong pair.
func NewDeriver(prefix, hashed string) Deriver {
	if strings.HasPrefix(hashed, prefix) || strings.HasPrefix(prefix, hashed) ||
		!Valid(prefix) || !Valid(hashed) || len(hashed)+hex.EncodedLen(sha256.Size) > MaxLen {
		panic("ids: NewDeriver(" + prefix + ", " + hashed + "): the prefixes may collide or leave no room")
	}
	return Deriver{prefix: prefix, hashed: hashed}
}

// ID returns the id derived from id.
func (d Deriver) ID(id string) string {
	if len(d.prefix)+len(id) <= MaxLen {
		return d.prefix + id
	}
	h := sha256.Sum256([]byte(id))
	return d.hashed + hex.EncodeToString(h[:])
}
