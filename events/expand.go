package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// Expansion turns an event into one delivery per matching subscriber, in batches: match a page of
// subscribers (ordered by id), enqueue their deliveries, save the last id as the event's cursor,
// repeat. A worker holds a lease on the event while it works (the event's score in the expand
// queue, pushed forward after every batch and by a heartbeat), so if the process dies another
// process, or its restart, claims the event when the lease runs out and resumes from the cursor.
// A batch that was enqueued but whose cursor was not saved is enqueued again; that is harmless
// because a delivery's id is derived from the event and the subscriber (DeliveryID) and the engine
// ignores an id it already has. So nothing is lost and nothing is sent twice.

// DeliveryID is the id of the delivery of event eventID to subscriber subscriberID:
// "<event id>.<subscriber id>", or, when that would pass the 128-character id limit,
// "<event id>:<32 hex digits of the subscriber id's SHA-256>" (a separator of its own, so the
// hashed form of one subscriber can never be the plain form of another).
func DeliveryID(eventID, subscriberID string) string {
	id := eventID + "." + subscriberID
	if len(id) <= ids.MaxLen {
		return id
	}
	h := sha256.Sum256([]byte(subscriberID))
	return eventID + ":" + hex.EncodeToString(h[:16])
}

// work is one worker: expand due events until there are none, then wait for a wake-up or the poll
// interval.
func (s *Service) work(ctx context.Context, stopping <-chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-stopping:
			return
		default:
		}
		claimed, err := s.expandNext(ctx, stopping)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("expanding events", "err", err)
		}
		if claimed > 0 && err == nil {
			continue
		}
		t.Reset(jitter(s.cfg.PollInterval))
		select {
		case <-stopping:
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// ExpandDue expands every event that is due now, in this goroutine, and returns how many it
// expanded or handed back (backlog full, store error). Tests and tools use it; the workers started
// by Start do the same in the background.
func (s *Service) ExpandDue(ctx context.Context) (int, error) {
	n := 0
	for {
		claimed, err := s.expandNext(ctx, nil)
		n += claimed
		if err != nil || claimed == 0 {
			return n, err
		}
	}
}

// expandNext claims the due events (up to claimBatch) and expands them (batch.go). It returns
// how many it claimed: 0 when none was due.
func (s *Service) expandNext(ctx context.Context, stopping <-chan struct{}) (int, error) {
	owner, evs, err := s.claimDue(ctx)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return len(evs), s.expandClaimed(ctx, owner, evs, stopping)
}

// errLeaseLost stops a worker whose lease another worker took over.
var errLeaseLost = errors.New("events: lease on the event was lost")

// startHeartbeat starts the heartbeat that renews the lease while a batch is slow. The context it
// returns is for the work: it is cancelled with errLeaseLost when the lease is lost, so two workers
// do not go on expanding one event. stop ends the heartbeat and waits for it.
func (s *Service) startHeartbeat(ctx context.Context, id, owner string) (wctx context.Context, stop func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		s.heartbeat(wctx, cancel, id, owner)
	}()
	return wctx, func() {
		cancel(nil)
		<-hbDone
	}
}

// expandBatches enqueues the event's batches from its cursor, saving the cursor after each, and
// finishes the event after the last. Between batches it hands the event back when the worker is
// told to stop. ctx is the worker's, wctx the heartbeat's (see startHeartbeat).
func (s *Service) expandBatches(ctx, wctx context.Context, ev *Event, ch *channels.Channel, owner string, stopping <-chan struct{}, first *page) error {
	// The matcher reads pages of subscribers ahead of the enqueueing (up to Prefetch pages), so
	// the two round trips of a batch overlap.
	mctx, mcancel := context.WithCancel(wctx)
	pages := s.pages(mctx, ev, ch, first)
	defer func() {
		mcancel()
		for range pages { // wait for the matcher to return
		}
	}()
	started := false
	for p := range pages {
		if started && stopped(stopping) {
			s.release(ctx, ev.ID, owner, 0, false)
			return nil
		}
		started = true
		n, err := s.enqueueBatch(wctx, ev, p)
		if err != nil {
			return s.batchFailed(ctx, wctx, ev.ID, owner, err)
		}
		if p.next == "" {
			return s.expanded(ctx, ev, owner, n)
		}
		if err := s.progress(ctx, ev.ID, owner, p.next, n); err != nil {
			return err
		}
	}
	// The matcher stopped without a last page: the work was cancelled.
	if cause := context.Cause(wctx); errors.Is(cause, errLeaseLost) {
		return cause
	}
	s.release(ctx, ev.ID, owner, 0, false)
	return ctx.Err()
}

