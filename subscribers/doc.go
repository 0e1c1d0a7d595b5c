// Package subscribers keeps herald's subscribers — webhook endpoints that want notifications about
// channels (contract: Subscribers and verification) — in Redis, serves the /subscribers API, finds
// the subscribers an event goes to (Store.Targets, Store.CountMatch), and disables subscribers
// whose endpoints are gone or dead (Health).
//
// # Lifecycle
//
// A subscriber is created pending, and its url_verification handshake is queued in the same
// write. The verifier package runs the handshake and reports with Store.FinishVerification:
// verified, or failed with a reason; a failed try that will be retried shows its reason at once
// (Store.NoteFailedTry) while the subscriber stays pending. A change of URL or token, POST /subscribers/{id}/verify, and
// any update of a disabled subscriber send it back to pending (verified: false) with a new
// handshake request; each request has a generation number, and a result applies only to the
// latest request for the same URL, so a slow handshake of an old URL never marks a new one
// verified. Only verified subscribers that are not disabled are active: only they match.
//
// Health disables a subscriber whose endpoint answers 410 Gone, or whose delivery tries have all
// failed for DisableAfter (24 h by default) since the last success, and then its engine endpoint
// (DisableEndpoint): its pending deliveries end at once as failed (endpoint_disabled), wherever
// they wait, and nothing more is sent to it. The engine disables the endpoint itself in the step
// that records the 410 (Endpoint sets DisableOnGone), so the delivery that try's end lets go is
// not sent while Health catches up. A disabled subscriber's endpoint stays disabled (a rotated
// secret or a PATCH registers it so) until its new handshake passes and the verifier registers
// it enabled; its ended deliveries can then be replayed. The first failure's time is
// kept per subscriber in one hash; a success deletes it. Health.Observe, called from the engine's
// workers, never waits for Redis: it merges the outcome into one pending entry per subscriber,
// and Health's own goroutine (Start, Stop) writes them in batches, one HDEL for the successes and
// one script for the failures, so a fan-out does not cost a command per delivery.
//
// Each subscriber is also an endpoint of the delivery engine, "sub:<id>" (EndpointID; a hash for
// an id too long for that). The API registers it with PutEndpoint before it stores a change, and
// removes it on delete, which ends its pending deliveries (endpoint_deleted). The API shows the
// endpoint's health as the engine records it (notifier.Engine.Health, read for a whole page at
// once) under "health", and its breaker as breaker_state.
//
// # Storage
//
// A subscriber's JSON document sits in one hash and its version in another; every change is a
// compare-and-swap on the version in a Lua script that also moves the subscriber between the
// match indexes, the verification queue and the failure record. The match indexes are sorted sets
// of ids (score 0, read with ZRANGEBYLEX) that hold only active subscribers: one per channel id
// (subscribers filtering on channel ids), one per tag (subscribers filtering on tags but not ids),
// and one for subscribers with no channel filter. Targets merges the channel's id set, its tags'
// sets and the no-filter set by id from a cursor, then filters the candidates exactly, so fan-out
// reads only candidates and pages by id correctly whatever happens between pages.
//
// # Fan-out without documents
//
// The same script keeps a compact fan-out record of every active subscriber (token and filters,
// length-prefixed; fan.go) in one hash, so the candidates are filtered without loading their JSON
// documents. Targets pages through the matching subscribers' ids and tokens only (what a
// notification needs). CountMatch counts them for the 202 of a notify call: a script that changes
// who is active or what a fan-out record says increments a generation counter and drops the
// cached counts, and a count is cached per generation and channel signature (id, tags,
// chat_type, event type) only when the generation did not move while it was made. A repeated
// notify on a channel costs one round trip; a fresh count reads ids and fan-out records, about
// 1,000 per round trip. A candidate without a record (stored before records existed) is judged by
// its document; its next write gives it a record.
//
// Every key carries the hash tag {<prefix>:subs} and so lives on one Cluster slot. That is what
// makes the scripts Cluster-safe: the index keys a write touches are derived from the document
// (its channel ids and tags, before and after), and a script may only touch keys of one slot. The
// price is that all subscriber data lives on one shard; subscribers are few and small next to
// deliveries, which the engine spreads out.
//
// Secrets: the signing secret and the verification token are shown by GET /subscribers/{id}, by
// the answers to create and rotate-secret, and never in lists or logs.
package subscribers
