package events

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// Expanding events together. Most events reach one page of subscribers or fewer, and for them
// the steps of one event (claim, read, match, enqueue, finish: five round trips, and a heartbeat)
// cost more than their deliveries. So a worker claims up to claimBatch due events at once, with
// one script call that reads them too; matches each group of events that share a channel
// snapshot and type (or a target subscriber) with one page query; enqueues the deliveries of all
// of them together; and finishes them with one script call. An event whose subscribers fill more
// than a page, or that was handed back part way (it has a cursor), is expanded on its own as
// before (expand), with a heartbeat; the worker takes the first such event and hands the others
// back at once, for any worker to take.

// claimBatch is how many due events a worker claims at once.
const claimBatch = 16

// claimManyScript gives a worker the lease on up to ARGV[4] due events and returns them.
//
// KEYS[1] expand ZSET, KEYS[2] expanding ZSET.
// ARGV[1] now (Unix ms), ARGV[2] lease end (Unix ms), ARGV[3] owner token, ARGV[4] how many at
// most, ARGV[5] the event key of id "" (the key of event id is it followed by id).
// Returns each claimed event's HASH fields and values; an event whose record is gone (expired)
// leaves the queue instead (and no longer holds the ordering watermark back).
var claimManyScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(due) do
  local ek = ARGV[5] .. id
  local h = redis.call('HGETALL', ek)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', ek, 'owner', ARGV[3])
    out[#out + 1] = h
  end
end
return out
`)

// claimDue claims up to claimBatch due events for one owner token.
func (s *Service) claimDue(ctx context.Context) (owner string, evs []*Event, err error) {
	owner = ids.New("lease")
	now := s.cfg.Now()
	res, err := claimManyScript.Run(ctx, s.rdb, []string{s.keys.expand(), s.keys.expanding()}, now.UnixMilli(),
		now.Add(s.cfg.LeaseTTL).UnixMilli(), owner, claimBatch, s.keys.event("")).Slice()
	if err != nil {
		return "", nil, err
	}
	for _, r := range res {
		h := hashOf(r)
		ev, err := parseEvent(h)
		if err != nil || ev == nil {
			s.log.Warn("unreadable event left for its lease to run out", "event_id", h[fID], "err", err)
			s.unorder(ctx, h[fID])
			continue
		}
		evs = append(evs, ev)
	}
	return owner, evs, nil
}

// hashOf reads a HGETALL answer given back by a script.
func hashOf(v any) map[string]string {
	kv, _ := v.([]any)
	h := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		h[k], _ = kv[i+1].(string)
	}
	return h
}

// prepared is a claimed event whose whole expansion is known: its one page of subscribers.
type prepared struct {
	ev   *Event
	subs []subscribers.Target
}

// large is a claimed event that needs more than a page: its channel snapshot, and its first page
// when it is matched already (nil: match from the event's cursor).
type large struct {
	ev    *Event
	ch    *channels.Channel
	first *page
}

// expandClaimed expands events claimed together under owner: those that fit one page in one go,
// and the first of the others on its own. The other large events are handed back at once, for
// any worker to take; the first one's heartbeat keeps its lease from the start.
func (s *Service) expandClaimed(ctx context.Context, owner string, evs []*Event, stopping <-chan struct{}) error {
	small, big, err := s.sortClaimed(ctx, owner, evs)
	for i, l := range big {
		if i > 0 || stopped(stopping) {
			s.release(ctx, l.ev.ID, owner, 0, false)
		}
	}
	if len(big) == 0 || stopped(stopping) {
		return errors.Join(err, s.expandSmall(ctx, owner, small))
	}
	l := big[0]
	wctx, stopHeartbeat := s.startHeartbeat(ctx, l.ev.ID, owner)
	defer stopHeartbeat()
	err = errors.Join(err, s.expandSmall(ctx, owner, small))
	return errors.Join(err, s.expandBatches(ctx, wctx, l.ev, l.ch, owner, stopping, l.first))
}

// sortClaimed matches the first page of each group of claimed events (one query per group) and
// sorts them into those whose expansion that page completes and those that need more. A group
// whose snapshot or query fails is handed back for ErrorBackoff.
func (s *Service) sortClaimed(ctx context.Context, owner string, evs []*Event) (small []prepared, big []large, err error) {
	groups := map[string][]*Event{}
	var order []string
	for _, ev := range evs {
		switch {
		case ev.Status == StatusExpanded:
			small = append(small, prepared{ev: ev}) // finished but for its last step
		case ev.cursor != "":
			big = append(big, large{ev: ev}) // handed back part way: go on from its cursor
		default:
			k := groupKey(ev)
			if groups[k] == nil {
				order = append(order, k)
			}
			groups[k] = append(groups[k], ev)
		}
	}
	for i, l := range big { // from a cursor: their snapshot is parsed here, the others' per group
		if big[i].ch, err = l.ev.snapshot(); err != nil {
			s.unorder(ctx, l.ev.ID) // it can never be expanded: it must not hold the others back
			return nil, nil, err    // left claimed: tried again when the lease ends, as before
		}
	}
	for _, k := range order {
		g := groups[k]
		ch, p := s.groupPage(ctx, g)
		switch {
		case p.err != nil:
			for _, ev := range g {
				s.release(ctx, ev.ID, owner, s.cfg.ErrorBackoff, false)
			}
			err = errors.Join(err, p.err)
		case p.next != "":
			for _, ev := range g {
				big = append(big, large{ev: ev, ch: ch, first: &p})
			}
		default:
			for _, ev := range g {
				small = append(small, prepared{ev: ev, subs: p.subs})
			}
		}
	}
	return small, big, err
}

// groupKey: events with the same key match the same subscribers.
func groupKey(ev *Event) string {
	if ev.SubscriberID != "" {
		return "subscriber\x00" + ev.SubscriberID
	}
	return ev.Type + "\x00" + string(ev.channel)
}

// groupPage matches the first page of a group of events (see groupKey), with their channel
// snapshot.
func (s *Service) groupPage(ctx context.Context, g []*Event) (*channels.Channel, page) {
	ch, err := g[0].snapshot()
	if err != nil {
		return nil, page{err: err}
	}
	for _, ev := range g[1:] { // the test hook sees every event's batch
		if s.cfg.beforeBatch != nil {
			s.cfg.beforeBatch(ev.ID, "")
		}
	}
	return ch, s.matchPage(ctx, g[0], ch, "")
}

// expandSmall enqueues the deliveries of events whose expansion one page completes, all in one
// go, and finishes them with one script call. When the enqueueing fails they are handed back
// (batchFailed's rule).
func (s *Service) expandSmall(ctx context.Context, owner string, small []prepared) error {
	if len(small) == 0 {
		return nil
	}
	var reqs []notifier.Request
	for _, p := range small {
		reqs = append(reqs, s.requests(p.ev, p.subs)...)
	}
	counts, enqErr := s.enqueueRequests(ctx, reqs)
	if enqErr != nil {
		var err error
		for _, p := range small {
			err = errors.Join(err, s.batchFailed(ctx, ctx, p.ev.ID, owner, enqErr))
		}
		return err
	}
	ids := make([]string, len(small))
	for i, p := range small {
		s.afterEnqueue(p.ev.ID)
		ids[i] = p.ev.ID
	}
	done, err := s.finishEvents(ctx, owner, ids, counts)
	if err != nil {
		return err
	}
	for i, p := range small {
		if done[i] {
			s.recordExpanded(p.ev)
		}
	}
	return nil
}
