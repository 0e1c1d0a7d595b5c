package notifier

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The engine's Lua scripts. Every state change of a delivery is one script (doc.go's table names
// which), so a crash between two Redis calls can never lose or duplicate a delivery.
//
// Conventions for all scripts:
//   - KEYS[1] is the stream key: it routes the call to the shard's Cluster slot. ARGV[1] is the
//     shard's key prefix "P:{T}:"; the other keys are built from it by the key functions of keys.go
//     (recordKey(id), DELAYED_KEY, ...), because some are only known inside the script (the next
//     delivery of an ordering line, the next waiter of an endpoint). All share the hash tag.
//   - The names of states, verdicts and fields are the constants of state.go (ST_PENDING,
//     BEGIN_GO, F_STATUS, ...); the arguments of each script are built by one typed builder in
//     args.go, whose field order is the order the script reads.
//   - A pending delivery is in exactly one place: the stream (its record's F_ENTRY names the
//     entry), the delayed set, its endpoint's waiter list, behind the head of its ordering line,
//     or in its line's gate. Scripts that act on a stream entry first check that the record still
//     names that entry and is pending; a stale entry (a duplicate after a takeover) is
//     acknowledged and dropped, so a delivery is never finished twice.

// luaLib is prepended to every script: the prefix, the key functions, the names, the item sizes
// and the helpers the scripts share.
var luaLib = "local P = ARGV[1]\n" + luaKeys() + luaNames() +
	"local ENQUEUE_ITEM, BEGIN_ITEM, FINISH_ITEM, HEALTH_ITEM = " + strconv.Itoa(enqueueItemLen) + ", " +
	strconv.Itoa(beginItemLen) + ", " + strconv.Itoa(finishItemLen) + ", " + strconv.Itoa(healthItemLen) + "\n" + `
-- calls f(i, values...) for n items of size values each, the first value at ARGV[first]
local function eachItem(first, size, n, f)
  for i = 1, n do
    local b = first + (i - 1) * size
    f(i, unpack(ARGV, b, b + size - 1))
  end
end

-- add delivery id of endpoint ep to the stream; returns the entry id
local function addEntry(id, ep)
  return redis.call('XADD', STREAM_KEY, '*', ENTRY_DELIVERY, id, ENTRY_ENDPOINT, ep)
end

-- put delivery id into the stream and remember the entry in its record (ep: its endpoint, when
-- the caller knows it); it no longer waits for anything
local function makeLive(id, now, ep)
  local rk = recordKey(id)
  if not ep then
    ep = redis.call('HGET', rk, F_ENDPOINT)
    if not ep then return end
  end
  redis.call('HSET', rk, F_ENTRY, addEntry(id, ep), F_NEXT, now, F_WAIT, '')
end

-- the endpoints' generation: a number bumped by every change to an endpoint, so that engines may
-- cache endpoints until it moves. Seeded from the clock (now ms * 1000) when the key is missing
-- (first use, or Redis lost its data), so it never comes back to a value an engine has cached.
local function endpointGen(now)
  local g = redis.call('GET', EPGEN_KEY)
  if not g then
    g = string.format('%d', now) .. '000' -- a string: Lua would print the number as 1.7e+15
    redis.call('SET', EPGEN_KEY, g)
  end
  return tonumber(g)
end
local function bumpEndpointGen(now)
  endpointGen(now)
  return redis.call('INCR', EPGEN_KEY)
end

-- mark endpoint ep disabled, unless it is already or its field when is unset ('' or '0': EP_URL,
-- it exists; EP_DISABLE_ON_GONE, it asks to be on a 410); true when this call disabled it. A change
-- to an endpoint, it bumps the endpoints' generation.
local function disableEndpoint(ep, when, now)
  local ek = endpointKey(ep)
  local e = redis.call('HMGET', ek, when, EP_DISABLED)
  if not e[1] or e[1] == '' or e[1] == '0' or e[2] == '1' then return false end
  redis.call('HSET', ek, EP_DISABLED, '1')
  bumpEndpointGen(now)
  return true
end

-- a < b for stream entry ids "ms-seq"
local function streamIDLess(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

-- acknowledge a stream entry: it leaves the group's pending list. The entry itself stays in the
-- stream until trimScript trims the stream up to the oldest entry still needed (deleting each
-- entry as it is acknowledged cost Redis more than the rest of a finish)
local function ack(entry)
  redis.call('XACK', STREAM_KEY, GROUP, entry)
end

-- anyWaiting: does any endpoint have deliveries waiting for an in-flight slot? Asked once per
-- script call (it is rare), then per endpoint only when one has.
local anyWaiting = nil
-- free the in-flight lease entry of endpoint ep and wake the next waiter, if any
local function release(ep, entry, now)
  redis.call('ZREM', inflightKey(ep), entry)
  if anyWaiting == nil then anyWaiting = redis.call('SCARD', WAITING_KEY) > 0 end
  if not anyWaiting or redis.call('SISMEMBER', WAITING_KEY, ep) == 0 then return end
  local wk = waitersKey(ep)
  local w = redis.call('LPOP', wk)
  if w then makeLive(w, now) end
  if redis.call('LLEN', wk) == 0 then redis.call('SREM', WAITING_KEY, ep) end
end

-- Index writes are gathered over a script call and written at its end (flushIndexes), one ZADD
-- per index key: a fan-out batch adds one entry per delivery to the index of all and to its
-- event's, which then cost a command per call, not per delivery. An entry older than horizon ms
-- is pruned now and then: when an added id's last byte is a multiple of 16 (ids end in random
-- characters), so the cost is spread thin. A per-subscriber, per-event or per-endpoint index
-- (ttl true) also expires a horizon after its last entry.
local indexBatch, indexOrder, indexNow, indexHorizon = {}, {}, 0, 0
local function index(key, score, id, now, horizon, ttl)
  local b = indexBatch[key]
  if not b then
    b = {members = {}, ttl = ttl, prune = false}
    indexBatch[key] = b
    indexOrder[#indexOrder + 1] = key
  end
  b.members[#b.members + 1] = score
  b.members[#b.members + 1] = id
  if string.byte(id, -1) % 16 == 0 then b.prune = true end
  indexNow, indexHorizon = now, horizon
end
local function flushIndexes()
  for _, key in ipairs(indexOrder) do
    local b = indexBatch[key]
    redis.call('ZADD', key, unpack(b.members))
    if b.ttl then redis.call('PEXPIRE', key, indexHorizon) end
    if b.prune then redis.call('ZREMRANGEBYSCORE', key, '-inf', indexNow - indexHorizon) end
  end
  indexBatch, indexOrder = {}, {}
end

-- a delivery (re)accepted at now goes into the list indexes: all, its endpoint's, subscriber's
-- and event's ('' or false: none). bySub false: the engine finds a subscriber's deliveries
-- through its endpoint's index (Config.SubscriberEndpoint), so the subscriber's is not written
local function indexAccepted(id, ep, sub, evt, now, horizon, bySub)
  index(ALL_INDEX_KEY, now, id, now, horizon)
  index(endpointIndexKey(ep), now, id, now, horizon, true)
  if bySub and sub and sub ~= '' then index(subscriberIndexKey(sub), now, id, now, horizon, true) end
  if evt and evt ~= '' then index(eventIndexKey(evt), now, id, now, horizon, true) end
end

-- failed deliveries have an index of their own (pending and delivered ones are found through
-- the index of all): keep it in step when a delivery moves from status old to new
local function setStatus(id, old, new, score, now, horizon)
  if old == ST_FAILED then redis.call('ZREM', FAILED_INDEX_KEY, id) end
  if new == ST_FAILED then index(FAILED_INDEX_KEY, score, id, now, horizon) end
end

-- keep the index of gated lines in step with the gate gk of line: its smallest seq, or none
local function indexGate(line, gk)
  local first = redis.call('ZRANGE', gk, 0, 0, 'WITHSCORES')
  if first[2] then redis.call('ZADD', GATED_KEY, first[2], line) else redis.call('ZREM', GATED_KEY, line) end
end

-- a finished delivery leaves its ordering line; the next one in line goes live. One that never
-- got past the line's gate (finished while gated) leaves the gate.
local function advanceLine(line, id, now)
  if line == nil or line == '' then return end
  local lk = lineKey(line)
  if redis.call('LREM', lk, 1, id) == 0 then
    local gk = gateKey(line)
    if redis.call('ZREM', gk, id) == 1 then indexGate(line, gk) end
    return
  end
  local nxt = redis.call('LINDEX', lk, 0)
  if nxt then makeLive(nxt, now) end
end

-- the shard's watermark (raiseWatermarkScript), read once per script call
local shardWatermark = nil
local function watermark()
  if not shardWatermark then shardWatermark = tonumber(redis.call('GET', WATERMARK_KEY) or '0') end
  return shardWatermark
end

-- join a delivery's ordering line, if it has one: true when it heads the line (or has none),
-- and so is live. A delivery with a seq (> 0) past the shard's watermark waits in the line's
-- gate instead, until raiseWatermarkScript lets it in, in seq order: deliveries of events
-- accepted earlier may still be on their way.
local function joinLine(id, line, seq)
  if not line or line == '' then return true end
  if seq and seq ~= '0' and tonumber(seq) > watermark() then
    redis.call('ZADD', gateKey(line), seq, id)
    redis.call('ZADD', GATED_KEY, 'LT', seq, line)
    return false
  end
  return redis.call('RPUSH', lineKey(line), id) == 1
end

-- deliveries finalized by this script call: the backlog counter drops by that many once, at the
-- end (flushBacklog), rather than once per delivery
local finalized = 0
local function flushBacklog()
  if finalized > 0 and redis.call('DECRBY', BACKLOG_KEY, finalized) < 0 then redis.call('SET', BACKLOG_KEY, 0) end
end

-- finish a pending delivery as delivered or failed (no stream entry or lease left to handle).
-- line and accepted are the record's; tries and attempts nil when unchanged. The caller calls
-- flushBacklog before it returns.
local function finalize(id, status, reason, now, retention, horizon, line, accepted, tries, attempts)
  local rk = recordKey(id)
  if tries then
    redis.call('HSET', rk, F_STATUS, status, F_DEAD_REASON, reason, F_ENTRY, '', F_NEXT, '', F_FINISHED, now,
      F_TRIES, tries, F_ATTEMPTS, attempts)
  else
    redis.call('HSET', rk, F_STATUS, status, F_DEAD_REASON, reason, F_ENTRY, '', F_NEXT, '', F_FINISHED, now)
  end
  setStatus(id, ST_PENDING, status, tonumber(accepted) or now, now, horizon)
  finalized = finalized + 1
  redis.call('PEXPIRE', rk, retention)
  advanceLine(line, id, now)
end
`

