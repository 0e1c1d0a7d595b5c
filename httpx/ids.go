package httpx

import "github.com/heraldhq/herald/ids"

// CheckID returns a 400 naming field when id is not a valid id (see ids.Valid).
func CheckID(field, id string) error {
	if id == "" {
		return Missing(field)
	}
	if !ids.Valid(id) {
		return Invalid(field, "%s must be %s", field, ids.Rule)
	}
	return nil
}
