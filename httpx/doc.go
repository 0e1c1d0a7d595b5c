// Package httpx holds the HTTP conventions every herald route follows (contract: Conventions):
// JSON errors of the form {"error": {"code", "message", "field"}}, strict JSON request decoding
// with a body limit (413) and a content-type check (415), id validation, API-key auth with the
// loopback rule, per-caller rate limiting with X-RateLimit-* headers, panic recovery and request
// logging. Packages that serve routes use these helpers and nothing else to talk HTTP, so every
// route behaves alike.
package httpx