// script builds one of the engine's scripts: luaLib, then body.
func script(body string) *redis.Script { return redis.NewScript(luaLib + body) }

// enqueueScript accepts a batch of deliveries atomically (enqueueArgs).
// Returns {1, created_1, ..., created_n} (created_i = 1 new, 0 already existed),
// {-1} when the backlog would pass its bound, {-2, i} when item i names an unknown endpoint.
// Nothing is written unless everything is accepted.
var enqueueScript = script(`
local now, maxBacklog, horizon, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local bySub = ARGV[6] == '1'
local fresh, seen, eps, newCount = {}, {}, {}, 0
local unknown = nil
eachItem(7, ENQUEUE_ITEM, n, function(i, id, ep)
  if unknown then return end
  if seen[id] or redis.call('EXISTS', recordKey(id)) == 1 then
    fresh[i] = 0
    return
  end
  seen[id] = true
  if not eps[ep] then
    local e = redis.call('HMGET', endpointKey(ep), EP_URL, EP_ORDERED)
    if not e[1] then unknown = i return end
    eps[ep] = e
  end
  fresh[i] = 1
  newCount = newCount + 1
end)
if unknown then return {-2, unknown} end
if newCount > 0 and tonumber(redis.call('GET', BACKLOG_KEY) or '0') + newCount > maxBacklog then
  return {-1}
end
local out = {1}
eachItem(7, ENQUEUE_ITEM, n, function(i, id, ep, body, evt, sub, kind, okey, seq)
  out[i + 1] = fresh[i]
  if fresh[i] == 0 then return end
  local e = eps[ep]
  local line = ''
  if okey ~= '' then line = LINE_OF_KEY .. okey elseif e[2] == '1' then line = LINE_OF_ENDPOINT .. ep end
  -- a live delivery's stream entry goes into the record with everything else: one HSET
  local entry = ''
  if joinLine(id, line, seq) then entry = addEntry(id, ep) end
  redis.call('HSET', recordKey(id), F_ENDPOINT, ep, F_URL, e[1], F_BODY, body, F_EVENT, evt, F_SUBSCRIBER, sub,
    F_KIND, kind, F_LINE, line, F_STATUS, ST_PENDING, F_TRIES, 0, F_CREATED, now, F_ACCEPTED, now, F_NEXT, now, F_ENTRY, entry)
  indexAccepted(id, ep, sub, evt, now, horizon, bySub)
end)
if newCount > 0 then redis.call('INCRBY', BACKLOG_KEY, newCount) end
flushIndexes()
return out
`)

