package subscribers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
)

// ReasonGone is the disabled_reason of a subscriber whose endpoint answered 410 Gone.
const ReasonGone = "endpoint answered 410 Gone"

// DefaultDisableAfter is how long every delivery to a subscriber may fail before it is disabled.
const DefaultDisableAfter = 24 * time.Hour

const (
	// writeTimeout bounds the Redis work of one batch.
	writeTimeout = 5 * time.Second
	// retryDelay is the pause after a batch could not be written for a transient error; its
	// outcomes are kept and written with the next batch.
	retryDelay = time.Second
	// clearChunk and failChunk bound the ids per HDEL and per failure script, so that one command
	// never holds Redis long.
	clearChunk = 1000
	failChunk  = 200
	// endTimeout bounds ending the pending deliveries of the subscribers one batch disabled: the
	// engine walks each one's recent deliveries (a few µs each), more than writeTimeout allows
	// for a busy subscriber.
	endTimeout = time.Minute
)

// EndpointDisabler is what Health needs of the delivery engine (*notifier.Engine): to turn off
// a disabled subscriber's endpoint, ending its pending deliveries.
type EndpointDisabler interface {
	DisableEndpoint(ctx context.Context, id string) error
}

// Health watches the delivery engine's outcomes and disables the subscribers whose endpoints are
// gone (410) or have failed every delivery try for DisableAfter, and then their engine endpoints
// (notifier.Engine.DisableEndpoint): their pending deliveries end at once (endpoint_disabled),
// and nothing more is sent to them until they are enabled again. Register Observe with the
// engine's OnOutcome, and run Health with Start and Stop around the engine's own (start it first,
// stop it last, so that it records what the engine reports while it drains).
//
// Observe never waits for Redis: it merges the outcome into a map that holds at most one entry per
// subscriber (what health needs of a subscriber's outcomes since the last write: whether it
// answered 410, whether a delivery succeeded, and its failures after the last success) and returns.
// Health's goroutine writes that map in batches: one HDEL for the subscribers whose last outcome
// was a success, one script for those that failed, and, rarely, a Disable and a DisableEndpoint
// per subscriber to disable. So the hand-over is bounded by the number of subscribers, nothing is dropped when Redis
// is slow (outcomes coalesce instead), and a 410 always disables.
//
// A batch that fails for a transient error (redisx.IsTransient) is kept and written again; one
// that fails for any other error is logged and dropped, so that it cannot hold up the batches
// after it. A Disable or DisableEndpoint that fails for such an error is logged and skipped alone.
type Health struct {
	store        *Store
	engine       EndpointDisabler
	disableAfter time.Duration
	log          *slog.Logger
	wake         chan struct{} // capacity 1: pending has work

	mu      sync.Mutex
	pending map[string]observed // by subscriber id, handed over by Observe and not yet written

	// life owns the writing goroutine from Start until Stop; its Stopping signal asks it to write
	// what is pending and return.
	life *lifecycle.Service
}

// observed is what a subscriber's outcomes since the last write say, in order.
type observed struct {
	gone     bool             // a try answered 410: disable
	clear    bool             // a delivery succeeded: delete the failure record first
	failFrom time.Time        // the first failed try after the last success; zero when none
	failAt   time.Time        // the last failed try
	last     notifier.Outcome // the last failed try, for a disabled_reason
}

// then returns what a and, after it, b say together.
func (a observed) then(b observed) observed {
	out := b
	out.gone = a.gone || b.gone
	if !b.clear { // b's failures, if any, continue a's
		out.clear = a.clear
		if !a.failFrom.IsZero() {
			out.failFrom = a.failFrom
		}
		if b.failAt.IsZero() {
			out.failAt, out.last = a.failAt, a.last
		}
	}
	return out
}

// NewHealth returns a Health for store and the engine that delivers to its subscribers;
// disableAfter <= 0 means DefaultDisableAfter.
func NewHealth(store *Store, engine EndpointDisabler, disableAfter time.Duration, log *slog.Logger) *Health {
	if disableAfter <= 0 {
		disableAfter = DefaultDisableAfter
	}
	if log == nil {
		log = slog.Default()
	}
	return &Health{
		store: store, engine: engine, disableAfter: disableAfter, log: log,
		wake: make(chan struct{}, 1), pending: map[string]observed{},
		life: lifecycle.NewService("subscriber health", "writer"),
	}
}

