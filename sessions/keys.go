package sessions

// Redis keys of the relay, for prefix P:
//
//	P:{P:sess:<id>}:meta    HASH    the session (see meta)
//	P:{P:sess:<id>}:msgs    LIST    its messages
//	P:{P:sess:<id>}:resps   LIST    its responses
//	P:{P:sess:<id>}:idem    ZSET    its callbacks' Idempotency-Keys
//	P:relay:signing-secret  STRING  the generated signing secret
//	P:relay:token-key       STRING  the key callback tokens are derived from
//
// Every key of one session shares the hash tag {P:sess:<id>}, so the Lua scripts that touch them
// together run on one Cluster slot while sessions spread over the cluster. Every key starts with
// "P:" so an ACL pattern (~herald:*) or a SCAN by prefix finds it. A session's keys carry the
// session TTL, refreshed on every message and response.
type keys struct{ prefix string }

// tag is the start of one session's keys, holding their hash tag.
func (k keys) tag(sessionID string) string {
	return k.prefix + ":{" + k.prefix + ":sess:" + sessionID + "}"
}

// meta is a HASH: channel_id, created_at, updated_at (RFC 3339), nonce (the random part of the
// session's callback token), open ("1" once a caller gave its own response_url: no token needed).
func (k keys) meta(sessionID string) string { return k.tag(sessionID) + ":meta" }

// messages is a LIST of JSON messageRecord, oldest first, capped at Config.MaxMessages.
func (k keys) messages(sessionID string) string { return k.tag(sessionID) + ":msgs" }

// responses is a LIST of JSON responseRecord in the order received, capped at Config.MaxResponses.
func (k keys) responses(sessionID string) string { return k.tag(sessionID) + ":resps" }

// idempotency is a ZSET of SHA-256 hashes of the Idempotency-Key headers of the session's
// callbacks, scored by arrival time (Unix ms), capped at Config.MaxIdempotencyKeys newest.
func (k keys) idempotency(sessionID string) string { return k.tag(sessionID) + ":idem" }

// session returns the four keys of a session in the order the scripts take them.
func (k keys) session(sessionID string) []string {
	return []string{k.meta(sessionID), k.messages(sessionID), k.responses(sessionID), k.idempotency(sessionID)}
}

// signingSecret is a STRING: the generated relay signing secret (whsec_...), set once with SETNX
// and shared by every herald process. Unused when --signing-secret is given.
func (k keys) signingSecret() string { return k.prefix + ":relay:signing-secret" }

// tokenKey is a STRING: the random key (base64) callback tokens are derived from, set once with
// SETNX and shared by every herald process.
func (k keys) tokenKey() string { return k.prefix + ":relay:token-key" }
