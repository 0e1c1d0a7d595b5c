package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/ids"
)

// enqueueChunk is how many requests one enqueue script call takes; a larger Enqueue is split,
// and each chunk is atomic on its own.
const enqueueChunk = 256

// maxSeq bounds Request.Seq: the scripts hold it as a Lua number and a sorted set's score, both
// exact up to 2^53.
const maxSeq = 1 << 53

// Enqueue stores deliveries durably and returns their ids once they are in Redis. A request whose
// id already exists is a no-op that returns the same id (make ids deterministic for idempotent
// fan-out). Requests are checked first: an invalid one fails the call with nothing written.
// ErrUnknownEndpoint names an endpoint never registered; ErrBacklogFull means the backlog is at
// its bound (answer 503 with Retry-After). Batches over 256 requests are written in atomic
// chunks: on an error some earlier chunks may be stored, and calling again with the same ids
// completes the batch without duplicates.
func (e *Engine) Enqueue(ctx context.Context, reqs ...Request) ([]string, error) {
	accepted, err := checkRequests(reqs, e.cfg.SubscriberEndpoint)
	if err != nil {
		return nil, err
	}
	batches, err := e.route(ctx, reqs, accepted)
	if err != nil {
		return nil, fmt.Errorf("notifier: enqueue: %w", err)
	}
	now := e.nowMS()
	for _, b := range batches {
		for start := 0; start < len(b.idx); start += enqueueChunk {
			chunk := b.idx[start:min(start+enqueueChunk, len(b.idx))]
			if err := e.enqueueChunk(ctx, b.sh, now, reqs, accepted, chunk); err != nil {
				return nil, err
			}
		}
	}
	// New entries are in the stream, which wakes the blocked readers: the retry pump (poke) only
	// serves the delayed set, which enqueueing does not touch.
	return accepted, nil
}

// checkRequests checks every request before anything is written and returns their ids (made
// where a request has none). subEndpoint is Config.SubscriberEndpoint.
func checkRequests(reqs []Request, subEndpoint func(string) string) ([]string, error) {
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
		if r.SubscriberID != "" && subEndpoint != nil && subEndpoint(r.SubscriberID) != r.EndpointID {
			return nil, fmt.Errorf("notifier: request %d: endpoint %q is not subscriber %q's", i, r.EndpointID, r.SubscriberID)
		}
		if len(r.OrderingKey) > 256 {
			return nil, fmt.Errorf("notifier: request %d: ordering key longer than 256 bytes", i)
		}
		if r.Seq < 0 || r.Seq > maxSeq {
			return nil, fmt.Errorf("notifier: request %d: seq %d is not between 0 and %d", i, r.Seq, maxSeq)
		}
		accepted[i] = id
	}
	return accepted, nil
}

// enqueueChunk runs the enqueue script for the requests idx (at most enqueueChunk), all for shard
// sh. An endpoint missing from sh but found in another shard (the shard count changed) is
// copied to sh and the chunk run again.
func (e *Engine) enqueueChunk(ctx context.Context, sh *shard, now int64, reqs []Request, accepted []string, idx []int) error {
	args := enqueueArgs{now: now, maxBacklog: e.cfg.MaxBacklog, horizon: e.horizonMS(), bySubscriber: e.indexesSubscribers(),
		items: make([]enqueueItem, 0, len(idx))}
	for _, i := range idx {
		r := &reqs[i]
		args.items = append(args.items, enqueueItem{id: accepted[i], endpoint: r.EndpointID, body: r.Body, event: r.EventID,
			subscriber: r.SubscriberID, kind: r.Kind, orderingKey: r.OrderingKey, seq: r.Seq})
	}
	copied := map[string]bool{}
	for {
		res, err := e.cfg.Replication.RunScript(ctx, e.rdb, enqueueScript, []string{sh.k.stream()}, args.argv(sh.k.p)...).Int64Slice()
		if err != nil {
			return fmt.Errorf("notifier: enqueue: %w", err)
		}
		switch res[0] {
		case -1:
			e.m.backlogFull.Inc()
			return ErrBacklogFull
		case -2:
			i := idx[res[1]-1]
			ep := reqs[i].EndpointID
			unknown := fmt.Errorf("%w: %q (request %d)", ErrUnknownEndpoint, ep, i)
			if copied[ep] {
				return unknown
			}
			copied[ep] = true
			ok, err := e.copyEndpoint(ctx, ep, sh)
			if err != nil {
				return fmt.Errorf("notifier: enqueue: %w", err)
			}
			if !ok {
				return unknown
			}
			continue // with the endpoint in place
		}
		for j := range idx {
			if res[1+j] == 1 {
				e.m.enqueued.Inc()
			}
		}
		return nil
	}
}