// Observe takes one outcome of the engine and returns at once; see Health. Outcomes of endpoints
// that are not subscribers, and deferrals (no try was made), are ignored. Outcomes observed before
// Start are kept and written once it runs; those observed after Stop are not written.
func (h *Health) Observe(o notifier.Outcome) {
	id, ok := SubscriberOf(o)
	if !ok {
		return
	}
	var ob observed
	switch {
	case o.Delivered:
		ob.clear = true
	case o.StatusCode == http.StatusGone:
		ob.gone = true
	case !o.Tried:
		return // a wait for the breaker or the rate limit, or a delivery given up: no answer to judge
	default:
		now := h.store.now()
		ob.failFrom, ob.failAt, ob.last = now, now, o
	}
	h.mu.Lock()
	if prev, ok := h.pending[id]; ok {
		ob = prev.then(ob)
	}
	h.pending[id] = ob
	h.mu.Unlock()
	h.poke()
}

// poke wakes the goroutine without waiting.
func (h *Health) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Start starts the goroutine that writes what Observe hands over. ctx's values are kept, not its
// cancellation: Stop ends the goroutine. A second Start returns an error wrapping
// lifecycle.ErrStarted, a Start after Stop one wrapping lifecycle.ErrStopped.
func (h *Health) Start(ctx context.Context) error {
	return h.life.Start(ctx, func(wctx context.Context) error {
		h.life.Go(func() { h.run(wctx, h.life.Stopping()) })
		return nil
	})
}

// Stop writes what was handed over and stops the goroutine. If ctx ends first, the write is
// cancelled and an error wrapping ctx's returned. Only the first call does anything; a Stop before
// Start does nothing.
func (h *Health) Stop(ctx context.Context) error { return h.life.Stop(ctx) }

// run writes batches until stopping is closed, then writes the last one.
func (h *Health) run(ctx context.Context, stopping <-chan struct{}) {
	for {
		select {
		case <-h.wake:
		case <-stopping:
			if n, err := h.flush(ctx, true); err != nil {
				h.log.Warn("subscriber health: delivery outcomes not recorded at shutdown", "subscribers", n, "err", err)
			}
			return
		}
		n, err := h.flush(ctx, false)
		switch {
		case err == nil:
		case !redisx.IsTransient(err):
			h.log.Error("subscriber health: could not record delivery outcomes; dropped them", "subscribers", n, "err", err)
		default:
			h.log.Warn("subscriber health: could not record delivery outcomes; retrying", "subscribers", n, "err", err)
			t := time.NewTimer(retryDelay)
			select {
			case <-t.C:
				h.poke()
			case <-stopping:
				t.Stop()
			}
		}
	}
}

// flush writes what is pending and returns the batch's size. On a transient error the batch goes
// back to pending (its writes are idempotent and it merges before what came meanwhile), unless
// final; on any other error it is dropped.
func (h *Health) flush(ctx context.Context, final bool) (int, error) {
	h.mu.Lock()
	batch := h.pending
	h.pending = make(map[string]observed, len(batch))
	h.mu.Unlock()
	err := h.write(ctx, batch)
	if err == nil || final || !redisx.IsTransient(err) {
		return len(batch), err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ob := range batch {
		if later, ok := h.pending[id]; ok {
			ob = ob.then(later)
		}
		h.pending[id] = ob
	}
	return len(batch), err
}

// write records one batch: clears the failure records of the subscribers that succeeded, records
// the failures and disables the subscribers that answered 410 or failed for too long, then their
// endpoints.
func (h *Health) write(ctx context.Context, batch map[string]observed) error {
	if len(batch) == 0 {
		return nil
	}
	disabled, err := h.writeStore(ctx, batch)
	if err != nil {
		return err
	}
	return h.endDeliveries(ctx, disabled)
}

// writeStore writes one batch to the store and returns the subscribers to disable, disabled now
// or found so already (the batch that disabled one may have failed before its endpoint was).
func (h *Health) writeStore(ctx context.Context, batch map[string]observed) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var cleared, failed, gone []string
	for id, ob := range batch {
		switch {
		case ob.gone:
			gone = append(gone, id)
		case !ob.failFrom.IsZero():
			failed = append(failed, id)
		case ob.clear:
			cleared = append(cleared, id)
		}
	}
	var disabled []string
	for _, id := range gone {
		if ok, err := h.disable(ctx, id, ReasonGone); err != nil {
			return nil, err
		} else if ok {
			disabled = append(disabled, id)
		}
	}
	for c := range slices.Chunk(cleared, clearChunk) {
		if err := h.store.rdb.HDel(ctx, h.store.k.failing(), c...).Err(); err != nil {
			return nil, err
		}
	}
	for c := range slices.Chunk(failed, failChunk) {
		d, err := h.recordFailures(ctx, c, batch)
		if err != nil {
			return nil, err
		}
		disabled = append(disabled, d...)
	}
	return disabled, nil
}