// beginScript starts the tries of a fetched batch of stream entries, one script call for all of
// them (beginArgs). For each it checks the entry is current, dead-letters a delivery past its age
// or whose endpoint is gone or disabled, and takes an in-flight lease of the endpoint (or parks the delivery
// in the endpoint's waiter list when all are taken).
//
// Endpoints are read only when the caller's cache (begin.go) is not current: the caller passes
// the endpoint generation its cache holds and, per item, the endpoint's max in flight when it has
// the endpoint cached (empty when not). When the generation is current those items use it; the
// others, and all of them when it is not, read the endpoint.
//
// Returns {generation, answer_1, ..., answer_n}; begin.go's parseBeginAnswer reads an answer.
var beginScript = script(`
local now = tonumber(ARGV[2])
local defMif, leaseMS, maxAge = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retention, horizon = tonumber(ARGV[6]), tonumber(ARGV[7])
local gen = endpointGen(now)
local trusted = gen == tonumber(ARGV[8])
local eps = {}

-- the endpoint ep as this call knows it: its max in flight, and its fields when read here
local function endpointOf(ep, cachedMif)
  local e = eps[ep]
  if e then return e end
  if trusted and cachedMif ~= '' then
    e = {mif = tonumber(cachedMif)}
  else
    local f = redis.call('HMGET', endpointKey(ep), EP_URL, EP_SECRET, EP_PREV_SECRET, EP_PREV_UNTIL, EP_RATE, EP_IN_FLIGHT, EP_DISABLED)
    local mif = tonumber(f[6]) or 0
    if mif <= 0 then mif = defMif end
    e = {f = f, mif = mif, gone = not f[1], disabled = f[7] == '1'}
  end
  eps[ep] = e
  return e
end

-- take an in-flight lease of endpoint e for entry; false when all are taken
local function takeLease(ep, e, entry)
  local ifk = inflightKey(ep)
  -- e.n: the endpoint's leases as far as this call knows (counted once, then kept up to date)
  if not e.n then e.n = redis.call('ZCARD', ifk) end
  if e.n >= e.mif then
    -- full: drop expired leases (of dead processes); a reclaimed entry keeps its own lease
    redis.call('ZREMRANGEBYSCORE', ifk, '-inf', now)
    e.n = redis.call('ZCARD', ifk)
    if not redis.call('ZSCORE', ifk, entry) and e.n >= e.mif then return false end
  end
  e.n = e.n + redis.call('ZADD', ifk, now + leaseMS, entry)
  return true
end

local function begin(id, entry, cachedMif)
  local rk = recordKey(id)
  local r = redis.call('HMGET', rk, F_STATUS, F_ENTRY, F_ENDPOINT, F_TRIES, F_ACCEPTED, F_BODY, F_EVENT, F_SUBSCRIBER, F_LINE)
  if r[1] ~= ST_PENDING or r[2] ~= entry then
    ack(entry)
    return {BEGIN_SKIP}
  end
  local ep = r[3]
  local e = endpointOf(ep, cachedMif)
  local reason = nil
  if e.gone then reason = REASON_ENDPOINT_GONE
  elseif e.disabled then reason = REASON_ENDPOINT_DISABLED -- disabled meanwhile (endScript ended the others)
  elseif now - tonumber(r[5]) > maxAge then reason = REASON_MAX_AGE end -- age counts from acceptance (a replay resets it)
  if reason then
    ack(entry)
    finalize(id, ST_FAILED, reason, now, retention, horizon, r[9], r[5], nil)
    return {BEGIN_DEAD, reason}
  end
  if not takeLease(ep, e, entry) then
    ack(entry)
    redis.call('HSET', rk, F_ENTRY, '', F_WAIT, WAIT_IN_FLIGHT_FULL)
    redis.call('RPUSH', waitersKey(ep), id)
    redis.call('SADD', WAITING_KEY, ep)
    return {BEGIN_WAIT}
  end
  local out = {BEGIN_GO, ep, r[4], r[5], r[6], r[7] or '', r[8] or '', r[9] or ''}
  if e.f and not e.sent then -- once per call: the caller keeps it for the endpoint's other tries
    local f = e.f
    out[9], out[10], out[11], out[12], out[13], out[14] = f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', tostring(e.mif)
    e.sent = true
  end
  return out
end

local out = {gen}
eachItem(10, BEGIN_ITEM, tonumber(ARGV[9]), function(i, id, entry, cachedMif)
  out[i + 1] = begin(id, entry, cachedMif)
end)
flushIndexes()
flushBacklog()
return out
`)