// enqueueBatch enqueues one page of subscribers (or returns the error matching it ran into) and
// returns how many deliveries it enqueued.
func (s *Service) enqueueBatch(ctx context.Context, ev *Event, p page) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	counts, err := s.enqueueRequests(ctx, s.requests(ev, p.subs))
	if err != nil {
		return 0, err
	}
	s.afterEnqueue(ev.ID)
	return counts[ev.ID], nil
}

// afterEnqueue runs the test hook of that name.
func (s *Service) afterEnqueue(eventID string) {
	if s.cfg.afterEnqueue != nil {
		s.cfg.afterEnqueue(eventID)
	}
}

// expanded marks the event expanded after its last batch, which enqueued n deliveries.
func (s *Service) expanded(ctx context.Context, ev *Event, owner string, n int) error {
	if err := s.finish(ctx, ev.ID, owner, n); err != nil {
		return err
	}
	s.recordExpanded(ev)
	return nil
}

// recordExpanded counts and logs an event whose expansion just finished.
func (s *Service) recordExpanded(ev *Event) {
	s.m.expandedSeconds.Observe(s.cfg.Now().Sub(ev.CreatedAt).Seconds())
	s.log.Debug("event expanded", "event_id", ev.ID)
}

// batchFailed ends the work on an event whose batch failed with err. A lost lease is returned as
// it is (the new owner goes on); a full backlog hands the event back for FullBackoff and refuses
// new events as long; any other error hands it back for ErrorBackoff and is returned.
func (s *Service) batchFailed(ctx, wctx context.Context, id, owner string, err error) error {
	if cause := context.Cause(wctx); errors.Is(cause, errLeaseLost) {
		return cause
	}
	if errors.Is(err, notifier.ErrBacklogFull) {
		s.log.Info("delivery backlog is full: expansion waits", "event_id", id, "retry_in", s.cfg.FullBackoff)
		s.release(ctx, id, owner, s.cfg.FullBackoff, true)
		return nil
	}
	s.release(ctx, id, owner, s.cfg.ErrorBackoff, false)
	return fmt.Errorf("event %s: %w", id, err)
}

// page is one batch of subscribers to enqueue. next is the cursor after it, empty when it is the
// event's final batch.
type page struct {
	subs []subscribers.Target
	next string
	err  error
}

// pages matches an event's subscribers page by page from its saved cursor (or after first, a
// page matched already, which comes first), in a goroutine that stops after the last page, an
// error, or when ctx ends; the channel is closed when it returns.
func (s *Service) pages(ctx context.Context, ev *Event, ch *channels.Channel, first *page) <-chan page {
	out := make(chan page, s.cfg.Prefetch)
	go func() {
		defer close(out)
		after := ev.cursor
		if first != nil {
			out <- *first // the buffer holds it: Prefetch is at least 1
			after = first.next
		}
		for {
			p := s.matchPage(ctx, ev, ch, after)
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil || p.next == "" {
				return
			}
			after = p.next
		}
	}()
	return out
}

// matchPage matches one page of an event's subscribers after cursor after: its target subscriber,
// or the subscribers of its channel snapshot ch.
func (s *Service) matchPage(ctx context.Context, ev *Event, ch *channels.Channel, after string) page {
	if s.cfg.beforeBatch != nil {
		s.cfg.beforeBatch(ev.ID, after)
	}
	var p page
	if ev.SubscriberID != "" {
		p.subs, p.err = s.target(ctx, ev.SubscriberID)
	} else {
		p.subs, p.next, p.err = s.subs.Targets(ctx, ch, ev.Type, after, s.cfg.BatchSize)
	}
	return p
}

// target returns the one subscriber a targeted event goes to, or none when it was deleted or is no
// longer verified since the event was accepted.
func (s *Service) target(ctx context.Context, id string) ([]subscribers.Target, error) {
	sub, err := s.subs.Get(ctx, id)
	if errors.Is(err, subscribers.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !sub.Active() {
		return nil, nil
	}
	return []subscribers.Target{{ID: sub.ID, Token: sub.Token}}, nil
}

// requests are the deliveries of an event to subs.
func (s *Service) requests(ev *Event, subs []subscribers.Target) []notifier.Request {
	reqs := make([]notifier.Request, len(subs))
	for i, sub := range subs {
		reqs[i] = notifier.Request{
			ID:           DeliveryID(ev.ID, sub.ID),
			EndpointID:   subscribers.EndpointID(sub.ID),
			Body:         body(ev.tail, sub.Token),
			EventID:      ev.ID,
			SubscriberID: sub.ID,
			Kind:         KindNotification,
			Seq:          ev.seq,
		}
	}
	return reqs
}

// enqueueRequests hands deliveries to the engine, EnqueueChunk at a time with up to
// EnqueueInFlight calls at once, and returns how many it enqueued per event. A subscriber whose
// endpoint the engine does not know (deleted since it matched) is skipped. After an error no
// further chunk is started, the chunks in flight are waited for, and the first error is returned;
// some chunks may be stored, and enqueueing them again is a no-op.
func (s *Service) enqueueRequests(ctx context.Context, reqs []notifier.Request) (map[string]int, error) {
	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, s.cfg.EnqueueInFlight)
	for chunk := range slices.Chunk(reqs, s.cfg.EnqueueChunk) {
		slots <- struct{}{}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			<-slots
			break
		}
		wg.Go(func() {
			done, err := s.enqueueChunk(ctx, chunk)
			mu.Lock()
			for _, r := range done {
				counts[r.EventID]++
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			<-slots
		})
	}
	wg.Wait()
	return counts, firstErr
}