// endDeliveries disables the engine endpoints of disabled subscribers: their pending deliveries
// end at once, and nothing more is sent to them. It returns transient errors only (the batch is
// kept and written again); any other error is logged, and the other subscribers done.
func (h *Health) endDeliveries(ctx context.Context, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, endTimeout)
	defer cancel()
	for _, id := range ids {
		err := h.engine.DisableEndpoint(ctx, EndpointID(id))
		switch {
		case err == nil:
		case redisx.IsTransient(err):
			return err
		default:
			h.log.Error("subscriber health: could not end the deliveries of a disabled subscriber; skipped it", "subscriber_id", id, "err", err)
		}
	}
	return nil
}

// failureScript records failed tries: for each subscriber, the first failure since the last
// success is kept.
//
// KEYS[1] docs hash; KEYS[2] failing hash.
// ARGV: triples of subscriber id, "1" when a success came before the failures (the record is
// deleted first) else "0", and the first of the failures (unix ms).
// Returns, per triple, the first failure's time (unix ms), or -1 when the subscriber no longer
// exists.
var failureScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    out[#out + 1] = -1
  else
    if ARGV[i + 1] == '1' then redis.call('HDEL', KEYS[2], id) end
    redis.call('HSETNX', KEYS[2], id, ARGV[i + 2])
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[2], id))
  end
end
return out
`)

// recordFailures runs failureScript for ids and disables those that have failed for too long,
// which it returns (see writeStore).
func (h *Health) recordFailures(ctx context.Context, ids []string, batch map[string]observed) ([]string, error) {
	s := h.store
	args := make([]any, 0, 3*len(ids))
	for _, id := range ids {
		ob := batch[id]
		del := "0"
		if ob.clear {
			del = "1"
		}
		args = append(args, id, del, strconv.FormatInt(ob.failFrom.UnixMilli(), 10))
	}
	firsts, err := failureScript.Run(ctx, s.rdb, []string{s.k.docs(), s.k.failing()}, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	var disabled []string
	for i, first := range firsts {
		ob := batch[ids[i]]
		since := time.UnixMilli(first)
		if first < 0 || ob.failAt.Sub(since) < h.disableAfter {
			continue
		}
		reason := fmt.Sprintf("every delivery failed for %s (since %s); the last try %s",
			h.disableAfter, since.UTC().Format(time.RFC3339), describeOutcome(ob.last))
		if ok, err := h.disable(ctx, ids[i], reason); err != nil {
			return nil, err
		} else if ok {
			disabled = append(disabled, ids[i])
		}
	}
	return disabled, nil
}

// disable disables subscriber id for reason, and reports whether it is disabled (now, or was
// already; not when it was deleted meanwhile: its delete ended its deliveries). It returns
// transient errors only (the batch is kept and written again); any other error is logged, and
// the rest of the batch written.
func (h *Health) disable(ctx context.Context, id, reason string) (bool, error) {
	changed, err := h.store.Disable(ctx, id, reason)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		return false, nil
	case redisx.IsTransient(err):
		return false, err
	default:
		h.log.Error("subscriber health: could not disable a subscriber; skipped it", "subscriber_id", id, "reason", reason, "err", err)
		return false, nil
	}
	if changed {
		h.log.Warn("subscriber disabled", "subscriber_id", id, "reason", reason)
	}
	return true, nil
}

// describeOutcome says what a failed try got, for a disabled_reason.
func describeOutcome(o notifier.Outcome) string {
	switch {
	case o.StatusCode > 0:
		return fmt.Sprintf("answered %d", o.StatusCode)
	case o.Reason != "":
		return "failed: " + o.Reason
	}
	return "failed"
}
