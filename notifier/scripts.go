package notifier

import "github.com/redis/go-redis/v9"

// The engine's Lua scripts. Every state change of a delivery is one script, so a crash between
// two Redis calls can never lose or duplicate a delivery.
//
// Conventions for all scripts:
//   - KEYS[1] is the stream key: it routes the call to the queue's Cluster slot. The other keys a
//     script touches are derived from ARGV[1], the key prefix "P:{P}:" (see keys.go), because
//     some are only known inside the script (the next delivery of an ordering line, the next
//     waiter of an endpoint). All of them carry the same hash tag, so they share the slot.
//   - A delivery is in exactly one place while pending: the stream (its record's sid names the
//     entry), the delayed set, its endpoint's waiter list, or behind the head of its ordering line.
//     Scripts that act on a stream entry first check that the record still names that entry
//     (sid) and is pending; a stale entry (a duplicate after a takeover) is acknowledged and
//     dropped, so a delivery is never finished twice.
//
// Record fields (HASH P:{P}:d:<id>): ep endpoint id, url target at enqueue, body, evt, sub, kind,
// ok ordering line ("" none, "k:<key>", "ep:<endpoint>"), st status, n tries used, c created ms,
// acc accepted ms (enqueue or replay), na next attempt ms, dr dead reason, dat finished ms,
// sid current stream entry id ("" when not in the stream), att the attempts: one JSON object a
// line, oldest first, at most the last 100 (JSON never holds a raw newline).

