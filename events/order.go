package events

import (
	"context"
	"time"
)

// Ordering. The contract promises a subscriber created with "ordered": true its notifications in
// the order they were accepted: the order of the 202s. Expansion is concurrent (several workers
// in each of several processes, each enqueueing chunks of several events at once), so the
// deliveries of two events can reach the engine in either order. So acceptScript numbers every
// event (its seq) in the same atomic step that queues it, and every delivery carries its event's
// number (notifier.Request.Seq). The events not yet fully expanded are kept by number
// (keys.expanding): the smallest of them, or the next number when there is none, is the
// watermark: every event numbered below it has all its deliveries in the engine. finishScript
// reads it in the step that finishes a batch of events, and the worker passes it to the engine
// (Engine.RaiseWatermark), whose ordering lines let in deliveries in number order and only as
// far as the watermark (see notifier/watermark.go). The deliveries of the event at the
// watermark itself go in as they come, so a large event expanded over many pages reaches an
// ordered subscriber while it is still being expanded; the events after it wait for it.
//
// Liveness. The watermark moves as soon as the oldest event being expanded is finished. An event
// whose worker dies is resumed by another after its lease and finished there; an event whose
// record expired leaves the queue (claimManyScript), and one whose record cannot be read is
// taken out of the order (unorder): none holds the ordered lines forever. A process that dies
// between a finish and passing the watermark on leaves that to the others: every process reads
// the watermark each WatermarkInterval and passes it on (which also restores it to a queue
// shard that lost it in a failover). An event that cannot be expanded yet (the engine's backlog
// is full, a store error) holds back the ordered deliveries of the events after it, as it must.
//
// Cost: an INCR and a sorted-set entry per event; one watermark call per batch of events a
// worker finishes (one script call per queue shard, and none when this process passed the same
// or a higher watermark already); nothing per delivery but its number.

// raiseWatermark passes the watermark w to the engine, unless this process passed one as high
// already (force: the periodic pass, which passes it all the same). A failure is logged: the next
// finish, or watermarkLoop, passes it again.
func (s *Service) raiseWatermark(ctx context.Context, w int64, force bool) {
	if !force && w <= s.raised.Load() {
		return
	}
	if err := s.eng.RaiseWatermark(ctx, w); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("passing the ordering watermark to the engine", "watermark", w, "err", err)
		}
		return
	}
	s.noteRaised(w)
}

// noteRaised records that this process passed watermark w to the engine.
func (s *Service) noteRaised(w int64) {
	for r := s.raised.Load(); w > r && !s.raised.CompareAndSwap(r, w); r = s.raised.Load() {
	}
}

// watermarkLoop reads the watermark every WatermarkInterval and passes it to the engine, whether
// or not this process passed it already (see Liveness above).
func (s *Service) watermarkLoop(ctx context.Context, stopping <-chan struct{}) {
	t := time.NewTicker(s.cfg.WatermarkInterval)
	defer t.Stop()
	for {
		select {
		case <-stopping:
			return
		case <-t.C:
		}
		s.passWatermark(ctx)
	}
}

// passWatermark reads the watermark and passes it to the engine even when this process passed
// one as high already (a shard may have lost it in a failover).
func (s *Service) passWatermark(ctx context.Context) {
	w, err := watermarkScript.Run(ctx, s.rdb, []string{s.keys.seq(), s.keys.expanding()}).Int64()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading the ordering watermark", "err", err)
		}
		return
	}
	s.raiseWatermark(ctx, w, true)
}

// unorder takes an event that can never be expanded (its record cannot be read) out of the
// order, so that it does not hold back the ordered deliveries of the events after it.
func (s *Service) unorder(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if err := s.rdb.ZRem(ctx, s.keys.expanding(), id).Err(); err != nil {
		s.log.Warn("taking an unreadable event out of the order", "event_id", id, "err", err)
	}
}
