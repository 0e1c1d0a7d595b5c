// Package sink is `herald sink`: a local HTTP receiver for trying herald out and for tests.
//
// It prints every request readably (time, method, path, the headers of interest, the result of the
// Standard Webhooks signature check when given the secret, the JSON body pretty-printed) and
// answers it:
//
//   - a url_verification handshake (a JSON body with "type": "url_verification", on any path) with
//     {"challenge": ...}; with a verification token configured, a payload carrying another token is
//     answered 403, like the Django view of seed 002;
//   - POST /incoming as seed 000's channel server: it checks session_id, message and response_url
//     (400 "Missing required fields" otherwise), answers 200 {"success": true, "message":
//     "Response sent"}, then calls back response_url with {"session_id", "response_data": {"text",
//     "platform", "timestamp"}} in the background, with the incoming webhook-id as Idempotency-Key;
//   - anything else (the sessions server role, notifications) with 200 {"success": true}.
//
// Failure injection: a share of requests (FailRate) is answered with Status, and every answer can
// be delayed (Delay). Callbacks are bounded (MaxCallbacks) and owned: Close waits for them.
package sink
