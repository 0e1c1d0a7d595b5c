package httpx

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// MaxIDLen is the longest id herald accepts.
const MaxIDLen = 128

// ValidID reports whether s is a valid id: 1 to 128 letters, digits, '-', '_', '.' or ':'. Such
// ids are safe in a URL path and a Redis key.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// CheckID returns a 400 naming field when id is not a valid id.
func CheckID(field, id string) error {
	if id == "" {
		return Missing(field)
	}
	if !ValidID(id) {
		return Invalid(field, "%s must be 1 to %d letters, digits, '-', '_', '.' or ':'", field, MaxIDLen)
	}
	return nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a random id with the given prefix, e.g. NewID("evt") = "evt_1x9...": 130 bits of
// randomness in 26 lowercase characters.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var sb strings.Builder
	sb.WriteString(prefix)
	sb.WriteByte('_')
	sb.WriteString(idEncoding.EncodeToString(b[:]))
	return sb.String()
}