// luaLib is prepended to every script.
const luaLib = `
local P = ARGV[1]
local STREAM = KEYS[1]

-- put delivery id into the stream and remember the entry in its record (ep: its endpoint, when
-- the caller knows it)
local function makeLive(id, now, ep)
  local rk = P .. 'd:' .. id
  if not ep then
    ep = redis.call('HGET', rk, 'ep')
    if not ep then return end
  end
  local sid = redis.call('XADD', STREAM, '*', 'd', id, 'e', ep)
  redis.call('HSET', rk, 'sid', sid, 'na', now)
end

-- the endpoints' generation: a number bumped by every change to an endpoint, so that engines may
-- cache endpoints until it moves. Seeded from the clock (now ms * 1000) when the key is missing
-- (first use, or Redis lost its data), so it never comes back to a value an engine has cached.
local function endpointGen(now)
  local g = redis.call('GET', P .. 'epgen')
  if not g then
    g = string.format('%d', now) .. '000' -- a string: Lua would print the number as 1.7e+15
    redis.call('SET', P .. 'epgen', g)
  end
  return tonumber(g)
end
local function bumpEndpointGen(now)
  endpointGen(now)
  return redis.call('INCR', P .. 'epgen')
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
local function ack(sid)
  redis.call('XACK', STREAM, 'workers', sid)
end

-- anyWaiting: does any endpoint have deliveries waiting for an in-flight slot? Asked once per
-- script call (it is rare), then per endpoint only when one has.
local anyWaiting = nil
-- free the in-flight lease sid of endpoint ep and wake the next waiter, if any
local function release(ep, sid, now)
  redis.call('ZREM', P .. 'if:' .. ep, sid)
  if anyWaiting == nil then anyWaiting = redis.call('SCARD', P .. 'waiting') > 0 end
  if not anyWaiting or redis.call('SISMEMBER', P .. 'waiting', ep) == 0 then return end
  local wk = P .. 'w:' .. ep
  local w = redis.call('LPOP', wk)
  if w then makeLive(w, now) end
  if redis.call('LLEN', wk) == 0 then redis.call('SREM', P .. 'waiting', ep) end
end

-- an index entry older than horizon ms is pruned now and then: when the id's last byte is a
-- multiple of 16 (ids end in random characters), so the cost is spread thin. A per-subscriber,
-- per-event or per-endpoint index (ttl true) also expires a horizon after its last entry; its
-- expiry is refreshed once per script call (a fan-out batch adds many entries to one event's).
local expiring = {} -- index keys whose expiry this script call has already refreshed
local function index(key, score, id, now, horizon, ttl)
  redis.call('ZADD', key, score, id)
  if ttl and not expiring[key] then
    redis.call('PEXPIRE', key, horizon)
    expiring[key] = true
  end
  if string.byte(id, -1) % 16 == 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - horizon)
  end
end

-- a delivery (re)accepted at now goes into the list indexes: all, its endpoint's, subscriber's
-- and event's ('' or false: none)
local function indexAccepted(id, ep, sub, evt, now, horizon)
  index(P .. 'ix:all', now, id, now, horizon)
  index(P .. 'ix:ep:' .. ep, now, id, now, horizon, true)
  if sub and sub ~= '' then index(P .. 'ix:sub:' .. sub, now, id, now, horizon, true) end
  if evt and evt ~= '' then index(P .. 'ix:evt:' .. evt, now, id, now, horizon, true) end
end

-- failed deliveries have an index of their own (pending and delivered ones are found through
-- ix:all): keep it in step when a delivery moves from old status to new
local function setStatus(id, old, new, score, now, horizon)
  if old == 'failed' then redis.call('ZREM', P .. 'ix:st:failed', id) end
  if new == 'failed' then index(P .. 'ix:st:failed', score, id, now, horizon) end
end

-- a finished delivery leaves its ordering line; the next one in line goes live
local function advanceLine(ok, id, now)
  if ok == nil or ok == '' then return end
  local lk = P .. 'o:' .. ok
  redis.call('LREM', lk, 1, id)
  local nxt = redis.call('LINDEX', lk, 0)
  if nxt then makeLive(nxt, now) end
end

-- deliveries finalized by this script call: the backlog counter drops by that many once, at the
-- end (flushBacklog), rather than once per delivery
local finalized = 0
local function flushBacklog()
  if finalized > 0 and redis.call('DECRBY', P .. 'backlog', finalized) < 0 then redis.call('SET', P .. 'backlog', 0) end
end

-- finish a pending delivery as delivered or failed (no stream entry or lease left to handle).
-- ok and acc are the record's ordering line and accepted time; n its tries and att its attempts
-- (nil: unchanged). The caller calls flushBacklog before it returns.
local function finalize(id, status, reason, now, retention, horizon, ok, acc, n, att)
  local rk = P .. 'd:' .. id
  if n then
    redis.call('HSET', rk, 'st', status, 'dr', reason, 'sid', '', 'na', '', 'dat', now, 'n', n, 'att', att)
  else
    redis.call('HSET', rk, 'st', status, 'dr', reason, 'sid', '', 'na', '', 'dat', now)
  end
  setStatus(id, 'pending', status, tonumber(acc) or now, now, horizon)
  finalized = finalized + 1
  redis.call('PEXPIRE', rk, retention)
  advanceLine(ok, id, now)
end
`

