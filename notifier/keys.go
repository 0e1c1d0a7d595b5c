package notifier

import "strings"

// Redis keys of the delivery engine, defined here once: the Go builders below and the Lua
// scripts' key functions (generated from luaKeyLayout into every script, see luaKeys) use the
// same suffixes. The queue is split into shards (shard.go); every key of one shard lives in ONE
// Cluster slot: they all carry the shard's hash tag {T}, because the scripts move a delivery
// between the stream, the delayed set, its ordering line and its endpoint's semaphore atomically,
// and some scripts derive the record key of another delivery (the next in line, the next waiter)
// inside Lua. Shard 0's tag is the prefix P itself, so a one-shard engine (the default) keeps the
// keys it had before sharding; shard i's tag is "P.<x>" (shardTag).
//
// Layout of a shard with tag T, for prefix P (default "herald"):
//
//	P:{T}:stream            STREAM  due deliveries, fields d = delivery id, e = endpoint id; group "workers"
//	P:{T}:delayed           ZSET    delivery id -> due time (unix ms): retries and deferred tries
//	P:{T}:backlog           STRING  count of pending deliveries (enqueued, not yet delivered/failed)
//	P:{T}:epgen             STRING  the endpoints' generation, bumped by every change to an endpoint
//	P:{T}:readyz            STRING  written by every Ready, expiring after a minute: the shard's master takes writes
//	P:{P}:layout            STRING  the record layout version (migrate.go; shard 0 only)
//	P:{P}:shardcounts       HASH    shard count -> last time (ms) an engine ran with it (shard.go; shard 0 only)
//	P:{T}:d:<id>            HASH    the delivery record with its attempts (fields: recordField)
//	P:{T}:ep:<id>           HASH    an endpoint (fields: endpointField)
//	P:{T}:if:<endpoint>     ZSET    in-flight leases of an endpoint: stream entry id -> lease expiry (ms);
//	                                expired leases (of dead processes) are dropped when it looks full
//	P:{T}:w:<endpoint>      LIST    delivery ids waiting for a free in-flight slot of the endpoint
//	P:{T}:waiting           SET     endpoints whose w: list is non-empty (the janitor's index)
//	P:{T}:slot:<endpoint>   STRING  next free rate-limit slot (ms) handed to a deferred delivery
//	P:{T}:o:<line>          LIST    an ordering line (lineName): delivery ids in the order accepted; the head is live
//	P:{T}:og:<line>         ZSET    the line's gate: deliveries with a Request.Seq past the shard's watermark,
//	                                id -> seq; they join the line in seq order as the watermark reaches them
//	P:{T}:gated             ZSET    lines whose gate is not empty -> the smallest seq in it (raiseWatermarkScript's index)
//	P:{T}:watermark         STRING  the shard's watermark: deliveries with a seq up to it may join their line
//	P:{T}:eh:<endpoint>     HASH    the endpoint's health (fields: healthField): its last success and failure,
//	                                each process's breaker, its tries in buckets; health.go
//	P:{P}:hb:<consumer>     STRING  a process's heartbeat, expiring after 3 heartbeats (shard 0 only)
//	P:{T}:ix:all            ZSET    every delivery id -> accepted time (ms), for List. The ix: sets are
//	                                pruned of entries older than max age + retention now and then
//	                                (index() in scripts.go) and of expired records by List
//	P:{T}:ix:st:failed      ZSET    dead-lettered deliveries -> accepted time
//	P:{T}:ix:sub:<id>       ZSET    deliveries of a subscriber -> accepted time; not written when the engine
//	                                knows a subscriber's endpoint (Config.SubscriberEndpoint): List walks ix:ep
//	P:{T}:ix:evt:<id>       ZSET    deliveries of an event -> accepted time
//	P:{T}:ix:ep:<id>        ZSET    deliveries to an endpoint -> accepted time
//	rate:P:rl:<endpoint>    (redis_rate) the endpoint's GCRA state, shared by every process
type keys struct {
	p string // "P:{P}:"
	// rate is the key handed to redis_rate, which puts "rate:" in front itself.
	ratePrefix string
}

// The suffixes of the slotted keys: key = prefix + suffix (+ an id when it ends in ':').
const (
	sfxStream      = "stream"
	sfxDelayed     = "delayed"
	sfxBacklog     = "backlog"
	sfxEpgen       = "epgen"
	sfxLayout      = "layout"
	sfxShardCounts = "shardcounts"
	sfxReady       = "readyz"
	sfxWaiting     = "waiting"
	sfxFailedIndex = "ix:st:failed"
	sfxAllIndex    = "ix:all"
	sfxRecord      = "d:"
	sfxEndpoint    = "ep:"
	sfxInflight    = "if:"
	sfxWaiters     = "w:"
	sfxSlot        = "slot:"
	sfxLine        = "o:"
	sfxGate        = "og:"
	sfxGated       = "gated"
	sfxWatermark   = "watermark"
	sfxHeartbeat   = "hb:"
	sfxSubIndex    = "ix:sub:"
	sfxEvtIndex    = "ix:evt:"
	sfxEpIndex     = "ix:ep:"
	sfxHealth      = "eh:"
)

