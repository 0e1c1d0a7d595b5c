package httpx

import "github.com/heraldhq/herald/redisx"

// IsUnavailable reports whether err means the store could not serve the request now (it cannot be
// reached, timed out, or answered LOADING, READONLY and the like), as opposed to a bug. Such
// requests are answered 503 with Retry-After, so clients retry them. It is redisx.IsTransient:
// the API and the delivery engine share one rule.
func IsUnavailable(err error) bool { return redisx.IsTransient(err) }