// deferScript puts a delivery back without using a try: breaker open, rate limited, shutdown
// (deferArgs); the record keeps why (a WaitReason). With a rate slot interval the due time is
// pushed to the endpoint's next free slot, so deferred deliveries spread at the rate. Returns the
// due time, or -1 for a stale entry.
var deferScript = script(`
local id, entry, now, due = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local releaseLease, interval, wait = ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8]
local rk = recordKey(id)
local r = redis.call('HMGET', rk, F_STATUS, F_ENTRY, F_ENDPOINT)
ack(entry)
if r[1] ~= ST_PENDING or r[2] ~= entry then return -1 end
if releaseLease then release(r[3], entry, now) end
if interval > 0 then
  local sk = slotKey(r[3])
  local s = tonumber(redis.call('GET', sk) or '0')
  if s > due then due = s end
  redis.call('SET', sk, due + interval, 'PX', due + interval - now + 1000)
end
redis.call('ZADD', DELAYED_KEY, due, id)
redis.call('HSET', rk, F_ENTRY, '', F_NEXT, due, F_WAIT, wait)
return due
`)

// finishScript records tries and moves their deliveries on: delivered, scheduled again, or
// failed (finishArgs). A try answered 410 Gone disables its endpoint when the endpoint asks for
// that (EP_DISABLE_ON_GONE), in the same step. The finishes of concurrent tries share one call
// (batcher.go).
// Returns one number per item: 1, or 0 for a stale entry (another process finished it; the try
// is not recorded).
var finishScript = script(`
local retention, kept, horizon = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local acks = {} -- the entries to acknowledge, all in one XACK at the end

-- the record's attempts with attempt appended, the oldest dropped past kept
local function appendAttempt(attempts, attempt)
  if not attempts or attempts == '' then return attempt end
  local all = attempts .. '\n' .. attempt
  local _, lines = string.gsub(all, '\n', '')
  if lines >= kept then all = string.sub(all, string.find(all, '\n', 1, true) + 1) end
  return all
end


local function finish(id, entry, now, outcome, due, reason, attempt, ep, tries, line, accepted)
  local rk = recordKey(id)
  local r = redis.call('HMGET', rk, F_STATUS, F_ENTRY, F_ATTEMPTS)
  acks[#acks + 1] = entry
  if r[1] ~= ST_PENDING or r[2] ~= entry then return 0 end
  local attempts = appendAttempt(r[3], attempt)
  release(ep, entry, now)
  if outcome == FINISH_RETRY then
    redis.call('ZADD', DELAYED_KEY, due, id)
    redis.call('HSET', rk, F_ENTRY, '', F_NEXT, due, F_TRIES, tries, F_ATTEMPTS, attempts, F_WAIT, WAIT_RETRY)
  elseif outcome == FINISH_DELIVERED then
    finalize(id, ST_DELIVERED, '', now, retention, horizon, line, accepted, tries, attempts)
  else
    finalize(id, ST_FAILED, reason, now, retention, horizon, line, accepted, tries, attempts)
    -- a 410 Gone disables an endpoint that asks for it: begin then dead-letters whatever of it
    -- comes up, the waiter the try's release woke and the next in its line included
    if reason == REASON_GONE then disableEndpoint(ep, EP_DISABLE_ON_GONE, now) end
  end
  return 1
end

local out = {}
eachItem(6, FINISH_ITEM, tonumber(ARGV[5]), function(i, id, entry, now, outcome, due, reason, attempt, ep, tries, line, accepted)
  out[i] = finish(id, entry, tonumber(now), outcome, tonumber(due), reason, attempt, ep, tries, line, accepted)
end)
if #acks > 0 then
  redis.call('XACK', STREAM_KEY, GROUP, unpack(acks))
end
flushIndexes()
flushBacklog()
return out
`)

