package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
// KEYS[1] expand ZSET.
// ARGV[1] now (Unix ms), ARGV[2] lease end (Unix ms), ARGV[3] owner token, ARGV[4] how many at
// most, ARGV[5] the event key of id "" (the key of event id is it followed by id).
// Returns each claimed event's HASH fields and values; an event whose record is gone (expired)
// leaves the queue instead.
var claimManyScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(due) do
  local ek = ARGV[5] .. id
  local h = redis.call('HGETALL', ek)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
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
	res, err := claimManyScript.Run(ctx, s.rdb, []string{s.keys.expand()}, now.UnixMilli(),
		now.Add(s.cfg.LeaseTTL).UnixMilli(), owner, claimBatch, s.keys.event("")).Slice()
	if err != nil {
		return "", nil, err
	}
	for _, r := range res {
		ev, err := parseEvent(hashOf(r))
		if err != nil || ev == nil {
			s.log.Warn("unreadable event left for its lease to run out", "err", err)
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

// large is a claimed event that needs more than a page, with its first page when it is matched
// already (nil: match from the event's cursor).
type large struct {
	ev    *Event
	first *page
}

// expandClaimed expands events claimed together under owner: the ones that fit one page in one
// go, then the first of the others on its own; the rest are handed back.
func (s *Service) expandClaimed(ctx context.Context, owner string, evs []*Event, stopping <-chan struct{}) error {
	small, big, err := s.sortClaimed(ctx, owner, evs)
	if len(small) > 0 {
		err = errors.Join(err, s.expandSmall(ctx, owner, small))
	}
	for i, l := range big {
		if i > 0 || stopped(stopping) {
			s.release(ctx, l.ev.ID, owner, 0, false)
			continue
		}
		err = errors.Join(err, s.expandLarge(ctx, l, owner, stopping))
	}
	return err
}

// sortClaimed matches the first page of each group of claimed events (one query per group) and
// sorts them into those whose expansion that page completes and those that need more. A group
// whose query fails is handed back for ErrorBackoff.
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
	for _, k := range order {
		g := groups[k]
		p := s.firstPage(ctx, g)
		switch {
		case p.err != nil:
			for _, ev := range g {
				s.release(ctx, ev.ID, owner, s.cfg.ErrorBackoff, false)
			}
			err = errors.Join(err, p.err)
		case p.next != "":
			for _, ev := range g {
				big = append(big, large{ev: ev, first: &p})
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

// firstPage matches the first page of subscribers of a group of events (see groupKey).
func (s *Service) firstPage(ctx context.Context, g []*Event) page {
	ev := g[0]
	for _, e := range g {
		if s.cfg.beforeBatch != nil {
			s.cfg.beforeBatch(e.ID, "")
		}
	}
	if ev.SubscriberID != "" {
		subs, err := s.target(ctx, ev.SubscriberID)
		return page{subs: subs, err: err}
	}
	var ch channels.Channel
	if err := json.Unmarshal(ev.channel, &ch); err != nil {
		return page{err: fmt.Errorf("event %s: channel snapshot: %w", ev.ID, err)}
	}
	var p page
	p.subs, p.next, p.err = s.subs.Targets(ctx, &ch, ev.Type, "", s.cfg.BatchSize)
	return p
}

// expandSmall enqueues the deliveries of events whose expansion one page completes, all in one
// go, and finishes them with one script call. When the enqueueing fails they are handed back
// (batchFailed's rule).
func (s *Service) expandSmall(ctx context.Context, owner string, small []prepared) error {
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
	if s.cfg.afterEnqueue != nil {
		for _, p := range small {
			s.cfg.afterEnqueue(p.ev.ID)
		}
	}
	return s.finishMany(ctx, owner, small, counts)
}

// finishMany marks events expanded (finishScript), each with the deliveries its last batch
// enqueued; events whose lease was lost meanwhile are left to their new owner.
func (s *Service) finishMany(ctx context.Context, owner string, small []prepared, counts map[string]int) error {
	done, err := s.finishEvents(ctx, owner, small, counts)
	if err != nil {
		return err
	}
	for i, p := range small {
		if done[i] {
			s.m.expandedSeconds.Observe(s.cfg.Now().Sub(p.ev.CreatedAt).Seconds())
			s.log.Debug("event expanded", "event_id", p.ev.ID)
		}
	}
	return nil
}

// expandLarge expands one claimed event on its own, batch by batch from its first page or its
// cursor, with a heartbeat that keeps its lease.
func (s *Service) expandLarge(ctx context.Context, l large, owner string, stopping <-chan struct{}) error {
	ev := l.ev
	wctx, stopHeartbeat := s.startHeartbeat(ctx, ev.ID, owner)
	defer stopHeartbeat()
	if ev.Status == StatusExpanded {
		return s.finish(wctx, ev.ID, owner, 0)
	}
	var ch channels.Channel
	if err := json.Unmarshal(ev.channel, &ch); err != nil {
		return fmt.Errorf("event %s: channel snapshot: %w", ev.ID, err)
	}
	return s.expandBatches(ctx, wctx, ev, &ch, owner, stopping, l.first)
}
