package events

import "github.com/redis/go-redis/v9"

// The read-modify-write steps on an event, each one Lua script so that concurrent API calls and
// expansion workers (in this process or another) never see a half-written state. All keys of a
// script share the "{<prefix>:ev}" hash tag (see keys.go).

// acceptScript stores a new event unless its idempotency key was already used or the backlog is
// full, and numbers it: the next seq, in the order of acceptance (see order.go).
//
// KEYS[1] event HASH, KEYS[2] expand ZSET, KEYS[3] backlog-full flag, KEYS[4] the seq STRING,
// KEYS[5] the expanding ZSET, KEYS[6] (optional) the idempotency key's STRING.
// ARGV[1] event id, ARGV[2] now (Unix ms), ARGV[3] event retention (ms), ARGV[4] idempotency TTL
// (ms), ARGV[5] the idempotency record to store, ARGV[6] the bound on events awaiting expansion,
// ARGV[7..] the event's HASH fields and values.
// Returns {"ok"}; {"replay", record} when the key was used (nothing is written); {"full", ms}
// when new events are refused for about ms milliseconds (nothing is written).
var acceptScript = redis.NewScript(`
if #KEYS >= 6 then
  local rec = redis.call('GET', KEYS[6])
  if rec then return {'replay', rec} end
end
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then return {'full', tostring(ttl)} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {'full', '1000'} end
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[4], ARGV[2] .. '000') end
redis.call('INCR', KEYS[4])
local seq = redis.call('GET', KEYS[4]) -- as Redis writes it: Lua could print a number this large with an exponent
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'seq', seq, unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], seq, ARGV[1])
if #KEYS >= 6 then redis.call('SET', KEYS[6], ARGV[5], 'PX', ARGV[4]) end
return {'ok'}
`)

// progressScript records a finished batch and renews the lease, if the caller still holds it.
// With an empty cursor and a count of 0 it only renews.
//
// KEYS[1] expand ZSET, KEYS[2] event HASH, KEYS[3] backlog-full flag.
// ARGV[1] event id, ARGV[2] owner token, ARGV[3] lease end (Unix ms), ARGV[4] cursor (the last
// subscriber id done; "" keeps the saved one), ARGV[5] deliveries enqueued by the batch.
// Returns 1, or 0 when the lease was lost (another worker owns the event, or it is finished).
var progressScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'cursor', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'enqueued', ARGV[5])
  redis.call('DEL', KEYS[3])
end
return 1
`)

// finishScript marks events expanded and takes them off the queue, those whose lease the caller
// still holds, and reads the ordering watermark after them.
//
// KEYS[1] expand ZSET, KEYS[2] backlog-full flag, KEYS[3] the seq STRING, KEYS[4] the expanding
// ZSET.
// ARGV[1] owner token, ARGV[2] expanded_at (RFC 3339), ARGV[3] the event key of id "" (the key of
// event id is it followed by id), then pairs: event id, deliveries enqueued by its last batch.
// Returns {the watermark, then per event 1, or 0 when the lease was lost}.
var finishScript = redis.NewScript(watermarkLua + `
local out, enqueued = {0}, false
for i = 4, #ARGV, 2 do
  local id, ek = ARGV[i], ARGV[3] .. ARGV[i]
  if redis.call('HGET', ek, 'owner') == ARGV[1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[4], id)
    if tonumber(ARGV[i + 1]) > 0 then
      redis.call('HINCRBY', ek, 'enqueued', ARGV[i + 1])
      enqueued = true
    end
    redis.call('HSET', ek, 'status', 'expanded', 'expanded_at', ARGV[2])
    redis.call('HDEL', ek, 'owner')
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if enqueued then redis.call('DEL', KEYS[2]) end
out[1] = watermark(KEYS[3], KEYS[4])
return out
`)

// watermarkLua defines watermark(seq key, expanding key): the seq of the oldest event still
// being expanded, or the next seq to be handed out when none is (0 before the first event).
// Every event numbered below it has all its deliveries enqueued.
const watermarkLua = `
local function watermark(seqKey, expandingKey)
  local first = redis.call('ZRANGE', expandingKey, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return tonumber(redis.call('GET', seqKey) or '-1') + 1
end
`

// watermarkScript reads the ordering watermark (watermarkLua).
// KEYS[1] the seq STRING, KEYS[2] the expanding ZSET. Returns it.
var watermarkScript = redis.NewScript(watermarkLua + `
return watermark(KEYS[1], KEYS[2])
`)

// releaseScript gives up the lease on an event, to be claimed again at a given time: at once when
// a worker stops, later after a store error or when the engine's backlog is full. With a positive
// ARGV[4] it also raises the backlog-full flag for that long, so new events get 503 meanwhile.
//
// KEYS[1] expand ZSET, KEYS[2] event HASH, KEYS[3] backlog-full flag.
// ARGV[1] event id, ARGV[2] owner token, ARGV[3] when the event may be claimed again (Unix ms),
// ARGV[4] how long to raise the backlog-full flag (ms; 0 leaves it).
// Returns 1, or 0 when the lease was already lost.
var releaseScript = redis.NewScript(`
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[3], '1', 'PX', ARGV[4]) end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
redis.call('HDEL', KEYS[2], 'owner')
return 1
`)
