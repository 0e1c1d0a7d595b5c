package sessions

import "github.com/redis/go-redis/v9"

// The read-modify-writes of a session. Every script takes the session's four keys (keys.session:
// meta, messages, responses, idempotency), which share one hash tag. They use only commands the
// embedded miniredis also runs.

// ensureSession creates the session on its first message, or checks that an existing one belongs
// to the same channel, and refreshes its TTL. It runs before the message is enqueued, so a channel
// server that calls back at once finds the session.
//
// KEYS[1..4] the session's keys
// ARGV[1] channel id, ARGV[2] now (RFC 3339), ARGV[3] nonce to store when the session is new,
// ARGV[4] TTL in ms, ARGV[5] "1" when the caller gave its own response_url (callbacks need no token)
// Returns {"ok", nonce, "1" if created else "0"}, or {"conflict", channel id the session belongs to}.
var ensureSession = redis.NewScript(`
local ch = redis.call('HGET', KEYS[1], 'channel_id')
local created = 0
if not ch then
  redis.call('HSET', KEYS[1], 'channel_id', ARGV[1], 'created_at', ARGV[2], 'nonce', ARGV[3])
  created = 1
elseif ch ~= ARGV[1] then
  return {'conflict', ch}
end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'open', '1') end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return {'ok', redis.call('HGET', KEYS[1], 'nonce'), tostring(created)}
`)

// appendMessage records a message once it is enqueued and refreshes the TTL. When the session
// vanished meanwhile (it expired, or a failed first message of a concurrent request removed it),
// it is recreated with the same nonce, so the token already sent stays valid.
//
// KEYS[1..4] the session's keys
// ARGV[1] messageRecord JSON, ARGV[2] now (RFC 3339), ARGV[3] TTL in ms, ARGV[4] messages kept,
// ARGV[5] channel id, ARGV[6] nonce, ARGV[7] "1" when the caller gave its own response_url
// Returns 1, or 2 when the session had meanwhile been recreated with another nonce (the token in
// the message sent is then no longer valid).
var appendMessage = redis.NewScript(`
local res = 1
local nonce = redis.call('HGET', KEYS[1], 'nonce')
if not nonce then
  redis.call('HSET', KEYS[1], 'channel_id', ARGV[5], 'created_at', ARGV[2], 'nonce', ARGV[6])
elseif nonce ~= ARGV[6] then
  res = 2
end
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'open', '1') end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return res
`)

// dropNewSession undoes ensureSession when the first message of a session could not be enqueued:
// it deletes the session if it still has the nonce this request created it with and holds no
// message and no response.
//
// KEYS[1..4] the session's keys
// ARGV[1] the nonce the failed request created the session with
// Returns 1 when deleted, else 0.
var dropNewSession = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'nonce') == ARGV[1] and redis.call('LLEN', KEYS[2]) == 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return 1
end
return 0
`)

// recordResponse stores a callback's response unless its Idempotency-Key was already seen for the
// session, and refreshes the TTL.
//
// KEYS[1..4] the session's keys
// ARGV[1] responseRecord JSON, ARGV[2] SHA-256 of the Idempotency-Key (hex) or "",
// ARGV[3] now (RFC 3339), ARGV[4] now (Unix ms), ARGV[5] TTL in ms, ARGV[6] responses kept,
// ARGV[7] idempotency keys kept
// Returns 1 recorded, 0 duplicate (nothing written), -1 no such session (never relayed or expired).
var recordResponse = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[2] ~= '' then
  if redis.call('ZSCORE', KEYS[4], ARGV[2]) then return 0 end
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[7]) - 1)
end
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 1
`)

// unrecordResponse undoes recordResponse when the response could not be enqueued for forwarding,
// so the channel server's retry is accepted again.
//
// KEYS[1..4] the session's keys
// ARGV[1] the responseRecord JSON recordResponse stored, ARGV[2] the idempotency key hash or ""
// Returns the number of responses removed (0 or 1).
var unrecordResponse = redis.NewScript(`
local n = redis.call('LREM', KEYS[3], -1, ARGV[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[4], ARGV[2]) end
return n
`)
