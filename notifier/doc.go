// Package notifier is herald's delivery engine: every request herald sends (notifications,
// relayed messages, forwarded callbacks) is enqueued here, stored in Redis before Enqueue returns,
// and delivered at least once by whichever herald process gets to it first.
//
// # Queue
//
// Due deliveries sit in a Redis Stream read through one consumer group by every process; retries
// and deferred tries wait in a sorted set by due time and are pumped back into the stream when
// due; each delivery has a record (a hash, holding its attempts too). Every state change is one Lua
// script (scripts.go) on the keys of one shard (keys.go). Processes renew a heartbeat key;
// when one dies its pending stream entries are claimed by the others within a few heartbeats.
// When Redis loses the group (a restart without persistence) the fetcher recreates it. A try
// answered while Redis is unreachable (down, or loading its data after a restart) is recorded
// as soon as Redis answers again, so it is neither made twice nor holds its in-flight lease.
// Finished entries are only acknowledged; the reaper trims the stream every heartbeat up to the
// oldest entry still in flight or unread (trimScript).
//
// # Shards
//
// The queue is Config.QueueShards shards (shard.go), each a full set of the keys above under a
// hash tag of its own, so that on a Redis Cluster the queue's work spreads over the masters. A
// delivery's shard follows from its endpoint: the endpoint, its leases, waiters, rate slot and
// ordering lines share the slot with its deliveries, and no script spans two slots. Each shard
// has its own fetcher, retry pump and batcher in every process; the workers, breakers and rate
// credit are the process's. List merges the shards' pages; Get and Retry look in every shard.
// The shard count may change on a running fleet: every process works the shards of every count
// in use, and Enqueue looks in an endpoint's former shard before its new one (shard.go).
//
// # Cost per delivery
//
// Redis's one thread is what a fleet of herald processes shares, so the hot path is built to
// spend little of it: a fetched batch of entries is begun with one script call (begin.go) and
// the finishes of concurrent tries share one script call (batcher.go). Endpoints are cached
// per process for as long as the endpoints' generation key does not move (any change to an
// endpoint bumps it), so begin reads an endpoint only after a change. Endpoints limited to
// 6,000 a minute or more take up to a second's worth of rate-limit tokens at once and keep the
// surplus as short-lived credit (ratecredit.go). Tries run on long-lived worker goroutines and
// go straight to the HTTP transport. scripts/bench.sh prints the CPU each delivery costs herald,
// Redis and the receiver.
//
// # A delivery's life
//
// A delivery's record has a Status (pending, delivered, failed). While pending it sits in exactly
// one place: the stream (due now; its record names the entry), the delayed set (a retry or a
// deferred try, due later), its endpoint's waiter list (every in-flight slot taken), behind
// the head of its ordering line, or in its line's gate (its Request.Seq is past the shard's
// watermark: see Ordering). Each move is one script (scripts.go); the names are state.go's, in
// Go and in the Lua alike.
//
//	from                  event                                       to                    script
//	(new)                 Enqueue; heads its line, or has none        pending, stream       enqueueScript
//	(new)                 Enqueue; behind the head of its line        pending, line         enqueueScript
//	(new)                 Enqueue; in a line, its seq past watermark  pending, gate         enqueueScript
//	pending, gate         the watermark reaches its seq: heads line   pending, stream       raiseWatermarkScript
//	pending, gate         the watermark reaches its seq: behind head  pending, line         raiseWatermarkScript
//	pending, stream       begin answers go: a lease is taken          pending, in flight    beginScript
//	pending, stream       begin answers wait: every slot taken        pending, waiter list  beginScript
//	pending, stream       begin answers dead: endpoint gone, too old  failed                beginScript
//	pending, stream       begin answers skip: the entry is stale      (unchanged)           beginScript
//	pending, in flight    breaker open, rate limited, shutdown        pending, delayed      deferScript
//	pending, in flight    finishDelivered: the try got a 2xx          delivered             finishScript
//	pending, in flight    finishRetry: failed, tries and age left     pending, delayed      finishScript
//	pending, in flight    finishDead: failed for good                 failed                finishScript
//	pending, delayed      due                                         pending, stream       pumpScript
//	pending, waiter list  a lease of its endpoint is released         pending, stream       finish, defer, wakeScript
//	pending, line         the delivery ahead finished                 pending, stream       finishScript, beginScript
//	pending, anywhere     its endpoint disabled or deleted            failed                endScript
//	delivered, failed     Retry (a replay)                            pending, stream/line  retryScript
//
// A breaker deferral happens before begin (no lease is taken); the others release the lease.
// "Endpoint gone" in begin's dead answer means deleted or disabled (reasons endpoint_deleted,
// endpoint_disabled); DeleteEndpoint and DisableEndpoint (or PutEndpoint with Disabled) mark the
// endpoint so, then end its pending deliveries wherever they are (disable.go): out of the delayed
// set, the waiter list, their ordering line or its gate, or out of the stream with the entry
// acknowledged and the lease dropped, so that a try in flight finishes stale and is not recorded.
//
// A pending delivery says why it waits (Delivery.Waiting, a WaitReason; waitingOf is the rule
// that reads it). The script that takes it out of the stream writes the reason in the HSET it
// makes anyway (fieldWait): beginScript in_flight_full, deferScript breaker_open, rate_limited or
// due, finishScript retry. makeLive clears it, and so does retryScript. A delivery in the stream is
// due. A pending one out of it with no reason is behind the head of its line or in its line's
// gate (ordered), so enqueueScript writes nothing for it. Finishing does not clear the field; it
// means nothing then, and the delivered path writes nothing more.
//
// Delivered and failed records expire after Config.Retention. decide (retry.go) is the one rule
// that picks finishDelivered, finishRetry or finishDead; classify (send.go) the one that judges
// a try's answer.
//
// # A try
//
// Per endpoint: a circuit breaker (per process), a rate limit shared by every process
// (redis_rate) and an in-flight bound shared by every process (a lease set in Redis, with a
// waiter list). An open breaker or a spent rate limit defers the delivery without using a try
// and without holding a worker; a full in-flight bound parks it until a lease is released. The
// try itself is a signed POST (Standard Webhooks: webhook-id, webhook-timestamp,
// webhook-signature) with a per-request timeout; classify (send.go) is the one rule that decides
// whether it delivered, whether to retry, and what the breaker counts. Failed tries are retried
// on Config.RetrySchedule with jitter (a Retry-After on 429/503 is honoured up to a cap); after
// the last, or past Config.MaxDeliveryAge, the delivery is dead-lettered (status failed) and can
// be replayed with Retry. A 410 Gone is never retried: the delivery is dead-lettered on that try
// (reason http_410). An endpoint put with DisableOnGone (herald's subscribers) is disabled by
// that try in the same step, so nothing more is sent to it; its owner then ends its other
// pending deliveries with DisableEndpoint.
//
// # Endpoint health
//
// Engine.Health reports an endpoint's health: each live process's breaker, the last success and
// failure with its error, and the tries of the last hour (health.go). A process tallies its tries
// in memory, in the endpoint's breaker, and writes them with healthScript, one call per shard:
// within a second for a failure, a breaker change, or the first success after a failure; once a
// minute for an endpoint that only succeeds. Nothing is written on a try's path. Breakers stay
// per process; each records its state under its own name when it changes, and Health leaves out
// the processes whose heartbeat is gone.
//
// # Ordering
//
// Deliveries with the same Request.OrderingKey (or to an Ordered endpoint) form a line: only its
// head is live; when it finishes (delivered or dead-lettered) the next goes. A failing head holds
// back only its own line. A line lives in its endpoint's shard: with several shards an ordering
// key orders the deliveries of each endpoint (the contract promises no order across endpoints).
//
// A line's order is the order its deliveries are enqueued in, which is the order accepted when
// the caller enqueues before it answers (the relay does, per session). events answers its 202
// first and expands events concurrently, in several processes, so it numbers its events as it
// accepts them and gives each delivery its event's number (Request.Seq); the line then takes
// them in that order (watermark.go). A delivery with a seq joins its line only once the shard's
// watermark reaches its seq (RaiseWatermark: every delivery numbered below the watermark is
// enqueued); until then it waits in the line's gate, and the raise lets the gated deliveries in
// in seq order, behind what the line holds. Deliveries of the watermark's own seq join as they
// come (one event gives a line at most one delivery). A replay (Retry) is accepted anew, with no
// seq: it joins the tail of its line at once, ahead of what still waits in the gate.
package notifier

