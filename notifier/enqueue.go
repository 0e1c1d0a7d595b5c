package notifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
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
	ids := make([]string, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		id := r.ID
		if id == "" {
			id = httpx.NewID("dlv")
		} else if !httpx.ValidID(id) {
			return nil, fmt.Errorf("notifier: request %d: id %q is not a valid id", i, id)
		}
		if !httpx.ValidID(r.EndpointID) {
			return nil, fmt.Errorf("%w: request %d: endpoint id %q", ErrUnknownEndpoint, i, r.EndpointID)
		}
		for _, f := range []struct{ name, v string }{{"event id", r.EventID}, {"subscriber id", r.SubscriberID}} {
			if f.v != "" && !httpx.ValidID(f.v) {
				return nil, fmt.Errorf("notifier: request %d: %s %q is not a valid id", i, f.name, f.v)
			}
		}
		if len(r.OrderingKey) > 256 {
			return nil, fmt.Errorf("notifier: request %d: ordering key longer than 256 bytes", i)
		}
		ids[i] = id
	}
	now := e.nowMS()
	for start := 0; start < len(reqs); start += enqueueChunk {
		end := min(start+enqueueChunk, len(reqs))
		args := enqueueArgs{now: now, maxBacklog: e.cfg.MaxBacklog, horizon: e.horizonMS(), items: make([]enqueueItem, 0, end-start)}
		for i := start; i < end; i++ {
			r := &reqs[i]
			args.items = append(args.items, enqueueItem{id: ids[i], endpoint: r.EndpointID, body: r.Body, event: r.EventID,
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
	return ids, nil
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
func (e *Engine) GetMany(ctx context.Context, ids []string) ([]*Delivery, error) {
	out := make([]*Delivery, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := e.rdb.Pipeline()
	recs := make([]*redis.MapStringStringCmd, len(ids))
	n := 0
	for i, id := range ids {
		if !httpx.ValidID(id) {
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
	for i, id := range ids {
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
	if !httpx.ValidID(id) {
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

// List pages through deliveries, newest first. It walks the most selective index the query
// names (event, subscriber, endpoint, status, all) and filters the rest; a page may hold fewer
// than Limit deliveries when many are filtered out, and next is "" when there are no more.
func (e *Engine) List(ctx context.Context, q ListQuery) ([]*Delivery, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	switch q.Status {
	case "", StatusPending, StatusDelivered, StatusFailed:
	default:
		return nil, "", fmt.Errorf("notifier: unknown status %q", q.Status)
	}
	var idx string
	switch {
	case q.EventID != "":
		idx = e.k.ixEvent(q.EventID)
	case q.SubscriberID != "":
		idx = e.k.ixSubscriber(q.SubscriberID)
	case q.EndpointID != "":
		idx = e.k.ixEndpoint(q.EndpointID)
	case q.Status == StatusFailed:
		idx = e.k.ixFailed() // the rare ones; pending and delivered: ix:all, filtered
	default:
		idx = e.k.ixAll()
	}
	curScore, curID, err := decodeCursor(q.After)
	if err != nil {
		return nil, "", err
	}
	max := "+inf"
	if curID != "" {
		max = strconv.FormatInt(curScore, 10)
	}
	out := make([]*Delivery, 0, q.Limit)
	scanned, budget := 0, 20*q.Limit
	var lastScore int64
	var lastID string
	offset := int64(0)
	for scanned < budget {
		batch := int64(min(2*q.Limit, 500))
		zs, err := e.rdb.ZRevRangeByScoreWithScores(ctx, idx, &redis.ZRangeBy{Max: max, Min: "-inf", Offset: offset, Count: batch}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("notifier: list deliveries: %w", err)
		}
		if len(zs) == 0 {
			return out, "", nil
		}
		offset += int64(len(zs))
		cand := make([]string, 0, len(zs))
		scores := make([]int64, 0, len(zs))
		for _, z := range zs {
			id, _ := z.Member.(string)
			sc := int64(z.Score)
			// Members with the cursor's score come in reverse lexical order; skip up to it.
			if curID != "" && sc == curScore && id >= curID {
				continue
			}
			cand = append(cand, id)
			scores = append(scores, sc)
		}
		ds, err := e.GetMany(ctx, cand)
		if err != nil {
			return nil, "", err
		}
		var dangling []any
		for i, d := range ds {
			scanned++
			lastScore, lastID = scores[i], cand[i]
			if d == nil {
				dangling = append(dangling, cand[i])
				continue
			}
			if matches(d, q) {
				out = append(out, d)
				if len(out) == q.Limit {
					if len(dangling) > 0 {
						e.prune(ctx, idx, dangling)
					}
					return out, encodeCursor(lastScore, lastID), nil
				}
			}
		}
		if len(dangling) > 0 {
			e.prune(ctx, idx, dangling)
		}
		if int64(len(zs)) < batch {
			return out, "", nil
		}
	}
	return out, encodeCursor(lastScore, lastID), nil
}

func (e *Engine) prune(ctx context.Context, idx string, ids []any) {
	args := append([]any{e.k.p, idx}, ids...)
	if err := pruneScript.Run(ctx, e.rdb, []string{e.k.stream()}, args...).Err(); err != nil {
		e.cfg.Logger.Debug("prune delivery index", "err", err)
	}
}

func matches(d *Delivery, q ListQuery) bool {
	return (q.Status == "" || d.Status == q.Status) &&
		(q.SubscriberID == "" || d.SubscriberID == q.SubscriberID) &&
		(q.EventID == "" || d.EventID == q.EventID) &&
		(q.EndpointID == "" || d.EndpointID == q.EndpointID)
}

// ErrBadCursor is returned by List for an after cursor it did not make.
var ErrBadCursor = errors.New("notifier: after is not a cursor returned by a previous page")

func encodeCursor(score int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(score, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	if c == "" {
		return 0, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	s, id, ok := strings.Cut(string(b), ":")
	score, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || !httpx.ValidID(id) {
		return 0, "", ErrBadCursor
	}
	return score, id, nil
}
