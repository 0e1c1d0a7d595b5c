package notifier

import (
	"context"
	"fmt"
	"sync"
)

// Ordering across callers that enqueue out of turn. events numbers each event as it accepts it
// (its seq) and expands events concurrently, in several processes, so the deliveries of two
// events can reach an ordered line in the other order than the events were accepted. Those
// deliveries carry their event's seq (Request.Seq), and a line lets one in only when every
// delivery with a smaller seq is in: until the shard's watermark reaches its seq, it waits in
// the line's gate (P:{T}:og:<line>), and RaiseWatermark lets the gated deliveries in, in seq
// order. The caller raises the watermark to w once every delivery with a seq below w is
// enqueued. Deliveries with seq w itself may join their lines as they come: the caller enqueues
// at most one delivery of a seq per line (one event, one delivery per subscriber), and any more
// join in the order they come.
//
// What it costs: a delivery without a line or without a seq nothing; one with both a read of the
// shard's watermark per enqueue call, and, when it must wait, two sorted-set writes. The caller
// raises the watermark once per batch of events it finishes, one script call per shard.

// releaseBatch bounds the gated deliveries one raiseWatermarkScript call lets in, so that one call
// never holds Redis long; RaiseWatermark calls again while more are due.
const releaseBatch = 500

// RaiseWatermark tells the engine that every delivery with a Request.Seq below w has been
// enqueued: it raises the watermark of every shard this engine works (a shard's never goes down)
// and lets the gated deliveries it reaches into their ordering lines, in seq order. Calling it
// again with the same or a lower w is harmless; the shards are raised concurrently.
func (e *Engine) RaiseWatermark(ctx context.Context, w int64) error {
	if w <= 0 {
		return nil
	}
	shards := e.workedShards()
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() { errs[i] = e.raiseWatermark(ctx, sh, w) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("notifier: raise the watermark: %w", err)
		}
	}
	return nil
}

// raiseWatermark raises one shard's watermark to w and lets in every gated delivery it reaches,
// releaseBatch at a time.
func (e *Engine) raiseWatermark(ctx context.Context, sh *shard, w int64) error {
	for {
		res, err := raiseWatermarkScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p, e.nowMS(), w, releaseBatch).Int64Slice()
		if err != nil {
			return err
		}
		if len(res) != 3 {
			return fmt.Errorf("unexpected answer %v from the watermark script", res)
		}
		if res[2] == 0 {
			return nil
		}
	}
}