// pumpScript moves due deliveries from the delayed set into the stream.
// ARGV[2] now ms, ARGV[3] batch size. Returns {moved, next due ms or -1}.
var pumpScript = script(`
local now = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', DELAYED_KEY, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', DELAYED_KEY, id)
  if redis.call('HGET', recordKey(id), F_STATUS) == ST_PENDING then makeLive(id, now) end
end
local nxt = redis.call('ZRANGE', DELAYED_KEY, 0, 0, 'WITHSCORES')
local due = -1
if nxt[2] then due = tonumber(nxt[2]) end
return {#ids, due}
`)

// wakeScript frees expired leases of an endpoint and wakes waiters while slots are free (the
// janitor's safety net for leases of dead processes).
// ARGV[2] endpoint id, ARGV[3] now ms, ARGV[4] default max in flight. Returns the number woken.
var wakeScript = script(`
local ep, now = ARGV[2], tonumber(ARGV[3])
local ifk, wk = inflightKey(ep), waitersKey(ep)
redis.call('ZREMRANGEBYSCORE', ifk, '-inf', now)
local mif = tonumber(redis.call('HGET', endpointKey(ep), EP_IN_FLIGHT) or '0') or 0
if mif <= 0 then mif = tonumber(ARGV[4]) end
local woken = 0
while redis.call('ZCARD', ifk) + woken < mif do
  local w = redis.call('LPOP', wk)
  if not w then break end
  makeLive(w, now)
  woken = woken + 1
end
if redis.call('LLEN', wk) == 0 then redis.call('SREM', WAITING_KEY, ep) end
return woken
`)