// enqueueScript accepts a batch of deliveries atomically.
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] now ms, ARGV[3] max backlog, ARGV[4] index horizon ms, ARGV[5] count n,
// then n groups of 7: id, endpoint id, body, event id, subscriber id, kind, ordering key.
// Returns {1, created_1, ..., created_n} (created_i = 1 new, 0 already existed),
// {-1} when the backlog would pass its bound, {-2, i} when request i names an unknown endpoint.
// Nothing is written unless everything is accepted.
var enqueueScript = redis.NewScript(luaLib + `
local now = tonumber(ARGV[2])
local maxBacklog = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local fresh = {}
local newCount = 0
local seen = {}
local eps = {}
for i = 1, n do
  local b = 5 + (i - 1) * 7
  local id = ARGV[b + 1]
  if seen[id] or redis.call('EXISTS', P .. 'd:' .. id) == 1 then
    fresh[i] = 0
  else
    seen[id] = true
    local ep = ARGV[b + 2]
    if not eps[ep] then
      local e = redis.call('HMGET', P .. 'ep:' .. ep, 'url', 'ord')
      if not e[1] then return {-2, i} end
      eps[ep] = e
    end
    fresh[i] = 1
    newCount = newCount + 1
  end
end
if newCount > 0 and tonumber(redis.call('GET', P .. 'backlog') or '0') + newCount > maxBacklog then
  return {-1}
end
local out = {1}
for i = 1, n do
  local b = 5 + (i - 1) * 7
  out[i + 1] = fresh[i]
  if fresh[i] == 1 then
    local id, ep, body, evt, sub, kind, okey = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
    local e = eps[ep]
    local ok = ''
    if okey ~= '' then ok = 'k:' .. okey elseif e[2] == '1' then ok = 'ep:' .. ep end
    local rk = P .. 'd:' .. id
    redis.call('HSET', rk, 'ep', ep, 'url', e[1], 'body', body, 'evt', evt, 'sub', sub, 'kind', kind,
      'ok', ok, 'st', 'pending', 'n', 0, 'c', now, 'acc', now, 'na', now, 'sid', '')
    indexAccepted(id, ep, sub, evt, now, horizon)
    local live = true
    if ok ~= '' then live = (redis.call('RPUSH', P .. 'o:' .. ok, id) == 1) end
    if live then makeLive(id, now, ep) end
  end
end
if newCount > 0 then redis.call('INCRBY', P .. 'backlog', newCount) end
return out
`)

// beginScript starts the tries of a fetched batch of stream entries, one script call for all of
// them. For each it checks the entry is current, dead-letters a delivery past its age or whose
// endpoint is gone, and takes an in-flight lease of the endpoint (or parks the delivery in the
// endpoint's waiter list when all are taken).
//
// Endpoints are read only when the caller's cache (begin.go) is not current: the caller passes
// the endpoint generation its cache holds and, per entry, the endpoint's max in flight when it
// has the endpoint cached (empty when not). When the generation is current those entries use it;
// the others, and all of them when it is not, read the endpoint.
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] now ms, ARGV[3] default max in flight, ARGV[4] lease ms, ARGV[5] max
// age ms, ARGV[6] retention ms, ARGV[7] horizon ms, ARGV[8] the caller's endpoint generation,
// ARGV[9] count n, then n triples: delivery id, sid, cached max in flight or empty.
// Returns {generation, answer_1, ..., answer_n}, an answer being {'skip'} (stale entry, dropped),
// {'dead', reason}, {'wait'} (parked), or {'go', ep, n, acc, body, evt, sub, ok} followed, in the
// first 'go' answer of an endpoint this call read, by url, secret, prev secret, prev expiry, rate,
// max in flight.
var beginScript = redis.NewScript(luaLib + `
local now = tonumber(ARGV[2])
local defMif, lease, maxAge = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retention, horizon = tonumber(ARGV[6]), tonumber(ARGV[7])
local gen = endpointGen(now)
local trusted = gen == tonumber(ARGV[8])
local eps = {}
local function begin(id, sid, cachedMif)
  local rk = P .. 'd:' .. id
  local r = redis.call('HMGET', rk, 'st', 'sid', 'ep', 'n', 'acc', 'body', 'evt', 'sub', 'ok')
  if r[1] ~= 'pending' or r[2] ~= sid then
    ack(sid)
    return {'skip'}
  end
  local ep = r[3]
  local e = eps[ep]
  if not e then
    if trusted and cachedMif ~= '' then
      e = {mif = tonumber(cachedMif)}
    else
      local f = redis.call('HMGET', P .. 'ep:' .. ep, 'url', 'sec', 'psec', 'pexp', 'rate', 'mif')
      local mif = tonumber(f[6]) or 0
      if mif <= 0 then mif = defMif end
      e = {f = f, mif = mif, gone = not f[1]}
    end
    eps[ep] = e
  end
  local reason = nil
  if e.gone then reason = 'endpoint_deleted'
  elseif now - tonumber(r[5]) > maxAge then reason = 'max_age' end -- age counts from acceptance (a replay resets it)
  if reason then
    ack(sid)
    finalize(id, 'failed', reason, now, retention, horizon, r[9], r[5], nil)
    return {'dead', reason}
  end
  local ifk = P .. 'if:' .. ep
  -- e.n: the endpoint's leases as far as this call knows (counted once, then kept up to date)
  if not e.n then e.n = redis.call('ZCARD', ifk) end
  if e.n >= e.mif then
    -- full: drop expired leases (of dead processes); a reclaimed entry keeps its own lease
    redis.call('ZREMRANGEBYSCORE', ifk, '-inf', now)
    e.n = redis.call('ZCARD', ifk)
    if not redis.call('ZSCORE', ifk, sid) and e.n >= e.mif then
      ack(sid)
      redis.call('HSET', rk, 'sid', '')
      redis.call('RPUSH', P .. 'w:' .. ep, id)
      redis.call('SADD', P .. 'waiting', ep)
      return {'wait'}
    end
  end
  e.n = e.n + redis.call('ZADD', ifk, now + lease, sid)
  local out = {'go', ep, r[4], r[5], r[6], r[7] or '', r[8] or '', r[9] or ''}
  if e.f and not e.sent then -- once per call: the caller keeps it for the endpoint's other tries
    local f = e.f
    out[9], out[10], out[11], out[12], out[13], out[14] = f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', tostring(e.mif)
    e.sent = true
  end
  return out
end
local out = {gen}
for i = 1, tonumber(ARGV[9]) do
  out[i + 1] = begin(ARGV[7 + 3 * i], ARGV[8 + 3 * i], ARGV[9 + 3 * i])
end
flushBacklog()
return out
`)

