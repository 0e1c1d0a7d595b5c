// Package verifier runs the url_verification handshake of seed 002 for subscribers: it POSTs
// {"token", "type": "url_verification", "challenge"} to the subscriber's URL and accepts a 2xx reply
// whose body is the challenge as plain text, as a JSON string (what the seed's Django REST view
// sends), as JSON {"challenge": ...} (Slack's form) or as a form body challenge=....
//
// Handshakes are queued by the subscribers store (on create, on a change of URL or token, and on
// POST /subscribers/{id}/verify) in a Redis sorted set. Service claims due entries with a lease, so
// two herald processes never run the same handshake and a crashed process's work comes back when
// its lease ends; pending handshakes survive a restart because the queue is in Redis. Each is
// tried up to three times (at once, after 2 s, after 5 s; configurable) with a 10 s timeout per
// try, through egress.NewClient so the operator's target rules hold at dial time. The result is
// recorded with subscribers.Store.FinishVerification, which drops it if the subscriber's URL or
// handshake request changed meanwhile. A failed try that will be retried shows its reason at once
// (subscribers.Store.NoteFailedTry): the subscriber stays pending, with last_verification_error
// set. A failure's reason is written for a person ("answered 403", "timed out after 10s",
// "connection refused", "target refused: ...") and carries no secret.
package verifier