// retryScript replays a finished delivery with fresh tries.
// ARGV[2] delivery id, ARGV[3] now ms, ARGV[4] max backlog, ARGV[5] horizon ms, ARGV[6] '1' to
// index it under its subscriber too (as enqueueScript). Returns 1, -1 backlog full, -2 unknown
// delivery, -3 still pending.
var retryScript = script(`
local id, now, horizon, bySub = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5]), ARGV[6] == '1'
local rk = recordKey(id)
local r = redis.call('HMGET', rk, F_STATUS, F_LINE, F_ENDPOINT, F_SUBSCRIBER, F_EVENT)
if not r[1] then return -2 end
if r[1] == ST_PENDING then return -3 end
if tonumber(redis.call('GET', BACKLOG_KEY) or '0') >= tonumber(ARGV[4]) then return -1 end
redis.call('PERSIST', rk)
redis.call('HSET', rk, F_STATUS, ST_PENDING, F_TRIES, 0, F_DEAD_REASON, '', F_FINISHED, '', F_ACCEPTED, now, F_NEXT, now, F_ENTRY, '',
  F_WAIT, '')
setStatus(id, r[1], ST_PENDING, now, now, horizon)
indexAccepted(id, r[3], r[4], r[5], now, horizon, bySub)
redis.call('INCR', BACKLOG_KEY)
if joinLine(id, r[2]) then makeLive(id, now) end
flushIndexes()
return 1
`)

// raiseWatermarkScript raises the shard's watermark (never lowers it) and lets the gated
// deliveries it reaches into their lines, in seq order, behind what the lines hold; a line that
// was empty gets its new head live. The index of gated lines (by their smallest seq) spares it
// looking at lines that must wait on. When the bound leaves gated deliveries the watermark
// reaches, the shard's watermark stops just below the first of them, so that a delivery
// enqueued before the next call does not pass them; the caller calls again.
// ARGV[2] now ms, ARGV[3] the watermark, ARGV[4] at most this many deliveries to let in.
// Returns {the shard's watermark, deliveries let in, 1 when gated deliveries it reaches are left
// (past the bound) else 0}.
var raiseWatermarkScript = script(`
local now, w, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = watermark()
if w < cur then w = cur end
local released = 0
for _, line in ipairs(redis.call('ZRANGEBYSCORE', GATED_KEY, '-inf', w, 'LIMIT', 0, limit)) do
  local gk = gateKey(line)
  local ids = redis.call('ZRANGEBYSCORE', gk, '-inf', w, 'LIMIT', 0, limit - released)
  if #ids > 0 then
    redis.call('ZREM', gk, unpack(ids))
    if redis.call('RPUSH', lineKey(line), unpack(ids)) == #ids then makeLive(ids[1], now) end
    released = released + #ids
  end
  indexGate(line, gk)
  if released >= limit then break end
end
local left = redis.call('ZRANGEBYSCORE', GATED_KEY, '-inf', w, 'WITHSCORES', 'LIMIT', 0, 1)
if left[2] then w = tonumber(left[2]) - 1 end
if w > cur then redis.call('SET', WATERMARK_KEY, string.format('%.0f', w)) else w = cur end
return {w, released, #left / 2}
`)