// deferScript puts a delivery back without using a try (breaker open, rate limited, shutdown).
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] delivery id, ARGV[3] sid, ARGV[4] now ms, ARGV[5] due ms,
// ARGV[6] 1 to release the in-flight lease, ARGV[7] rate slot interval ms (0: none; else the due
// time is pushed to the endpoint's next free slot so deferred deliveries spread at the rate).
// Returns the due time, or -1 for a stale entry.
var deferScript = redis.NewScript(luaLib + `
local id, sid, now, due = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local rk = P .. 'd:' .. id
local r = redis.call('HMGET', rk, 'st', 'sid', 'ep')
if r[1] ~= 'pending' or r[2] ~= sid then
  ack(sid)
  return -1
end
ack(sid)
if ARGV[6] == '1' then release(r[3], sid, now) end
local interval = tonumber(ARGV[7])
if interval > 0 then
  local sk = P .. 'slot:' .. r[3]
  local s = tonumber(redis.call('GET', sk) or '0')
  if s > due then due = s end
  redis.call('SET', sk, due + interval, 'PX', due + interval - now + 1000)
end
redis.call('ZADD', P .. 'delayed', due, id)
redis.call('HSET', rk, 'sid', '', 'na', due)
return due
`)

// finishScript records tries and moves their deliveries on: delivered, scheduled again, or
// failed. The finishes of concurrent tries share one call (batcher.go).
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] retention ms, ARGV[3] attempts kept, ARGV[4] horizon ms, ARGV[5] count
// n, then n groups of 11: delivery id, sid, now ms, 'ok' | 'retry' | 'dead', due ms (retry), dead
// reason, attempt JSON, endpoint id, tries used now, ordering line, accepted ms (the last three
// as begin returned them).
// Returns one number per group: 1, or 0 for a stale entry (another process finished it; the try
// is not recorded).
var finishScript = redis.NewScript(luaLib + `
local retention, kept, horizon = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local acks = {} -- the entries to acknowledge, all in one XACK at the end
local function finish(id, sid, now, outcome, due, dead, attempt, ep, tries, ok, acc)
  local rk = P .. 'd:' .. id
  local r = redis.call('HMGET', rk, 'st', 'sid', 'att')
  if r[1] ~= 'pending' or r[2] ~= sid then
    acks[#acks + 1] = sid
    return 0
  end
  local att = attempt
  if r[3] and r[3] ~= '' then
    att = r[3] .. '\n' .. attempt
    local _, lines = string.gsub(att, '\n', '')
    if lines >= kept then att = string.sub(att, string.find(att, '\n', 1, true) + 1) end
  end
  acks[#acks + 1] = sid
  release(ep, sid, now)
  if outcome == 'retry' then
    redis.call('ZADD', P .. 'delayed', due, id)
    redis.call('HSET', rk, 'sid', '', 'na', due, 'n', tries, 'att', att)
  elseif outcome == 'ok' then
    finalize(id, 'delivered', '', now, retention, horizon, ok, acc, tries, att)
  else
    finalize(id, 'failed', dead, now, retention, horizon, ok, acc, tries, att)
  end
  return 1
end
local out = {}
for i = 1, tonumber(ARGV[5]) do
  local b = 5 + (i - 1) * 11
  out[i] = finish(ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]), ARGV[b + 4], tonumber(ARGV[b + 5]),
    ARGV[b + 6], ARGV[b + 7], ARGV[b + 8], ARGV[b + 9], ARGV[b + 10], ARGV[b + 11])
end
if #acks > 0 then
  redis.call('XACK', STREAM, 'workers', unpack(acks))
end
flushBacklog()
return out
`)

