// Package sessions is herald's message relay (seed 000, sections 1, 5 and 6; contract: "Message
// relay and callbacks").
//
// A backend POSTs /channel/message with {"channel_id", "session_id", "message", "response_url"}.
// The relay records the message in its session and enqueues {"session_id", "message",
// "response_url"} for the channel's endpoint_url through the delivery engine (endpoint
// "chan:<channel id>", or a hash of a channel id too long for that; one ordered line per
// session), answering 202 once the delivery is durable. The channel server calls back
// response_url with {"session_id", "response_data"}: POST /webhook-response stores the response
// in the session and, when a sessions server is configured, enqueues {"session_id",
// "channel_id", "response_data", "received_at"} for it through the engine
// (endpoint "sessions", one ordered line per session, so a sessions server that is down gets every
// response later, in the order herald received them). GET /sessions/{id} shows the session: its
// messages with their delivery status (and, while pending, why each waits), its responses with
// their forward's status.
//
// # Sessions in Redis
//
// A session is four keys sharing the hash tag {<prefix>:sess:<id>} (see keys.go): its metadata,
// its messages, its responses and its callbacks' Idempotency-Keys. Every change is one Lua script
// (scripts.go). A session expires after Config.TTL (--session-ttl) without a message or a
// response; a callback for an expired session is 404. The newest MaxMessages messages and
// MaxResponses responses are kept.
//
// # Callback tokens
//
// When the caller gives no response_url, herald makes one: <public URL>/webhook-response?token=T.
// T is HMAC-SHA256(token key, session id, nonce), where the token key is random, generated once and
// shared by every herald process through Redis, and the nonce is random per session. No token is
// stored; a callback's token is recomputed and compared with hmac.Equal. Such a session's callbacks
// need the token (403 when it is missing or wrong), so nobody can inject responses by guessing
// session ids. When the caller gives its own response_url, it has opted out: that session's
// callbacks need no token. Tokens are never logged (the request log leaves query strings out) and
// never shown by GET /sessions/{id}.
//
// # Idempotency
//
// A callback repeating an Idempotency-Key header already seen for its session is answered 200
// {"success": true, "duplicate": true} and neither stored nor forwarded again. The forward's
// delivery id is derived from the session and the key, so the engine also enqueues it only once.
// herald sink sends the incoming webhook-id as the key, so a message re-delivered by herald
// produces its response once.
//
// # Signatures: how a channel server (or sessions server) verifies herald
//
// Relayed messages and forwarded callbacks are signed the Standard Webhooks way with the relay
// signing secret: --signing-secret (HERALD_SIGNING_SECRET) when given, otherwise a whsec_ secret
// generated on first start and kept in Redis at <prefix>:relay:signing-secret (read it with
// `redis-cli GET herald:relay:signing-secret`; herald logs that it generated one, never the value).
// Each request carries
//
//	webhook-id:        the delivery id, the same on every retry (use it to drop duplicates)
//	webhook-timestamp: Unix seconds
//	webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
// where key is the base64-decoded part of the secret after "whsec_". A receiver recomputes the
// HMAC over the raw body, compares in constant time, and refuses timestamps more than five minutes
// off. With the official libraries:
//
//	# Python: pip install standardwebhooks
//	from standardwebhooks.webhooks import Webhook
//	Webhook(SECRET).verify(request.get_data(), dict(request.headers))  # raises on a bad signature
//
//	// Go, with herald's own package:
//	err := webhooksig.Verify(secret, r.Header, body, 5*time.Minute)
//
// `herald sink --secret whsec_...` prints the check's result for every request it receives.
package sessions
