package subscribers

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

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
// loaded and filtered exactly in Go (Subscriber.Matches and Active), which also settles chat_types
// and types.
func (s *Store) Match(ctx context.Context, ch *channels.Channel, eventType string, after string, limit int) ([]*Subscriber, string, error) {
	limit = clampLimit(limit)
	sources := []string{s.k.byChannel(ch.ChannelID), s.k.anyChannel()}
	for _, t := range ch.ChannelTags {
		if k := s.k.byTag(t); !slices.Contains(sources, k) {
			sources = append(sources, k)
		}
	}
	batch := int64(max(limit, matchBatch))
	cursor := after
	var out []*Subscriber
	for {
		cmds := make([]*redis.StringSliceCmd, len(sources))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range sources {
				cmds[i] = p.ZRangeByLex(ctx, k, &redis.ZRangeBy{Min: lexAfter(cursor), Max: "+", Count: batch})
			}
			return nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("subscribers: match %s: %w", ch.ChannelID, err)
		}
		// Ids up to the boundary are complete: every index that may hold more stopped at or past
		// it. An index that returned less than a batch has nothing more.
		var ids []string
		boundary, bounded := "", false
		var live []string
		for i, c := range cmds {
			got := c.Val()
			ids = append(ids, got...)
			if int64(len(got)) == batch {
				live = append(live, sources[i])
				if last := got[len(got)-1]; !bounded || last < boundary {
					boundary, bounded = last, true
				}
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if bounded {
			n, _ := slices.BinarySearch(ids, boundary)
			ids = ids[:n+1]
		}
		// Load the candidates a chunk at a time, in id order, so a small page reads few documents.
		chunk := max(limit, 16)
		for start := 0; start < len(ids); start += chunk {
			part := ids[start:min(start+chunk, len(ids))]
			recs, err := s.getMany(ctx, part)
			if err != nil {
				return nil, "", err
			}
			for i, r := range recs {
				if r == nil || !r.Active() || !r.Matches(ch, eventType) {
					continue
				}
				out = append(out, r.public())
				if len(out) == limit {
					if start+i == len(ids)-1 && !bounded {
						return out, "", nil
					}
					return out, r.ID, nil
				}
			}
		}
		if !bounded {
			return out, "", nil
		}
		cursor, sources = boundary, live
	}
}
