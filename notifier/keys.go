package notifier

// Redis keys of the delivery engine. Every key but the rate limiter's lives in ONE Cluster slot:
// they all carry the hash tag {<prefix>}, because the Lua scripts move a delivery between the
// stream, the delayed set, its ordering line and its endpoint's semaphore atomically, and some
// scripts derive the record key of another delivery (the next in line) inside Lua. One queue slot
// is the documented price: a Cluster spreads herald's other data, not its queue.
//
// Layout, for prefix P (default "herald"):
//
//	P:{P}:stream            STREAM  due deliveries, fields d = delivery id, e = endpoint id; group "workers"
//	P:{P}:delayed           ZSET    delivery id -> due time (unix ms): retries and deferred tries
//	P:{P}:backlog           STRING  count of pending deliveries (enqueued, not yet delivered/failed)
//	P:{P}:d:<id>            HASH    the delivery record with its attempts (fields: scripts.go)
//	P:{P}:ep:<id>           HASH    an endpoint: url, secrets, limits, ordered
//	P:{P}:if:<endpoint>     ZSET    in-flight leases of an endpoint: stream entry id -> lease expiry (ms);
//	                                expired leases (of dead processes) are dropped when it looks full
//	P:{P}:w:<endpoint>      LIST    delivery ids waiting for a free in-flight slot of the endpoint
//	P:{P}:waiting           SET     endpoints whose w: list is non-empty (the janitor's index)
//	P:{P}:slot:<endpoint>   STRING  next free rate-limit slot (ms) handed to a deferred delivery
//	P:{P}:o:<key>           LIST    an ordering line: delivery ids in the order accepted; the head is live
//	P:{P}:hb:<consumer>     STRING  a process's heartbeat, expiring after 3 heartbeats
//	P:{P}:ix:all            ZSET    every delivery id -> accepted time (ms), for List. The ix: sets are
//	                                pruned of entries older than max age + retention now and then
//	                                (see index() in scripts.go) and of expired records by List
//	P:{P}:ix:st:failed      ZSET    dead-lettered deliveries -> accepted time
//	P:{P}:ix:sub:<id>       ZSET    deliveries of a subscriber -> accepted time
//	P:{P}:ix:evt:<id>       ZSET    deliveries of an event -> accepted time
//	P:{P}:ix:ep:<id>        ZSET    deliveries to an endpoint -> accepted time
//	rate:P:rl:<endpoint>    (redis_rate) the endpoint's GCRA state, shared by every process
type keys struct {
	p string // "P:{P}:"
	// rate is the key handed to redis_rate, which puts "rate:" in front itself.
	ratePrefix string
}

func newKeys(prefix string) keys {
	return keys{p: prefix + ":{" + prefix + "}:", ratePrefix: prefix + ":rl:"}
}

func (k keys) stream() string                 { return k.p + "stream" }
func (k keys) delayed() string                { return k.p + "delayed" }
func (k keys) backlog() string                { return k.p + "backlog" }
func (k keys) record(id string) string        { return k.p + "d:" + id }
func (k keys) endpoint(id string) string      { return k.p + "ep:" + id }
func (k keys) inflight(ep string) string      { return k.p + "if:" + ep }
func (k keys) waiters(ep string) string       { return k.p + "w:" + ep }
func (k keys) waiting() string                { return k.p + "waiting" }
func (k keys) slot(ep string) string          { return k.p + "slot:" + ep }
func (k keys) line(orderingKey string) string { return k.p + "o:" + orderingKey }
func (k keys) heartbeat(consumer string) string {
	return k.p + "hb:" + consumer
}
func (k keys) ixAll() string                 { return k.p + "ix:all" }
func (k keys) ixStatus(s Status) string      { return k.p + "ix:st:" + string(s) }
func (k keys) ixSubscriber(id string) string { return k.p + "ix:sub:" + id }
func (k keys) ixEvent(id string) string      { return k.p + "ix:evt:" + id }
func (k keys) ixEndpoint(id string) string   { return k.p + "ix:ep:" + id }

// rate is the redis_rate key of an endpoint (the limiter stores it as "rate:" + this).
func (k keys) rate(ep string) string { return k.ratePrefix + ep }

// group is the consumer group every engine process reads the stream through.
const group = "workers"
