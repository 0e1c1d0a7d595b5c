package httpx

import "github.com/heraldhq/herald/ids"

// MaxIDLen is the longest id herald accepts: ids.MaxLen, kept for callers not yet moved to ids.
const MaxIDLen = ids.MaxLen

// ValidID forwards to ids.Valid, for callers not yet moved to ids.
func ValidID(s string) bool { return ids.Valid(s) }

// CheckID returns a 400 naming field when id is not a valid id (see ids.Valid).
func CheckID(field, id string) error {
	if id == "" {
		return Missing(field)
	}
	if !ids.Valid(id) {
		return Invalid(field, "%s must be 1 to %d letters, digits, '-', '_', '.' or ':'", field, ids.MaxLen)
	}
	return nil
}

// NewID forwards to ids.New, for callers not yet moved to ids.
func NewID(prefix string) string { return ids.New(prefix) }