// shardBatch is the requests (their indexes) an Enqueue call sends to one shard, in call order.
type shardBatch struct {
	sh  *shard
	idx []int
}

// route sends each request to its endpoint's home shard, unless the shard count changed and one
// of its former homes holds it already (a no-op there, not a duplicate here) or holds its
// ordering line, live or gated (it joins the line there, keeping the order accepted).
func (e *Engine) route(ctx context.Context, reqs []Request, accepted []string) ([]shardBatch, error) {
	dest := make([]*shard, len(reqs))
	others := e.otherLayouts() // once per call: none at all but while the shard count changes
	var probes []*formerProbe
	for i := range reqs {
		dest[i] = e.home(reqs[i].EndpointID)
		if len(others) == 0 {
			continue
		}
		if former := dest[i].formerIn(reqs[i].EndpointID, others); len(former) > 0 {
			probes = append(probes, &formerProbe{i: i, shards: former})
		}
	}
	if len(probes) > 0 {
		if err := e.probeFormer(ctx, reqs, accepted, probes); err != nil {
			return nil, err
		}
		for _, p := range probes {
			if p.found != nil {
				dest[p.i] = p.found
			}
		}
	}
	var out []shardBatch
	pos := map[*shard]int{}
	for i, sh := range dest {
		j, ok := pos[sh]
		if !ok {
			j = len(out)
			pos[sh] = j
			out = append(out, shardBatch{sh: sh})
		}
		out[j].idx = append(out[j].idx, i)
	}
	return out, nil
}

// formerProbe is one request's look into its endpoint's former homes: found is the first that
// holds the delivery, else the first that holds its ordering line, else nil.
type formerProbe struct {
	i      int
	shards []*shard
	found  *shard
}