// putEndpointScript creates or updates an endpoint (endpointArgs); a changed secret keeps the
// previous one signing for the overlap. Returns 1 created, 0 updated or unchanged, 2 when this
// call disabled it (the caller then ends its pending deliveries). Only a change bumps the
// endpoints' generation.
var putEndpointScript = script(`
local ek = endpointKey(ARGV[2])
local url, secret, rate, mif, ordered, now, overlap = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local disabled, onGone = ARGV[10], ARGV[11]
local cur = redis.call('HMGET', ek, EP_URL, EP_SECRET, EP_RATE, EP_IN_FLIGHT, EP_ORDERED, EP_DISABLED, EP_DISABLE_ON_GONE)
local was = cur[6] or '0'
local created = 0
if not cur[1] then
  created = 1
elseif cur[1] == url and cur[2] == secret and cur[3] == rate and cur[4] == mif and cur[5] == ordered and was == disabled
  and (cur[7] or '0') == onGone then
  return 0 -- as it is: the engines' caches stay good
elseif cur[2] and cur[2] ~= '' and cur[2] ~= secret then
  redis.call('HSET', ek, EP_PREV_SECRET, cur[2], EP_PREV_UNTIL, now + overlap)
end
redis.call('HSET', ek, EP_URL, url, EP_SECRET, secret, EP_RATE, rate, EP_IN_FLIGHT, mif, EP_ORDERED, ordered, EP_DISABLED, disabled,
  EP_DISABLE_ON_GONE, onGone)
bumpEndpointGen(now)
if disabled == '1' and was ~= '1' then return 2 end
return created
`)

// disableScript marks an endpoint disabled, when this shard holds it: begin dead-letters
// whatever of it comes up (REASON_ENDPOINT_DISABLED). ARGV[2] endpoint id, ARGV[3] now ms.
// Returns 1 marked, 0 when the shard holds no such endpoint or it was disabled already (the
// endpoints' generation then stays, and so do the engines' caches).
var disableScript = script(`
if disableEndpoint(ARGV[2], EP_URL, tonumber(ARGV[3])) then return 1 end
return 0
`)

// endScript ends pending deliveries of one endpoint as failed with a reason, a batch per call
// (endArgs): it was disabled or deleted, so none may be tried again. First those in the
// endpoint's waiter list (popped, so it is never scanned); once that is empty, those its index
// holds, walked newest first from rank offset. Each leaves wherever it is: the stream (its entry
// is acknowledged and its in-flight lease dropped, so the finish of a try in flight finds it
// stale and does not record it), the delayed set, or its ordering line (from its gate or behind
// the head it just leaves; as the head it finishes like any head, and the next in line goes
// live). The index only grows at the top meanwhile (enqueues, replays), so walking by rank from
// the top may see an id twice but skips none that was there; what comes later is begin's to
// dead-letter.
// Returns {more (1: call again with offset next), next offset, ended delivery ids...}.
var endScript = script(`
local ep, reason, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local retention, horizon, limit, offset = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {0, offset}

local function endOne(id)
  local r = redis.call('HMGET', recordKey(id), F_STATUS, F_ENDPOINT, F_ENTRY, F_LINE, F_ACCEPTED)
  if r[1] ~= ST_PENDING or r[2] ~= ep then return end
  if r[3] and r[3] ~= '' then
    ack(r[3])
    redis.call('ZREM', inflightKey(ep), r[3])
  end
  redis.call('ZREM', DELAYED_KEY, id)
  local line = r[4]
  if line and line ~= '' and redis.call('LINDEX', lineKey(line), 0) ~= id then
    -- in the line's gate, or behind its head (looked for from the tail: the walk meets the
    -- newest first): it leaves, and the head stays as it is
    local gk = gateKey(line)
    if redis.call('ZREM', gk, id) == 1 then indexGate(line, gk) else redis.call('LREM', lineKey(line), -1, id) end
    line = nil
  end
  finalize(id, ST_FAILED, reason, now, retention, horizon, line, r[5], nil)
  out[#out + 1] = id
end

local wk = waitersKey(ep)
for _, id in ipairs(redis.call('LPOP', wk, limit) or {}) do endOne(id) end
if redis.call('LLEN', wk) > 0 then
  out[1] = 1
else
  redis.call('SREM', WAITING_KEY, ep)
  local ids = redis.call('ZREVRANGE', endpointIndexKey(ep), offset, offset + limit - 1)
  for _, id in ipairs(ids) do endOne(id) end
  if #ids == limit then out[1] = 1 end
  out[2] = offset + #ids
end
flushIndexes()
flushBacklog()
return out
`)

