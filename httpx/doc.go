// Package httpx holds the HTTP conventions every herald route follows (contract: Conventions):
// JSON errors of the form {"error": {"code", "message", "field"}} with one rule from an error to
// its status (ErrorFor: a store that cannot serve is 503 with Retry-After, never 500), strict JSON
// request decoding with a body limit (413) and a content-type check (415), id validation, API-key
// auth with the loopback rule and a per-client throttle of wrong keys, per-caller rate limiting
// with X-RateLimit-* headers, panic recovery, request logging to the daemon's logger, request
// metrics by route template (RequestMetrics: never the raw path, so their cardinality is bounded by
// the routes), and requests that run to their end when the client half-closes (Detach). Packages
// that serve routes use these helpers and nothing else to talk HTTP, so every route behaves alike.
package httpx