// probeFormer asks every former home of the probed requests, in one round trip, whether it holds
// the delivery or its ordering line.
func (e *Engine) probeFormer(ctx context.Context, reqs []Request, accepted []string, probes []*formerProbe) error {
	pipe := e.rdb.Pipeline()
	type ask struct{ rec, line *redis.IntCmd }
	asks := make([][]ask, len(probes))
	for j, p := range probes {
		r := &reqs[p.i]
		line := lineOfEndpoint + r.EndpointID
		if r.OrderingKey != "" {
			line = lineOfKey + r.OrderingKey
		}
		for _, sh := range p.shards { // a line holds deliveries in its list or, waiting, in its gate
			asks[j] = append(asks[j], ask{pipe.Exists(ctx, sh.k.record(accepted[p.i])),
				pipe.Exists(ctx, sh.k.line(line), sh.k.gate(line))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for j, p := range probes {
		for k, a := range asks[j] {
			if a.rec.Val() == 1 {
				p.found = p.shards[k]
				break
			}
			if a.line.Val() > 0 && p.found == nil {
				p.found = p.shards[k]
			}
		}
	}
	return nil
}

// copyEndpoint copies endpoint ep to shard to from another shard that has it: its home under
// another shard count, or any shard this engine works. False when no shard has it.
func (e *Engine) copyEndpoint(ctx context.Context, ep string, to *shard) (bool, error) {
	from := e.formerHomes(ep)
	for _, sh := range e.workedShards() {
		if sh != to && !slices.Contains(from, sh) {
			from = append(from, sh)
		}
	}
	pipe := e.rdb.Pipeline() // one round trip for every shard that may have it, not one each
	reads := make([]*redis.MapStringStringCmd, len(from))
	for i, sh := range from {
		reads[i] = pipe.HGetAll(ctx, sh.k.endpoint(ep))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, err
	}
	for i, sh := range from {
		fields := reads[i].Val()
		if len(fields) == 0 {
			continue
		}
		args := []any{to.k.p, ep, e.nowMS()}
		for f, v := range fields {
			args = append(args, f, v)
		}
		if err := copyEndpointScript.Run(ctx, e.rdb, []string{to.k.stream()}, args...).Err(); err != nil {
			return false, err
		}
		e.cfg.Logger.Info("endpoint copied to its home in the current shard count", "endpoint", ep, "from", sh.tag, "to", to.tag)
		return true, nil
	}
	return false, nil
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
	return e.getMany(ctx, e.workedShards(), wanted)
}

// getMany looks for the records of ids in shards, in one round trip.
func (e *Engine) getMany(ctx context.Context, shards []*shard, wanted []string) ([]*Delivery, error) {
	out := make([]*Delivery, len(wanted))
	if len(wanted) == 0 {
		return out, nil
	}
	pipe := e.rdb.Pipeline()
	recs := make([][]*redis.MapStringStringCmd, len(wanted))
	n := 0
	for i, id := range wanted {
		if !ids.Valid(id) {
			continue
		}
		for _, sh := range shards {
			recs[i] = append(recs[i], pipe.HGetAll(ctx, sh.k.record(id)))
		}
		n++
	}
	if n == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("notifier: read deliveries: %w", err)
	}
	for i, id := range wanted {
		for _, rec := range recs[i] {
			if h := rec.Val(); len(h) > 0 && h[string(fieldStatus)] != "" {
				out[i] = toDelivery(id, h, len(e.cfg.RetrySchedule))
				break
			}
		}
	}
	return out, nil
}

// shardOf returns the shard that holds delivery id's record, nil when none does.
func (e *Engine) shardOf(ctx context.Context, id string) (*shard, error) {
	shards := e.workedShards()
	if len(shards) == 1 {
		return shards[0], nil // the scripts tell an unknown id themselves
	}
	pipe := e.rdb.Pipeline()
	found := make([]*redis.IntCmd, len(shards))
	for i, sh := range shards {
		found[i] = pipe.Exists(ctx, sh.k.record(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for i, f := range found {
		if f.Val() == 1 {
			return shards[i], nil
		}
	}
	return nil, nil
}

func msTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	return time.UnixMilli(atoi64(s)).UTC()
}

// toDelivery is the API's view of a record; retries is the length of the retry schedule.
func toDelivery(id string, rec map[string]string, retries int) *Delivery {
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
	d.Waiting = waitingOf(d.Status, h(fieldEntry), WaitReason(h(fieldWait)), h(fieldLine), int(atoi64(h(fieldTries))), retries)
	for _, a := range atts {
		var at Attempt
		if json.Unmarshal([]byte(a), &at) == nil {
			d.Attempts = append(d.Attempts, at)
		}
	}
	return d
}

// waitingOf is the one rule for why a pending delivery waits, from its record: in the stream (an
// entry) it is due or being tried; out of it, it waits for what the script that took it out wrote
// (fieldWait); with nothing written it is behind the head of its ordering line, where Enqueue and
// Retry put a delivery without a word (so the hot path writes nothing for it). tries is the tries
// used, retries the schedule's length. Nil unless pending.
func waitingOf(status Status, entry string, wait WaitReason, line string, tries, retries int) *Waiting {
	if status != StatusPending {
		return nil
	}
	w := &Waiting{Reason: wait}
	switch {
	case entry != "":
		w.Reason = WaitDue
	case wait != "":
	case line != "":
		w.Reason = WaitOrdered
	default:
		w.Reason = WaitDue // a record written before reasons were kept
	}
	if tries > 0 {
		w.Retry, w.Of = tries, retries
	}
	return w
}

// Retry replays a delivered or failed delivery with fresh tries (its attempts so far are kept).
// ErrNotFound for an unknown id, ErrPending for one still pending, ErrBacklogFull when the backlog
// is at its bound.
func (e *Engine) Retry(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return ErrNotFound
	}
	sh, err := e.shardOf(ctx, id)
	if err != nil {
		return fmt.Errorf("notifier: retry %s: %w", id, err)
	}
	if sh == nil {
		return ErrNotFound
	}
	res, err := e.cfg.Replication.RunScript(ctx, e.rdb, retryScript, []string{sh.k.stream()}, sh.k.p, id, e.nowMS(), e.cfg.MaxBacklog, e.horizonMS(),
		luaBool(e.indexesSubscribers())).Int64()
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

// indexesSubscribers reports whether deliveries are indexed under their subscriber as well as
// their endpoint: only when the engine cannot tell a subscriber's endpoint
// (Config.SubscriberEndpoint).
func (e *Engine) indexesSubscribers() bool { return e.cfg.SubscriberEndpoint == nil }
