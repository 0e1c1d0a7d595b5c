package notifier

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	shards := e.workedShards()
	walks := make([]*listWalk, len(shards))
	for i, sh := range shards {
		walks[i] = &listWalk{e: e, sh: sh, q: q, idx: e.indexFor(sh, q), curScore: score, curID: id, out: make([]*Delivery, 0, q.Limit)}
	}
	if len(walks) == 1 {
		if err := walks[0].run(ctx); err != nil {
			return nil, "", err
		}
		return walks[0].page()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(walks))
	for i, w := range walks {
		wg.Go(func() { errs[i] = w.run(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, "", err
	}
	out, next := mergePages(walks, q.Limit)
	return out, next, nil
}

// indexFor is the index List walks for q in shard sh: the most selective one it names.
func (e *Engine) indexFor(sh *shard, q ListQuery) string {
	switch {
	case q.EventID != "":
		return sh.k.ixEvent(q.EventID)
	case q.SubscriberID != "" && !e.indexesSubscribers():
		return sh.k.ixEndpoint(e.cfg.SubscriberEndpoint(q.SubscriberID)) // filtered by subscriber (matches)
	case q.SubscriberID != "":
		return sh.k.ixSubscriber(q.SubscriberID)
	case q.EndpointID != "":
		return sh.k.ixEndpoint(q.EndpointID)
	case q.Status == StatusFailed:
		return sh.k.ixFailed() // the rare ones; pending and delivered: the index of all, filtered
	}
	return sh.k.ixAll()
}

// listWalk is one List call in one shard: it reads the index newest first, from the cursor on, in
// batches, until the page is full, the index ends, or it has looked at 20 pages' worth.
type listWalk struct {
	e         *Engine
	sh        *shard
	q         ListQuery
	idx       string
	curScore  int64 // the cursor: the last item of the previous page
	curID     string
	offset    int64
	scanned   int
	lastScore int64 // the last index entry looked at
	lastID    string
	ended     bool // the index ended before the page was full
	out       []*Delivery
	outScores []int64 // the index score of each delivery in out
	dangling  []any   // ids whose record expired, pruned from the index as the walk goes
}

// run walks until the page is full, the index ends, or 20 pages' worth were looked at.
func (w *listWalk) run(ctx context.Context) error {
	for w.scanned < 20*w.q.Limit && len(w.out) < w.q.Limit {
		more, err := w.step(ctx)
		if err != nil {
			return err
		}
		if !more {
			w.ended = len(w.out) < w.q.Limit
			return nil
		}
	}
	return nil
}

// page is the walk's page on its own and the cursor of the next ("" when there is none).
func (w *listWalk) page() ([]*Delivery, string, error) {
	if w.ended {
		return w.out, "", nil
	}
	return w.out, encodeCursor(w.lastScore, w.lastID), nil
}

// listed is a delivery on a page with its place in the index order: newest first, then by id
// descending (the order of ZREVRANGEBYSCORE, which the cursor follows).
type listed struct {
	d     *Delivery
	score int64
	id    string
}

func (a listed) before(b listed) bool { return a.score > b.score || a.score == b.score && a.id > b.id }

// mergePages merges the pages of walks over several shards into one. A walk that stopped short of
// a full page without reaching its index's end (the scan bound) has not looked past its last
// entry: the merged page must not go past the latest such entry either (it may hold that entry
// itself), and the next page starts after it.
func mergePages(walks []*listWalk, limit int) ([]*Delivery, string) {
	var all []listed
	var bound *listed
	for _, w := range walks {
		for i, d := range w.out {
			all = append(all, listed{d: d, score: w.outScores[i], id: d.ID})
		}
		if !w.ended && len(w.out) < limit {
			if b := (listed{score: w.lastScore, id: w.lastID}); bound == nil || b.before(*bound) {
				bound = &b
			}
		}
	}
	slices.SortFunc(all, func(a, b listed) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	var out []listed
	for _, l := range all {
		if len(out) == limit || bound != nil && bound.before(l) {
			break
		}
		out = append(out, l)
	}
	page := make([]*Delivery, len(out))
	for i, l := range out {
		page[i] = l.d
	}
	switch {
	case len(out) == limit:
		last := out[len(out)-1]
		return page, encodeCursor(last.score, last.id)
	case bound != nil:
		return page, encodeCursor(bound.score, bound.id)
	}
	return page, ""
}

// step reads one batch of the index and keeps its matching deliveries; more is false at the
// index's end.
func (w *listWalk) step(ctx context.Context) (more bool, err error) {
	batch := int64(min(2*w.q.Limit, 500))
	ids, scores, read, err := w.read(ctx, batch)
	if err != nil || read == 0 {
		return false, err
	}
	ds, err := w.e.getMany(ctx, []*shard{w.sh}, ids)
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
			w.outScores = append(w.outScores, scores[i])
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
	args := append([]any{w.sh.k.p, w.idx}, w.dangling...)
	if err := pruneScript.Run(ctx, w.e.rdb, []string{w.sh.k.stream()}, args...).Err(); err != nil {
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
