package events

import (
	"crypto/sha256"
	"encoding/hex"
)

// Redis keys of the events package. Every key carries the hash tag "{<prefix>:ev}", so all of them
// live on one Cluster slot and one Lua script may write an event record, its place in the
// expansion queue and its idempotency record in one atomic step. Events are few (one per notify
// call) and small; the volume of the fan-out lives in the delivery engine's own keys. Each key
// also starts with "<prefix>:" so an operator's ACL pattern (~herald:*) and a SCAN by prefix find
// them.

// keys builds the package's key names for one prefix.
type keys struct {
	base string // "<prefix>:{<prefix>:ev}:"
}

func newKeys(prefix string) keys {
	return keys{base: prefix + ":{" + prefix + ":ev}:"}
}

// event is one event's record: HASH with the fields named in event.go (f* constants). It expires
// after the delivery retention.
func (k keys) event(id string) string { return k.base + "evt:" + id }

// expand is the queue of events still to be expanded into deliveries: ZSET, members event ids,
// score = the Unix time in ms at which the event may next be claimed. A claim moves the score to
// the end of the claimer's lease; a worker renews it while it works, so an event whose worker died
// becomes claimable again when the lease runs out.
func (k keys) expand() string { return k.base + "expand" }

// seq numbers events in the order they are accepted: STRING, the last number handed out (INCR
// by acceptScript; seeded from the clock, in µs, when missing, so after Redis lost it the numbers
// go on above those handed out before). An event's number is its "seq" field.
func (k keys) seq() string { return k.base + "seq" }

// expanding is the events not yet fully expanded, by number: ZSET, members event ids, score =
// seq. An event leaves it when it is finished (or dropped); the smallest number in it is the
// ordering watermark (see order.go).
func (k keys) expanding() string { return k.base + "expanding" }

// idem is the idempotency record of an Idempotency-Key sent to one channel: STRING holding the JSON
// idemRecord, expiring after the idempotency window (24 h). The client's key is hashed so that any
// printable key makes a short, safe Redis key.
func (k keys) idem(channelID, key string) string {
	h := sha256.Sum256([]byte(key))
	return k.base + "idem:" + channelID + ":" + hex.EncodeToString(h[:16])
}

// backlogFull is set while the delivery engine refuses new work: STRING "1" with a TTL of the
// expansion back-off. While it exists, new events are answered 503 with Retry-After.
func (k keys) backlogFull() string { return k.base + "backlog-full" }
