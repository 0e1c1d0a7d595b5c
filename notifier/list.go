package notifier

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/ids"
	"github.com/redis/go-redis/v9"
)

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
	score, id, err := decodeCursor(q.After)
	if err != nil {
		return nil, "", err
	}
	w := &listWalk{e: e, q: q, idx: e.indexFor(q), curScore: score, curID: id, out: make([]*Delivery, 0, q.Limit)}
	return w.run(ctx)
}

// indexFor is the index List walks for q: the most selective one it names.
func (e *Engine) indexFor(q ListQuery) string {
	switch {
	case q.EventID != "":
		return e.k.ixEvent(q.EventID)
	case q.SubscriberID != "":
		return e.k.ixSubscriber(q.SubscriberID)
	case q.EndpointID != "":
		return e.k.ixEndpoint(q.EndpointID)
	case q.Status == StatusFailed:
		return e.k.ixFailed() // the rare ones; pending and delivered: the index of all, filtered
	}
	return e.k.ixAll()
}

// listWalk is one List call: it reads the index newest first, from the cursor on, in batches,
// until the page is full, the index ends, or it has looked at 20 pages' worth.
type listWalk struct {
	e         *Engine
	q         ListQuery
	idx       string
	curScore  int64 // the cursor: the last item of the previous page
	curID     string
	offset    int64
	scanned   int
	lastScore int64
	lastID    string
	out       []*Delivery
	dangling  []any // ids whose record expired, pruned from the index as the walk goes
}

func (w *listWalk) run(ctx context.Context) ([]*Delivery, string, error) {
	for w.scanned < 20*w.q.Limit {
		more, err := w.step(ctx)
		if err != nil {
			return nil, "", err
		}
		if len(w.out) == w.q.Limit {
			return w.out, encodeCursor(w.lastScore, w.lastID), nil
		}
		if !more {
			return w.out, "", nil
		}
	}
	return w.out, encodeCursor(w.lastScore, w.lastID), nil
}

// step reads one batch of the index and keeps its matching deliveries; more is false at the
// index's end.
func (w *listWalk) step(ctx context.Context) (more bool, err error) {
	batch := int64(min(2*w.q.Limit, 500))
	ids, scores, read, err := w.read(ctx, batch)
	if err != nil || read == 0 {
		return false, err
	}
	ds, err := w.e.GetMany(ctx, ids)
	if err != nil {
		return false, err
	}
	defer w.prune(ctx)
	for i, d := range ds {
		w.scanned++
		w.lastScore, w.lastID = scores[i], ids[i]
		if d == nil {
			w.dangling = append(w.dangling, ids[i])
			continue
		}
		if matches(d, w.q) {
			if w.out = append(w.out, d); len(w.out) == w.q.Limit {
				return true, nil
			}
		}
	}
	return read == batch, nil
}

// read returns the next batch of the index past the cursor: ids with their scores, and how many
// index entries it read.
func (w *listWalk) read(ctx context.Context, batch int64) ([]string, []int64, int64, error) {
	max := "+inf"
	if w.curID != "" {
		max = strconv.FormatInt(w.curScore, 10)
	}
	zs, err := w.e.rdb.ZRevRangeByScoreWithScores(ctx, w.idx, &redis.ZRangeBy{Max: max, Min: "-inf", Offset: w.offset, Count: batch}).Result()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("notifier: list deliveries: %w", err)
	}
	w.offset += int64(len(zs))
	ids := make([]string, 0, len(zs))
	scores := make([]int64, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		sc := int64(z.Score)
		// Members with the cursor's score come in reverse lexical order; skip up to it.
		if w.curID != "" && sc == w.curScore && id >= w.curID {
			continue
		}
		ids = append(ids, id)
		scores = append(scores, sc)
	}
	return ids, scores, int64(len(zs)), nil
}

// prune removes from the index the ids the walk found without a record.
func (w *listWalk) prune(ctx context.Context) {
	if len(w.dangling) == 0 {
		return
	}
	args := append([]any{w.e.k.p, w.idx}, w.dangling...)
	if err := pruneScript.Run(ctx, w.e.rdb, []string{w.e.k.stream()}, args...).Err(); err != nil {
		w.e.cfg.Logger.Debug("prune delivery index", "err", err)
	}
	w.dangling = w.dangling[:0]
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
	if !ok || err != nil || !ids.Valid(id) {
		return 0, "", ErrBadCursor
	}
	return score, id, nil
}
