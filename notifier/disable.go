package notifier

import (
	"context"
	"fmt"
)

// Disabling and deleting endpoints. A disabled or deleted endpoint gets nothing more: the endpoint
// is marked first (disabled, or gone), so that begin dead-letters any delivery of it that comes up
// from then on (one enqueued concurrently, a replay), and then every pending delivery of it is
// ended at once wherever it is (endScript), rather than each when it next comes due.

// endBatch bounds one endScript call: the deliveries it ends, and the index entries it walks.
const endBatch = 500

// DisableEndpoint turns an endpoint off: it gets nothing more. Its pending deliveries end now as
// failed, dead_reason endpoint_disabled, wherever they are (due, waiting for a retry, for an
// in-flight slot or behind the head of their ordering line, or in flight: that try's answer is
// then not recorded); any that comes up later is dead-lettered without a try. PutEndpoint with
// Disabled false enables it again; Retry then replays what was ended. Disabling a disabled or
// unknown endpoint ends whatever is still pending and is otherwise a no-op.
func (e *Engine) DisableEndpoint(ctx context.Context, id string) error {
	for _, sh := range e.workedShards() {
		if err := disableScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p, id, e.nowMS()).Err(); err != nil {
			return fmt.Errorf("notifier: disable endpoint %s: %w", id, err)
		}
	}
	return e.endPending(ctx, id, ReasonEndpointDisabled)
}

// endPending ends every pending delivery of endpoint ep as failed with reason, in every shard
// this engine works (the shards of every shard count in use, as DeleteEndpoint), and reports
// each as dead.
func (e *Engine) endPending(ctx context.Context, ep, reason string) error {
	ended := 0
	for _, sh := range e.workedShards() {
		n, err := e.endPendingIn(ctx, sh, ep, reason)
		ended += n
		if err != nil {
			return fmt.Errorf("notifier: end the pending deliveries of endpoint %s (%d ended): %w", ep, ended, err)
		}
	}
	if ended > 0 {
		e.cfg.Logger.Info("ended the pending deliveries of an endpoint", "endpoint", ep, "reason", reason, "deliveries", ended)
	}
	return nil
}

// endPendingIn runs endScript on shard sh until it has walked the endpoint's waiters and index,
// and returns how many deliveries it ended.
func (e *Engine) endPendingIn(ctx context.Context, sh *shard, ep, reason string) (int, error) {
	args := endArgs{endpoint: ep, reason: reason, retentionMS: e.cfg.Retention.Milliseconds(), horizonMS: e.horizonMS(),
		limit: endBatch}
	ended := 0
	for {
		args.now = e.nowMS()
		res, err := endScript.Run(ctx, e.rdb, []string{sh.k.stream()}, args.argv(sh.k.p)...).Slice()
		if err != nil {
			return ended, err
		}
		more, next, ids, err := parseEndAnswer(res)
		if err != nil {
			return ended, err
		}
		ended += len(ids)
		e.m.deliveries.WithLabelValues("dead", reason).Add(float64(len(ids)))
		for _, id := range ids {
			e.report(Outcome{DeliveryID: id, EndpointID: ep, Reason: reason, Dead: true, At: e.cfg.Now()})
		}
		if !more {
			return ended, nil
		}
		args.offset = next
	}
}

// parseEndAnswer reads endScript's answer: whether to call again, from which offset, and the ids
// of the deliveries it ended.
func parseEndAnswer(res []any) (more bool, next int64, ids []string, err error) {
	if len(res) < 2 {
		return false, 0, nil, fmt.Errorf("unexpected answer from the end script: %v", res)
	}
	m, _ := res[0].(int64)
	next, _ = res[1].(int64)
	ids = make([]string, 0, len(res)-2)
	for _, v := range res[2:] {
		if id, ok := v.(string); ok {
			ids = append(ids, id)
		}
	}
	return m == 1, next, ids, nil
}