// copyEndpointScript copies an endpoint into this shard, as another shard holds it, unless this
// shard has it already (the shard count changed; see shard.go).
// ARGV[2] endpoint id, ARGV[3] now ms, ARGV[4...] its fields and values. Returns 1 copied, 0 not.
var copyEndpointScript = script(`
local ek = endpointKey(ARGV[2])
if redis.call('EXISTS', ek) == 1 then return 0 end
redis.call('HSET', ek, unpack(ARGV, 4))
bumpEndpointGen(tonumber(ARGV[3]))
return 1
`)

// deleteEndpointScript removes an endpoint with its in-flight leases, rate slot and health.
// ARGV[2] endpoint id, ARGV[3] now ms. Returns 1, or 0 when the shard held none of them (the
// endpoints' generation then stays, and so do the engines' caches).
var deleteEndpointScript = script(`
local ep = ARGV[2]
if redis.call('DEL', endpointKey(ep), inflightKey(ep), slotKey(ep), healthKey(ep)) == 0 then return 0 end
bumpEndpointGen(tonumber(ARGV[3]))
return 1
`)

// healthScript records what one process learnt of endpoints' health since it last wrote it
// (healthArgs, health.go): the last success and the last failure with its error (each kept only
// when later than the one stored, as processes write in any order), the tries and failures added
// to the current bucket (a bucket field holding an older start is started again), and this
// process's breaker state when it changed. An endpoint deleted meanwhile is skipped. The hash
// expires ARGV[3] ms after its last write.
// ARGV[2] consumer, ARGV[3] ttl ms, ARGV[4] the current bucket's field, ARGV[5] its start ms,
// ARGV[6] item count, then the items. Returns the number of endpoints written.
var healthScript = script(`
local consumer, ttl, bucket, bucketStart = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])

-- is t (ms, 0: none) later than the stored time s?
local function later(s, t) return t > 0 and t > (tonumber(s) or 0) end

local function record(ep, tries, fails, okAt, failAt, err, code, br, brAt)
  if redis.call('EXISTS', endpointKey(ep)) == 0 then return 0 end
  local k = healthKey(ep)
  tries, fails, okAt, failAt = tonumber(tries), tonumber(fails), tonumber(okAt), tonumber(failAt)
  local cur = redis.call('HMGET', k, H_OK_AT, H_FAIL_AT, bucket)
  local set = {}
  local function put(f, v) set[#set + 1] = f; set[#set + 1] = v end
  if later(cur[1], okAt) then put(H_OK_AT, string.format('%d', okAt)) end
  if later(cur[2], failAt) then
    put(H_FAIL_AT, string.format('%d', failAt)); put(H_ERROR, err); put(H_CODE, code)
  end
  if tries > 0 then
    local s, t, f = string.match(cur[3] or '', '^(%d+) (%d+) (%d+)$')
    if tonumber(s) == bucketStart then tries, fails = tries + tonumber(t), fails + tonumber(f) end
    put(bucket, string.format('%d %d %d', bucketStart, tries, fails))
  end
  if br ~= '' then put(H_BREAKER_OF .. consumer, br .. ' ' .. brAt) end
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
  redis.call('PEXPIRE', k, ttl)
  return 1
end

local written = 0
eachItem(7, HEALTH_ITEM, tonumber(ARGV[6]), function(i, ...)
  written = written + record(...)
end)
return written
`)

// trimScript trims the stream of the entries no engine needs any more: those before both the
// oldest entry still pending (read, not yet acknowledged) and the group's last delivered entry
// (everything after it is still to be read). Whole blocks only (MINID ~), which is cheap.
// Returns the number of entries trimmed.
var trimScript = script(`
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', STREAM_KEY)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == GROUP then last = f['last-delivered-id'] end
end
if not last then return 0 end
local minid = last
local pend = redis.call('XPENDING', STREAM_KEY, GROUP)
if pend[1] > 0 and streamIDLess(pend[2], minid) then minid = pend[2] end
return redis.call('XTRIM', STREAM_KEY, 'MINID', '~', minid)
`)

// pruneScript removes ids whose record has expired from an index.
// ARGV[2] index key, ARGV[3...] ids. Returns the number removed.
var pruneScript = script(`
local removed = 0
for i = 3, #ARGV do
  if redis.call('EXISTS', recordKey(ARGV[i])) == 0 then
    removed = removed + redis.call('ZREM', ARGV[2], ARGV[i])
  end
end
return removed
`)
