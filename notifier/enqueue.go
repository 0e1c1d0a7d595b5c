package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/ids"
)

// enqueueChunk is how many requests one enqueue script call takes; a larger Enqueue is split,
// and each chunk is atomic on its own.
const enqueueChunk = 256

// Enqueue stores deliveries durably and returns their ids once they are in Redis. A request whose
// id already exists is a no-op that returns the same id (make ids deterministic for idempotent
// fan-out). Requests are checked first: an invalid one fails the call with nothing written.
// ErrUnknownEndpoint names an endpoint never registered; ErrBacklogFull means the backlog is at
// its bound (answer 503 with Retry-After). Batches over 256 requests are written in atomic
// chunks: on an error some earlier chunks may be stored, and calling again with the same ids
// completes the batch without duplicates.
func (e *Engine) Enqueue(ctx context.Context, reqs ...Request) ([]string, error) {
	accepted := make([]string, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		id := r.ID
		if id == "" {
			id = ids.New("dlv")
		} else if !ids.Valid(id) {
			return nil, fmt.Errorf("notifier: request %d: id %q is not a valid id", i, id)
		}
		if !ids.Valid(r.EndpointID) {
			return nil, fmt.Errorf("%w: request %d: endpoint id %q", ErrUnknownEndpoint, i, r.EndpointID)
		}
		for _, f := range []struct{ name, v string }{{"event id", r.EventID}, {"subscriber id", r.SubscriberID}} {
			if f.v != "" && !ids.Valid(f.v) {
				return nil, fmt.Errorf("notifier: request %d: %s %q is not a valid id", i, f.name, f.v)
			}
		}
		if len(r.OrderingKey) > 256 {
			return nil, fmt.Errorf("notifier: request %d: ordering key longer than 256 bytes", i)
		}
		accepted[i] = id
	}
	now := e.nowMS()
	for start := 0; start < len(reqs); start += enqueueChunk {
		end := min(start+enqueueChunk, len(reqs))
		args := enqueueArgs{now: now, maxBacklog: e.cfg.MaxBacklog, horizon: e.horizonMS(), items: make([]enqueueItem, 0, end-start)}
		for i := start; i < end; i++ {
			r := &reqs[i]
			args.items = append(args.items, enqueueItem{id: accepted[i], endpoint: r.EndpointID, body: r.Body, event: r.EventID,
				subscriber: r.SubscriberID, kind: r.Kind, orderingKey: r.OrderingKey})
		}
		res, err := enqueueScript.Run(ctx, e.rdb, []string{e.k.stream()}, args.argv(e.k.p)...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("notifier: enqueue: %w", err)
		}
		switch res[0] {
		case -1:
			e.m.backlogFull.Inc()
			return nil, ErrBacklogFull
		case -2:
			i := start + int(res[1]) - 1
			return nil, fmt.Errorf("%w: %q (request %d)", ErrUnknownEndpoint, reqs[i].EndpointID, i)
		}
		for i := start; i < end; i++ {
			if res[1+i-start] == 1 {
				e.m.enqueued.Inc()
			}
		}
	}
	// New entries are in the stream, which wakes the blocked readers: the retry pump (poke) only
	// serves the delayed set, which enqueueing does not touch.
	return accepted, nil
}

// Get returns a delivery's record, ErrNotFound for an unknown (or expired) id.
func (e *Engine) Get(ctx context.Context, id string) (*Delivery, error) {
	ds, err := e.GetMany(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if ds[0] == nil {
		return nil, ErrNotFound
	}
	return ds[0], nil
}

// GetMany returns the records of ids in one round trip, with nil for unknown ids.
func (e *Engine) GetMany(ctx context.Context, wanted []string) ([]*Delivery, error) {
	out := make([]*Delivery, len(wanted))
	if len(wanted) == 0 {
		return out, nil
	}
	pipe := e.rdb.Pipeline()
	recs := make([]*redis.MapStringStringCmd, len(wanted))
	n := 0
	for i, id := range wanted {
		if !ids.Valid(id) {
			continue
		}
		recs[i] = pipe.HGetAll(ctx, e.k.record(id))
		n++
	}
	if n == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("notifier: read deliveries: %w", err)
	}
	for i, id := range wanted {
		if recs[i] == nil {
			continue
		}
		h := recs[i].Val()
		if len(h) == 0 || h[string(fieldStatus)] == "" {
			continue
		}
		out[i] = toDelivery(id, h)
	}
	return out, nil
}

func msTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	return time.UnixMilli(atoi64(s)).UTC()
}

func toDelivery(id string, rec map[string]string) *Delivery {
	h := func(f recordField) string { return rec[string(f)] }
	var atts []string
	if a := h(fieldAttempts); a != "" {
		atts = strings.Split(a, "\n")
	}
	d := &Delivery{
		ID:           id,
		EventID:      h(fieldEvent),
		SubscriberID: h(fieldSubscriber),
		EndpointID:   h(fieldEndpoint),
		Kind:         h(fieldKind),
		Target:       egress.Redact(h(fieldURL)),
		Status:       Status(h(fieldStatus)),
		CreatedAt:    msTime(h(fieldCreated)),
		DeadReason:   h(fieldDeadReason),
		Attempts:     make([]Attempt, 0, len(atts)),
	}
	if d.Status == StatusPending && h(fieldNext) != "" {
		t := msTime(h(fieldNext))
		d.NextAttemptAt = &t
	}
	for _, a := range atts {
		var at Attempt
		if json.Unmarshal([]byte(a), &at) == nil {
			d.Attempts = append(d.Attempts, at)
		}
	}
	return d
}

// Retry replays a delivered or failed delivery with fresh tries (its attempts so far are kept).
// ErrNotFound for an unknown id, ErrPending for one still pending, ErrBacklogFull when the backlog
// is at its bound.
func (e *Engine) Retry(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return ErrNotFound
	}
	res, err := retryScript.Run(ctx, e.rdb, []string{e.k.stream()}, e.k.p, id, e.nowMS(), e.cfg.MaxBacklog, e.horizonMS()).Int64()
	if err != nil {
		return fmt.Errorf("notifier: retry %s: %w", id, err)
	}
	switch res {
	case -1:
		return ErrBacklogFull
	case -2:
		return ErrNotFound
	case -3:
		return ErrPending
	}
	return nil // the replay went into the stream (or its ordering line), not the delayed set
}