// pumpScript moves due deliveries from the delayed set into the stream.
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] now ms, ARGV[3] batch size.
// Returns {moved, next due ms or -1}.
var pumpScript = redis.NewScript(luaLib + `
local now = tonumber(ARGV[2])
local dk = P .. 'delayed'
local ids = redis.call('ZRANGEBYSCORE', dk, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', dk, id)
  if redis.call('HGET', P .. 'd:' .. id, 'st') == 'pending' then makeLive(id, now) end
end
local nxt = redis.call('ZRANGE', dk, 0, 0, 'WITHSCORES')
local due = -1
if nxt[2] then due = tonumber(nxt[2]) end
return {#ids, due}
`)

// wakeScript frees expired leases of an endpoint and wakes waiters while slots are free (the
// janitor's safety net for leases of dead processes).
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] endpoint id, ARGV[3] now ms, ARGV[4] default max in flight.
// Returns the number woken.
var wakeScript = redis.NewScript(luaLib + `
local ep, now = ARGV[2], tonumber(ARGV[3])
local ifk, wk = P .. 'if:' .. ep, P .. 'w:' .. ep
redis.call('ZREMRANGEBYSCORE', ifk, '-inf', now)
local mif = tonumber(redis.call('HGET', P .. 'ep:' .. ep, 'mif') or '0') or 0
if mif <= 0 then mif = tonumber(ARGV[4]) end
local woken = 0
while redis.call('ZCARD', ifk) + woken < mif do
  local w = redis.call('LPOP', wk)
  if not w then break end
  makeLive(w, now)
  woken = woken + 1
end
if redis.call('LLEN', wk) == 0 then redis.call('SREM', P .. 'waiting', ep) end
return woken
`)

// retryScript replays a finished delivery with fresh tries.
//
// KEYS[1] stream
// ARGV[1] prefix, ARGV[2] delivery id, ARGV[3] now ms, ARGV[4] max backlog, ARGV[5] horizon ms.
// Returns 1, -1 backlog full, -2 unknown delivery, -3 still pending.
var retryScript = redis.NewScript(luaLib + `
local id, now, horizon = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local rk = P .. 'd:' .. id
local r = redis.call('HMGET', rk, 'st', 'ok', 'ep', 'sub', 'evt')
if not r[1] then return -2 end
if r[1] == 'pending' then return -3 end
if tonumber(redis.call('GET', P .. 'backlog') or '0') >= tonumber(ARGV[4]) then return -1 end
redis.call('PERSIST', rk)
redis.call('HSET', rk, 'st', 'pending', 'n', 0, 'dr', '', 'dat', '', 'acc', now, 'na', now, 'sid', '')
setStatus(id, r[1], 'pending', now, now, horizon)
indexAccepted(id, r[3], r[4], r[5], now, horizon)
redis.call('INCR', P .. 'backlog')
local live = true
if r[2] and r[2] ~= '' then live = (redis.call('RPUSH', P .. 'o:' .. r[2], id) == 1) end
if live then makeLive(id, now) end
return 1
`)

