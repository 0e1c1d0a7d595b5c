package subscribers

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/channels"
)

// matchBatch is how many ids Match reads from each index per round at least.
const matchBatch = 128

// Match returns the active (verified, not disabled) subscribers whose filters match the channel
// and the event type, ordered by id, at most limit of them (default 100, at most 1000), starting
// after the id after; next is the last id returned when more may follow, "" when done.
//
// It never scans all subscribers. The candidates are the union of three kinds of index: the set
// of the channel's id, the sets of each of its tags, and the set of subscribers without channel
// filters. Those sorted sets are merged by id (ZRANGEBYLEX from the cursor); candidates are then
// filtered exactly in Go (Subscriber.Matches) by their compact fan-out records, which also
// settles chat_types and types, and the documents of those that match are loaded (and checked
// again, Active and Matches). Fan-out needs only ids and tokens: Targets returns those without
// loading documents.
func (s *Store) Match(ctx context.Context, ch *channels.Channel, eventType string, after string, limit int) ([]*Subscriber, string, error) {
	limit = clampLimit(limit)
	var ids []string
	more, err := s.scan(ctx, ch, eventType, after, max(limit, matchBatch), max(limit, 16), func(id, _ string) bool {
		ids = append(ids, id)
		return len(ids) < limit
	})
	if err != nil {
		return nil, "", fmt.Errorf("subscribers: match %s: %w", ch.ChannelID, err)
	}
	recs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]*Subscriber, 0, len(recs))
	for _, r := range recs {
		if r != nil && r.Active() && r.Matches(ch, eventType) {
			out = append(out, r.public())
		}
	}
	next := ""
	if more {
		next = ids[len(ids)-1]
	}
	return out, next, nil
}
