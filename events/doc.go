// Package events accepts notifications about a channel (POST /channel/{id}/notify) and fans each
// one out to the channel's subscribers as deliveries of the notifier engine; GET /events/{id}
// shows an event with its deliveries.
//
// # Acceptance
//
// A notify call is validated, the channel is read, the matching subscribers are counted (the
// "subscribers" of the 202: the number of verified, enabled subscribers whose filters match the
// channel and type, exact at one moment during the call; subscribers.Store.CountMatch serves it
// from a cache that any change of who is active or of their filters invalidates, so a repeated
// notify on a channel costs one round trip), and the event is stored in one Lua script together with its entry in the expansion queue and,
// with an Idempotency-Key, the key's record. Only then is 202 answered: the event is durable. A
// repeated key (per channel, for 24 h) answers the first call's 202 again and creates nothing; the
// same key with another request is 409. While the engine's backlog is full (expansion saw
// notifier.ErrBacklogFull) or too many events await expansion, new events get 503 with
// Retry-After.
//
// A subscriber_id targets one subscriber: it must exist (404) and be verified and not disabled
// (409 subscriber_not_verified). Its filters are not applied: naming it is explicit.
//
// # Expansion
//
// Workers (Start/Stop) claim due events with a short lease, then match subscribers a batch at a
// time (subscribers.Store.Targets: ids and tokens, ordered by id), enqueue one notifier.Request per subscriber and
// save the last id as a cursor. The delivery id is DeliveryID(event, subscriber), so re-enqueueing
// a batch after a crash is a no-op in the engine: a killed process loses nothing and duplicates
// nothing; its event is resumed from the cursor when the lease runs out. When the engine's
// backlog is full the event is handed back and tried again later, never dropped. The matcher reads
// up to Prefetch pages ahead of the enqueueing, and each page is enqueued EnqueueChunk deliveries
// per call, so no single Redis script holds other API calls up for long, with EnqueueInFlight
// calls at once, so Redis does not sit idle for a round trip between chunks.
//
// Most events reach one page of subscribers or fewer, and the steps of one event would cost more
// than its deliveries; so a worker claims up to 16 due events with one script call that reads
// them too, matches each group of events sharing a channel snapshot and type with one query,
// enqueues the deliveries of all that fit one page together and finishes them with one script
// call (batch.go). An event needing more pages goes on alone, from the page already matched, with
// a heartbeat renewing its lease; the worker hands the other such events back at once.
//
// # Order
//
// An ordered subscriber gets notifications in the order of their 202s, although events are
// expanded concurrently by several workers in several processes (order.go). acceptScript numbers
// each event (INCR) in the step that stores it; each delivery carries its event's number
// (notifier.Request.Seq); the smallest number still being expanded (or the next number, when none
// is) is the watermark, read when events are finished and passed to the engine
// (Engine.RaiseWatermark), whose ordering lines take deliveries in number order and only as far
// as the watermark. An event holds back the ordered deliveries of later events until it is
// finished: resumed after a crash, handed back while the backlog is full. One whose record expired
// or cannot be read is dropped from the order. Every process also passes the watermark on each
// Config.WatermarkInterval, in case the process that finished an event died before it could.
//
// # Metrics
//
// herald_events_accepted_total{type}, herald_events_refused_total (503, backlog full),
// herald_event_expansion_seconds (acceptance to last delivery enqueued) and
// herald_events_awaiting_expansion.
//
// # Bodies
//
// Each subscriber gets its own body with its own token, in seed 002's shape (see payload.go):
// update_notification has exactly token, type, channel, chat_type, update_type and message;
// republish_request and unpublish_request have token, type, channel, channel_data (the channel
// document at acceptance, as a JSON string) and chat_type. The part after the token is built once
// per event, so large messages are not re-encoded for every subscriber.
package events