// putEndpointScript creates or updates an endpoint; a changed secret keeps the previous one
// signing for the overlap.
//
// KEYS[1] stream (routing only)
// ARGV[1] prefix, ARGV[2] endpoint id, ARGV[3] url, ARGV[4] secret, ARGV[5] rate per minute,
// ARGV[6] max in flight, ARGV[7] ordered (0/1), ARGV[8] now ms, ARGV[9] overlap ms.
// Returns 1 created, 0 updated or unchanged. Only a change bumps the endpoints' generation.
var putEndpointScript = redis.NewScript(luaLib + `
local ek = P .. 'ep:' .. ARGV[2]
local cur = redis.call('HMGET', ek, 'url', 'sec', 'rate', 'mif', 'ord')
if not cur[1] then
  redis.call('HSET', ek, 'url', ARGV[3], 'sec', ARGV[4], 'rate', ARGV[5], 'mif', ARGV[6], 'ord', ARGV[7])
  bumpEndpointGen(tonumber(ARGV[8]))
  return 1
end
if cur[1] == ARGV[3] and cur[2] == ARGV[4] and cur[3] == ARGV[5] and cur[4] == ARGV[6] and cur[5] == ARGV[7] then
  return 0 -- as it is: the engines' caches stay good
end
local old = cur[2]
if old and old ~= '' and old ~= ARGV[4] then
  redis.call('HSET', ek, 'psec', old, 'pexp', tonumber(ARGV[8]) + tonumber(ARGV[9]))
end
redis.call('HSET', ek, 'url', ARGV[3], 'sec', ARGV[4], 'rate', ARGV[5], 'mif', ARGV[6], 'ord', ARGV[7])
bumpEndpointGen(tonumber(ARGV[8]))
return 0
`)

// deleteEndpointScript removes an endpoint with its in-flight leases and rate slot.
//
// KEYS[1] stream (routing only)
// ARGV[1] prefix, ARGV[2] endpoint id, ARGV[3] now ms.
var deleteEndpointScript = redis.NewScript(luaLib + `
local ep = ARGV[2]
redis.call('DEL', P .. 'ep:' .. ep, P .. 'if:' .. ep, P .. 'slot:' .. ep)
bumpEndpointGen(tonumber(ARGV[3]))
return 1
`)

// trimScript trims the stream of the entries no engine needs any more: those before both the
// oldest entry still pending (read, not yet acknowledged) and the group's last delivered entry
// (everything after it is still to be read). Whole blocks only (MINID ~), which is cheap.
//
// KEYS[1] stream
// ARGV[1] prefix.
// Returns the number of entries trimmed.
var trimScript = redis.NewScript(luaLib + `
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', STREAM)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == 'workers' then last = f['last-delivered-id'] end
end
if not last then return 0 end
local minid = last
local pend = redis.call('XPENDING', STREAM, 'workers')
if pend[1] > 0 and streamIDLess(pend[2], minid) then minid = pend[2] end
return redis.call('XTRIM', STREAM, 'MINID', '~', minid)
`)

// pruneScript removes ids whose record has expired from an index.
//
// KEYS[1] stream (routing only)
// ARGV[1] prefix, ARGV[2] index key, ARGV[3...] ids.
// Returns the number removed.
var pruneScript = redis.NewScript(luaLib + `
local removed = 0
for i = 3, #ARGV do
  if redis.call('EXISTS', P .. 'd:' .. ARGV[i]) == 0 then
    removed = removed + redis.call('ZREM', ARGV[2], ARGV[i])
  end
end
return removed
`)