// enqueueChunk enqueues one chunk in one engine call and returns what it enqueued; when one of
// its endpoints is unknown it enqueues the chunk one by one to skip that one and keep the others.
func (s *Service) enqueueChunk(ctx context.Context, chunk []notifier.Request) ([]notifier.Request, error) {
	_, err := s.eng.Enqueue(ctx, chunk...)
	if err == nil {
		return chunk, nil
	}
	if !errors.Is(err, notifier.ErrUnknownEndpoint) {
		return nil, err
	}
	var done []notifier.Request
	for _, r := range chunk {
		_, err := s.eng.Enqueue(ctx, r)
		switch {
		case err == nil:
			done = append(done, r)
		case errors.Is(err, notifier.ErrUnknownEndpoint):
			s.log.Warn("subscriber has no delivery endpoint; skipped", "event_id", r.EventID, "subscriber_id", r.SubscriberID)
		default:
			return done, err
		}
	}
	return done, nil
}

func (s *Service) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, id, owner string) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.progress(ctx, id, owner, "", 0); errors.Is(err, errLeaseLost) {
				cancel(errLeaseLost)
				return
			} else if err != nil && ctx.Err() == nil {
				s.log.Warn("renewing the lease on an event", "event_id", id, "err", err)
			}
		}
	}
}

func (s *Service) progress(ctx context.Context, id, owner, cursor string, n int) error {
	until := s.cfg.Now().Add(s.cfg.LeaseTTL).UnixMilli()
	r, err := progressScript.Run(ctx, s.rdb, []string{s.keys.expand(), s.keys.event(id), s.keys.backlogFull()},
		id, owner, until, cursor, n).Int()
	if err != nil {
		return err
	}
	if r == 0 {
		return errLeaseLost
	}
	return nil
}

func (s *Service) finish(ctx context.Context, id, owner string, n int) error {
	done, err := s.finishEvents(ctx, owner, []string{id}, map[string]int{id: n})
	if err != nil {
		return err
	}
	if !done[0] {
		return errLeaseLost
	}
	return nil
}

// finishEvents marks events expanded (finishScript), each with counts[id] deliveries from its
// last batch, and says which it finished: not those whose lease was lost. Then it raises the
// engine's ordering watermark to where the finish left it (order.go).
func (s *Service) finishEvents(ctx context.Context, owner string, ids []string, counts map[string]int) ([]bool, error) {
	args := []any{owner, s.cfg.Now().UTC().Format(time.RFC3339Nano), s.keys.event("")}
	for _, id := range ids {
		args = append(args, id, counts[id])
	}
	res, err := finishScript.Run(ctx, s.rdb, []string{s.keys.expand(), s.keys.backlogFull(), s.keys.seq(), s.keys.expanding()},
		args...).Int64Slice()
	if err == nil && len(res) != 1+len(ids) {
		err = errors.New("events: unexpected answer from the finish script")
	}
	if err != nil {
		return nil, err
	}
	s.raiseWatermark(ctx, res[0], false)
	done := make([]bool, len(ids))
	for i, r := range res[1:] {
		done[i] = r == 1
	}
	return done, nil
}

// release hands an event back, to be claimed again after wait; full also refuses new events for
// as long. Errors are logged: the lease runs out by itself anyway.
func (s *Service) release(ctx context.Context, id, owner string, wait time.Duration, full bool) {
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	at := s.cfg.Now().Add(jitter(wait)).UnixMilli()
	var flag int64
	if full {
		flag = wait.Milliseconds()
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.keys.expand(), s.keys.event(id), s.keys.backlogFull()},
		id, owner, at, flag).Err(); err != nil {
		s.log.Warn("handing an event back", "event_id", id, "err", err)
	}
}

func stopped(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// jitter returns d ± 10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/10 + rand.N(d/5+1)
}
