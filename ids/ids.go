// Package ids makes and checks herald's ids: "evt_1x9...", "sub_...", caller-chosen channel ids.
// It imports only the standard library, so that a receiver or a tool can check ids without the
// daemon's dependencies.
package ids

import (
	"crypto/rand"
	"encoding/base32"
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