// luaKeyLayout is the scripts' half of the layout: the name of each key the scripts use, a
// function of one id when its suffix ends in ':', else a constant (luaKeys). The layout and
// heartbeat keys are Go's alone.
var luaKeyLayout = []struct{ lua, suffix string }{
	{"STREAM_KEY", sfxStream},
	{"DELAYED_KEY", sfxDelayed},
	{"BACKLOG_KEY", sfxBacklog},
	{"EPGEN_KEY", sfxEpgen},
	{"WAITING_KEY", sfxWaiting},
	{"FAILED_INDEX_KEY", sfxFailedIndex},
	{"ALL_INDEX_KEY", sfxAllIndex},
	{"GATED_KEY", sfxGated},
	{"WATERMARK_KEY", sfxWatermark},
	{"recordKey", sfxRecord},
	{"endpointKey", sfxEndpoint},
	{"inflightKey", sfxInflight},
	{"waitersKey", sfxWaiters},
	{"slotKey", sfxSlot},
	{"lineKey", sfxLine},
	{"gateKey", sfxGate},
	{"subscriberIndexKey", sfxSubIndex},
	{"eventIndexKey", sfxEvtIndex},
	{"endpointIndexKey", sfxEpIndex},
	{"healthKey", sfxHealth},
}

// newKeys returns the keys of the shard with hash tag tag (shardTag).
func newKeys(prefix, tag string) keys {
	return keys{p: prefix + ":{" + tag + "}:", ratePrefix: prefix + ":rl:"}
}

func (k keys) stream() string                   { return k.p + sfxStream }
func (k keys) delayed() string                  { return k.p + sfxDelayed }
func (k keys) backlog() string                  { return k.p + sfxBacklog }
func (k keys) endpointGen() string              { return k.p + sfxEpgen }
func (k keys) layout() string                   { return k.p + sfxLayout }
func (k keys) shardCounts() string              { return k.p + sfxShardCounts }
func (k keys) ready() string                    { return k.p + sfxReady }
func (k keys) record(id string) string          { return k.p + sfxRecord + id }
func (k keys) endpoint(id string) string        { return k.p + sfxEndpoint + id }
func (k keys) inflight(ep string) string        { return k.p + sfxInflight + ep }
func (k keys) waiters(ep string) string         { return k.p + sfxWaiters + ep }
func (k keys) waiting() string                  { return k.p + sfxWaiting }
func (k keys) slot(ep string) string            { return k.p + sfxSlot + ep }
func (k keys) line(line string) string          { return k.p + sfxLine + line }
func (k keys) gate(line string) string          { return k.p + sfxGate + line }
func (k keys) gated() string                    { return k.p + sfxGated }
func (k keys) watermark() string                { return k.p + sfxWatermark }
func (k keys) heartbeat(consumer string) string { return k.p + sfxHeartbeat + consumer }
func (k keys) ixAll() string                    { return k.p + sfxAllIndex }
func (k keys) ixFailed() string                 { return k.p + sfxFailedIndex }
func (k keys) ixSubscriber(id string) string    { return k.p + sfxSubIndex + id }
func (k keys) ixEvent(id string) string         { return k.p + sfxEvtIndex + id }
func (k keys) ixEndpoint(id string) string      { return k.p + sfxEpIndex + id }
func (k keys) health(ep string) string          { return k.p + sfxHealth + ep }

// rate is the redis_rate key of an endpoint (the limiter stores it as "rate:" + this).
func (k keys) rate(ep string) string { return k.ratePrefix + ep }

// Ordering lines: deliveries with an OrderingKey share the line "k:<key>"; those to an Ordered
// endpoint without one share "ep:<endpoint>". A record holds its line's name ("" for none).
const (
	lineOfKey      = "k:"
	lineOfEndpoint = "ep:"
)

// group is the consumer group every engine process reads the stream through.
const group = "workers"

// luaKeys is the scripts' half of the layout: a constant or a function per key of luaKeyLayout,
// built on the prefix P the caller passes as ARGV[1].
func luaKeys() string {
	var b strings.Builder
	for _, k := range luaKeyLayout {
		if strings.HasSuffix(k.suffix, ":") {
			b.WriteString("local function " + k.lua + "(id) return P .. '" + k.suffix + "' .. id end\n")
		} else {
			b.WriteString("local " + k.lua + " = P .. '" + k.suffix + "'\n")
		}
	}
	return b.String()
}
