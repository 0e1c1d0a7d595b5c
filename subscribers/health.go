package subscribers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/notifier"
)

// ReasonGone is the disabled_reason of a subscriber whose endpoint answered 410 Gone.
const ReasonGone = "endpoint answered 410 Gone"

// DefaultDisableAfter is how long every delivery to a subscriber may fail before it is disabled.
const DefaultDisableAfter = 24 * time.Hour

// Health watches the delivery engine's outcomes and disables the subscribers whose endpoints are
// gone (410) or have failed every delivery try for DisableAfter. Register Observe with the
// engine's OnOutcome. A failure costs one script; successes clear the failure record with one
// HDEL per group of concurrent successes (while one HDEL runs, the successes reported meanwhile
// gather for the next, and each Observe returns once its own id is cleared), so a busy fan-out
// does not cost a Redis command per delivery. Disabling, which is rare, costs a read and a write
// more.
type Health struct {
	store        *Store
	disableAfter time.Duration
	log          *slog.Logger

	mu   sync.Mutex
	open *clearBatch // successes gathering while the previous batch is written; nil when none
	last *clearBatch // the batch written last (or being written)
}

// clearBatch is a group of successes whose failure records one HDEL clears.
type clearBatch struct {
	ids  []string
	done chan struct{} // closed when written; err is set before
	err  error
}

// NewHealth returns a Health for store; disableAfter <= 0 means DefaultDisableAfter.
func NewHealth(store *Store, disableAfter time.Duration, log *slog.Logger) *Health {
	if disableAfter <= 0 {
		disableAfter = DefaultDisableAfter
	}
	if log == nil {
		log = slog.Default()
	}
	return &Health{store: store, disableAfter: disableAfter, log: log}
}

// failureScript records a failed try: the first failure since the last success is kept.
//
// KEYS[1] docs hash; KEYS[2] failing hash.
// ARGV[1] subscriber id; ARGV[2] now (unix ms).
// Returns the first failure's time (unix ms), or -1 when the subscriber no longer exists.
var failureScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
`)

// outcomeTimeout bounds the Redis work done for one outcome: the engine waits for Observe.
const outcomeTimeout = 2 * time.Second

// Observe takes one delivery try's outcome. Outcomes of endpoints that are not subscribers are
// ignored.
func (h *Health) Observe(o notifier.Outcome) {
	id, ok := strings.CutPrefix(o.EndpointID, EndpointPrefix)
	if !ok || id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), outcomeTimeout)
	defer cancel()
	if err := h.observe(ctx, id, o); err != nil {
		h.log.Warn("subscriber health: could not record a delivery outcome", "subscriber_id", id, "err", err)
	}
}

func (h *Health) observe(ctx context.Context, id string, o notifier.Outcome) error {
	s := h.store
	if o.Delivered {
		return h.clear(ctx, id)
	}
	if o.StatusCode == http.StatusGone {
		return h.disable(ctx, id, ReasonGone)
	}
	if !o.Tried {
		return nil // a wait for the breaker or the rate limit, or a delivery given up: no answer to judge
	}
	now := s.now()
	first, err := failureScript.Run(ctx, s.rdb, []string{s.k.docs(), s.k.failing()}, id, now.UnixMilli()).Int64()
	if err != nil || first < 0 {
		return err
	}
	since := time.UnixMilli(first)
	if now.Sub(since) < h.disableAfter {
		return nil
	}
	return h.disable(ctx, id, fmt.Sprintf("every delivery failed for %s (since %s); the last try %s",
		h.disableAfter, since.UTC().Format(time.RFC3339), describeOutcome(o)))
}

// clear deletes id's failure record, together with those of the successes reported while the
// previous clear was being written (group commit): one HDEL at a time, and each caller returns
// when the HDEL holding its id is done.
func (h *Health) clear(ctx context.Context, id string) error {
	h.mu.Lock()
	if b := h.open; b != nil {
		b.ids = append(b.ids, id)
		h.mu.Unlock()
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := &clearBatch{ids: []string{id}, done: make(chan struct{})}
	prev := h.last
	h.open, h.last = b, b
	h.mu.Unlock()
	// This caller writes the batch once the previous one is written; others join meanwhile.
	if prev != nil {
		select {
		case <-prev.done:
		case <-ctx.Done():
		}
	}
	h.mu.Lock()
	h.open = nil
	ids := b.ids
	h.mu.Unlock()
	if err := ctx.Err(); err != nil {
		b.err = err
	} else {
		b.err = h.store.rdb.HDel(ctx, h.store.k.failing(), ids...).Err()
	}
	close(b.done)
	return b.err
}

func (h *Health) disable(ctx context.Context, id, reason string) error {
	changed, err := h.store.Disable(ctx, id, reason)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if changed {
		h.log.Warn("subscriber disabled", "subscriber_id", id, "reason", reason)
	}
	return nil
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