// # Decisions where the contract is silent
//
//   - POST /deliveries/{id}/retry on a pending delivery answers 409 (code delivery_pending): it
//     will be tried anyway, and a second copy would only duplicate it. Delivered and failed
//     deliveries can be replayed; the replay keeps the earlier attempts and starts fresh tries.
//   - Idempotency of Enqueue lasts as long as the record: after a finished delivery's retention
//     (Config.Retention) has passed, the same id is accepted as new.
//   - Enqueue batches over 256 requests are atomic per chunk of 256; calling again with the same
//     ids completes a batch that failed half way, without duplicates.
//   - A target refused by the address rules at dial time (a name that resolves to a private
//     address) is dead-lettered at once (reason refused): retrying cannot help.
//   - 4xx answers are retried like the seed says, but only 408 and 429 count against the breaker:
//     a 400 or 404 is the request's fault, not the endpoint's health. 410 Gone is the exception:
//     the receiver says the endpoint is gone for good, so it is dead-lettered at once (http_410),
//     as Svix and Stripe treat it.
//   - A disabled or deleted endpoint's pending deliveries end at once as failed
//     (endpoint_disabled, endpoint_deleted), not each when it would next be tried; a replay of one
//     while its endpoint is still disabled ends so too, without a try.
//   - Breakers are per process (each process learns an endpoint's health itself); rate limits and
//     in-flight bounds are shared by every process through Redis. Health shows every live
//     process's breaker and, as the endpoint's, the worst of them: a process holding it open is
//     what delays deliveries, whichever process is asked.
//   - Every wait has ±10% jitter; a Retry-After on 429/503 lengthens the wait, capped at
//     Config.MaxRetryAfter (10 minutes).
//   - Deliveries are listed newest first by the time they were last accepted (enqueued or
//     replayed); a page may hold fewer than limit items when filters skip many, and next is null
//     at the end.
