package notifier

// Typed builders of the scripts' arguments: one struct per script (or per item of a script that
// takes many), whose fields are appended in the order the script reads them. ARGV[1] is always
// the key prefix; the scripts read their items with eachItem(first, SIZE, n, f), SIZE being the
// *ItemLen constant beside each item type.

// enqueueArgs are enqueueScript's: ARGV[2..6], then the items.
type enqueueArgs struct {
	now        int64
	maxBacklog int64
	horizon    int64
	// bySubscriber writes the per-subscriber index (Engine.indexesSubscribers)
	bySubscriber bool
	items        []enqueueItem
}

// enqueueItem is one delivery to accept.
type enqueueItem struct {
	id, endpoint string
	body         []byte
	event        string
	subscriber   string
	kind         string
	orderingKey  string
	seq          int64 // Request.Seq: 0 none
}

const enqueueItemLen = 8

func (a enqueueArgs) argv(prefix string) []any {
	out := make([]any, 0, 6+enqueueItemLen*len(a.items))
	out = append(out, prefix, a.now, a.maxBacklog, a.horizon, len(a.items), luaBool(a.bySubscriber))
	for _, it := range a.items {
		out = append(out, it.id, it.endpoint, it.body, it.event, it.subscriber, it.kind, it.orderingKey, it.seq)
	}
	return out
}

// beginArgs are beginScript's: ARGV[2..9], then the items.
type beginArgs struct {
	now             int64
	defaultInFlight int
	leaseMS         int64
	maxAgeMS        int64
	retentionMS     int64
	horizonMS       int64
	generation      int64 // the endpoint generation the caller's cache holds
	items           []beginItem
}

// beginItem is one fetched stream entry.
type beginItem struct {
	id, entry string
	// cachedInFlight is the endpoint's max in flight when the caller has it cached, else "".
	cachedInFlight string
}

const beginItemLen = 3

func (a beginArgs) argv(prefix string) []any {
	out := make([]any, 0, 9+beginItemLen*len(a.items))
	out = append(out, prefix, a.now, a.defaultInFlight, a.leaseMS, a.maxAgeMS, a.retentionMS, a.horizonMS,
		a.generation, len(a.items))
	for _, it := range a.items {
		out = append(out, it.id, it.entry, it.cachedInFlight)
	}
	return out
}

// finishFixed are finishScript's ARGV[2..4], the same for every call of an engine.
type finishFixed struct {
	retentionMS  int64
	attemptsKept int
	horizonMS    int64
}

// finishItem is one try to record; the batcher puts the items of concurrent tries in one call.
type finishItem struct {
	id, entry  string
	now        int64
	outcome    finishOutcome
	due        int64  // finishRetry: when the next try is due (ms)
	deadReason string // finishDead
	attempt    []byte // the attempt's JSON
	// as begin returned them:
	endpoint string
	tries    int // tries used, this one included
	line     string
	accepted int64
}

const finishItemLen = 11

func finishArgv(prefix string, fixed finishFixed, items []*finishCall) []any {
	out := make([]any, 0, 5+finishItemLen*len(items))
	out = append(out, prefix, fixed.retentionMS, fixed.attemptsKept, fixed.horizonMS, len(items))
	for _, c := range items {
		it := &c.item
		out = append(out, it.id, it.entry, it.now, string(it.outcome), it.due, it.deadReason, it.attempt,
			it.endpoint, it.tries, it.line, it.accepted)
	}
	return out
}

// deferArgs are deferScript's.
type deferArgs struct {
	id, entry    string
	now, due     int64
	releaseLease bool
	intervalMS   int64      // > 0: spread over the endpoint's rate slots this far apart
	wait         WaitReason // what the delivery now waits for
}

func (a deferArgs) argv(prefix string) []any {
	return []any{prefix, a.id, a.entry, a.now, a.due, luaBool(a.releaseLease), a.intervalMS, string(a.wait)}
}

// luaBool is a flag as the scripts read it: ARGV[i] == '1'.
func luaBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// healthArgs are healthScript's: ARGV[2..6], then the items.
type healthArgs struct {
	consumer    string
	ttlMS       int64
	bucket      string // the current bucket's field
	bucketStart int64
	items       []healthItem
}

// healthItem is what one process learnt of one endpoint since it last wrote its health.
type healthItem struct {
	ep              string
	tries, failures int
	okAt, failAt    int64 // ms, 0: none
	err             string
	code            int
	breaker         BreakerState // "": unchanged
	breakerAt       int64
}

const healthItemLen = 9

func (a healthArgs) argv(prefix string) []any {
	out := make([]any, 0, 6+healthItemLen*len(a.items))
	out = append(out, prefix, a.consumer, a.ttlMS, a.bucket, a.bucketStart, len(a.items))
	for _, it := range a.items {
		out = append(out, it.ep, it.tries, it.failures, it.okAt, it.failAt, it.err, it.code, string(it.breaker), it.breakerAt)
	}
	return out
}

// endpointArgs are putEndpointScript's.
type endpointArgs struct {
	ep        Endpoint
	now       int64
	overlapMS int64
}

func (a endpointArgs) argv(prefix string) []any {
	return []any{prefix, a.ep.ID, a.ep.URL, a.ep.Secret, a.ep.RateLimitPerMinute, a.ep.MaxInFlight, luaBool(a.ep.Ordered),
		a.now, a.overlapMS, luaBool(a.ep.Disabled), luaBool(a.ep.DisableOnGone)}
}

// endArgs are endScript's.
type endArgs struct {
	endpoint, reason string
	now              int64
	retentionMS      int64
	horizonMS        int64
	limit            int
	offset           int64 // rank in the endpoint's index (newest first) the walk goes on from
}

func (a endArgs) argv(prefix string) []any {
	return []any{prefix, a.endpoint, a.reason, a.now, a.retentionMS, a.horizonMS, a.limit, a.offset}
}
