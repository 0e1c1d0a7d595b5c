package subscribers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
)

// Fan-out reads compact records rather than documents. Every active subscriber has one in the fan
// hash, written by casScript together with the match indexes: its token and its four filters,
// length-prefixed. Matching a page of candidates reads those (tens of bytes each) instead of whole
// JSON documents (secret, URL, description, timestamps), and decodes them without allocating
// much. The count at acceptance is cached per generation: every write that changes who is active
// or what a fan-out record says increments the generation, so a cached count is exact until then.

// fanFormat is the first byte of a fan-out record; another format would get another byte.
const fanFormat = 1

// encodeFan is r's fan-out record, or "" when r does not get notifications (nil or inactive).
// Layout: fanFormat, then the token, then channel_ids, channel_tags, chat_types and types, each a
// count followed by its strings; counts and string lengths are uvarints.
func encodeFan(r *record) string {
	if r == nil || !r.Active() {
		return ""
	}
	n := 1 + binary.MaxVarintLen64 + len(r.Token)
	lists := [4][]string{r.ChannelIDs, r.ChannelTags, r.ChatTypes, r.Types}
	for _, l := range lists {
		n += binary.MaxVarintLen64
		for _, v := range l {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, fanFormat)
	b = binary.AppendUvarint(b, uint64(len(r.Token)))
	b = append(b, r.Token...)
	for _, l := range lists {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, v := range l {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return string(b)
}

// fanRecord is a decoded fan-out record. Its strings share the encoded string's memory, and
// decode reuses its lists' storage, so one fanRecord decodes a whole page with few allocations.
type fanRecord struct {
	token string
	sub   Subscriber // only the four filters are set, for Subscriber.Matches
}

var errBadFan = errors.New("subscribers: malformed fan-out record")

// decode parses s into f.
func (f *fanRecord) decode(s string) error {
	if len(s) == 0 || s[0] != fanFormat {
		return errBadFan
	}
	i := 1
	str := func() (string, bool) {
		n, w := uvarint(s[i:])
		if w <= 0 || n > uint64(len(s)-i-w) {
			return "", false
		}
		i += w
		v := s[i : i+int(n)]
		i += int(n)
		return v, true
	}
	var ok bool
	if f.token, ok = str(); !ok {
		return errBadFan
	}
	for _, l := range []*[]string{&f.sub.ChannelIDs, &f.sub.ChannelTags, &f.sub.ChatTypes, &f.sub.Types} {
		n, w := uvarint(s[i:])
		if w <= 0 || n > uint64(len(s)-i-w) {
			return errBadFan
		}
		i += w
		*l = (*l)[:0]
		for range n {
			v, ok := str()
			if !ok {
				return errBadFan
			}
			*l = append(*l, v)
		}
	}
	if i != len(s) {
		return errBadFan
	}
	return nil
}

// uvarint is binary.Uvarint for a string, without copying it.
func uvarint(s string) (uint64, int) {
	var x uint64
	var sh uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<sh, i + 1
		}
		x |= uint64(c&0x7f) << sh
		sh += 7
	}
	return 0, -1
}

// Target is what fan-out needs of a subscriber: its id (the engine endpoint is EndpointID(ID))
// and the verification token its payloads carry.
type Target struct {
	ID    string
	Token string
}

// candidates walks the match indexes of a channel in id order: the channel's id set, its tags'
// sets and the set of subscribers without channel filters, merged by id.
type candidates struct {
	s       *Store
	sources []string
	cursor  string
	batch   int64
	done    bool
}

func (s *Store) candidates(ch *channels.Channel, after string, batch int) *candidates {
	sources := []string{s.k.byChannel(ch.ChannelID), s.k.anyChannel()}
	for _, t := range ch.ChannelTags {
		if k := s.k.byTag(t); !slices.Contains(sources, k) {
			sources = append(sources, k)
		}
	}
	return &candidates{s: s, sources: sources, cursor: after, batch: int64(batch)}
}

// queue adds the reads of the next round to p; read takes their answers.
func (c *candidates) queue(ctx context.Context, p redis.Pipeliner) []*redis.StringSliceCmd {
	cmds := make([]*redis.StringSliceCmd, len(c.sources))
	for i, k := range c.sources {
		cmds[i] = p.ZRangeByLex(ctx, k, &redis.ZRangeBy{Min: lexAfter(c.cursor), Max: "+", Count: c.batch})
	}
	return cmds
}

// read returns the candidate ids of a round, sorted and without duplicates, and whether more may
// follow them. The ids are complete up to the last one (the boundary): every index that returned
// a full batch stopped at or past it, and an index that returned less has nothing more. Ids past
// the boundary are left for the next round, which reads, from the boundary on, the indexes that
// returned a full batch and those that returned ids past it.
func (c *candidates) read(cmds []*redis.StringSliceCmd) ([]string, bool) {
	var ids []string
	boundary, bounded := "", false
	for _, cmd := range cmds {
		got := cmd.Val()
		ids = append(ids, got...)
		if int64(len(got)) == c.batch {
			if last := got[len(got)-1]; !bounded || last < boundary {
				boundary, bounded = last, true
			}
		}
	}
	if len(cmds) > 1 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	if !bounded {
		c.done = true
		return ids, false
	}
	var live []string
	for i, cmd := range cmds {
		if got := cmd.Val(); int64(len(got)) == c.batch || len(got) > 0 && got[len(got)-1] > boundary {
			live = append(live, c.sources[i])
		}
	}
	n, _ := slices.BinarySearch(ids, boundary)
	c.cursor, c.sources = boundary, live
	return ids[:n+1], true
}

// next reads the next round: its candidate ids and whether more may follow them.
func (c *candidates) next(ctx context.Context) ([]string, bool, error) {
	if c.done {
		return nil, false, nil
	}
	var cmds []*redis.StringSliceCmd
	if _, err := c.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = c.queue(ctx, p)
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("subscribers: read match indexes: %w", err)
	}
	ids, more := c.read(cmds)
	return ids, more, nil
}

// judge checks candidate ids against their fan-out records vals (an HMGET's answer) and calls hit,
// in order, for those that match ch and eventType, until hit returns false. It returns the index
// in ids hit stopped at, or -1 when it did not stop.
func (s *Store) judge(ctx context.Context, ids []string, vals []any, ch *channels.Channel, eventType string,
	f *fanRecord, hit func(id, token string) bool) (int, error) {
	// A candidate without a record is either no longer active (it changed since the index was
	// read) or was stored before fan-out records existed: its document decides.
	var missing []string
	for i, v := range vals {
		if v == nil {
			missing = append(missing, ids[i])
		}
	}
	var docs map[string]*record
	if len(missing) > 0 {
		recs, err := s.getMany(ctx, missing)
		if err != nil {
			return -1, err
		}
		docs = make(map[string]*record, len(missing))
		for i, id := range missing {
			docs[id] = recs[i]
		}
	}
	for i, v := range vals {
		id := ids[i]
		var token string
		if raw, ok := v.(string); ok {
			if err := f.decode(raw); err != nil {
				return -1, fmt.Errorf("subscribers: %s: %w", id, err)
			}
			if !f.sub.Matches(ch, eventType) {
				continue
			}
			token = f.token
		} else {
			r := docs[id]
			if r == nil || !r.Active() || !r.Matches(ch, eventType) {
				continue
			}
			token = r.Token
		}
		if !hit(id, token) {
			return i, nil
		}
	}
	return -1, nil
}

// scan calls hit, in id order, for every active subscriber with an id after after whose filters
// match ch and eventType, until hit returns false. It reads batch candidate ids per index and
// round, and checks them chunk at a time against their fan-out records. It reports whether it
// stopped before the last candidate (so more may match).
func (s *Store) scan(ctx context.Context, ch *channels.Channel, eventType, after string, batch, chunk int,
	hit func(id, token string) bool) (bool, error) {
	it := s.candidates(ch, after, batch)
	var f fanRecord
	for {
		ids, more, err := it.next(ctx)
		if err != nil {
			return false, err
		}
		for start := 0; start < len(ids); start += chunk {
			part := ids[start:min(start+chunk, len(ids))]
			vals, err := s.rdb.HMGet(ctx, s.k.fan(), part...).Result()
			if err != nil {
				return false, fmt.Errorf("subscribers: read %d fan-out records: %w", len(part), err)
			}
			at, err := s.judge(ctx, part, vals, ch, eventType, &f, hit)
			if err != nil {
				return false, err
			}
			if at >= 0 {
				return more || start+at < len(ids)-1, nil
			}
		}
		if !more {
			return false, nil
		}
	}
}

// count counts what scan would find from the start. Each round trip carries the fan-out records
// of one round of candidates and the index reads of the next.
func (s *Store) count(ctx context.Context, ch *channels.Channel, eventType string) (int, error) {
	it := s.candidates(ch, "", countBatch)
	ids, more, err := it.next(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var f fanRecord
	for {
		var recs *redis.SliceCmd
		var next []*redis.StringSliceCmd
		if len(ids) > 0 || more {
			if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				if len(ids) > 0 {
					recs = p.HMGet(ctx, s.k.fan(), ids...)
				}
				if more {
					next = it.queue(ctx, p)
				}
				return nil
			}); err != nil {
				return 0, fmt.Errorf("subscribers: read fan-out records and match indexes: %w", err)
			}
		}
		if recs != nil {
			if _, err := s.judge(ctx, ids, recs.Val(), ch, eventType, &f, func(string, string) bool { n++; return true }); err != nil {
				return 0, err
			}
		}
		if !more {
			return n, nil
		}
		ids, more = it.read(next)
	}
}

// matchBatch is how many ids Targets reads from each index per round at least.
const matchBatch = 128

// Targets returns the active (verified, not disabled) subscribers whose filters match the channel
// and the event type, as their ids and tokens, ordered by id, at most limit of them (default 100,
// at most 1000), starting after the id after; next is the last id returned when more may follow,
// "" when done.
//
// It never scans all subscribers. The candidates are the union of three kinds of index: the set
// of the channel's id, the sets of each of its tags, and the set of subscribers without channel
// filters. Those sorted sets are merged by id (ZRANGEBYLEX from the cursor); candidates are then
// filtered exactly in Go (Subscriber.Matches) by their compact fan-out records, which also
// settles chat_types and types. Documents are read only for candidates without a record.
func (s *Store) Targets(ctx context.Context, ch *channels.Channel, eventType string, after string, limit int) ([]Target, string, error) {
	limit = clampLimit(limit)
	out := make([]Target, 0, limit)
	more, err := s.scan(ctx, ch, eventType, after, max(limit, matchBatch), max(limit, 16), func(id, token string) bool {
		out = append(out, Target{ID: id, Token: token})
		return len(out) < limit
	})
	if err != nil {
		return nil, "", fmt.Errorf("subscribers: match %s: %w", ch.ChannelID, err)
	}
	next := ""
	if more {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// countBatch is how many candidates CountMatch reads per index and round trip.
const countBatch = 1000

// maxCachedCounts bounds the count cache of one generation; past it the cache starts over.
const maxCachedCounts = 4096

// setCountScript caches a count for a channel signature if nothing changed since it was counted.
//
// KEYS[1] generation counter, KEYS[2] count cache hash.
// ARGV[1] the generation the count was made at ("0" for none yet); ARGV[2] the channel signature;
// ARGV[3] the count; ARGV[4] how many counts the cache may hold.
// Returns 1 when cached, 0 when the generation moved on (the count may be stale).
var setCountScript = redis.NewScript(`
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'gen') ~= gen or redis.call('HLEN', KEYS[2]) > tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'gen', gen)
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// countSig identifies what a count depends on besides the subscribers: the channel's id, its set
// of tags, its chat_type (a string or not) and the event type.
func countSig(ch *channels.Channel, eventType string) string {
	h := sha256.New()
	put := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	put(ch.ChannelID)
	tags := slices.Clone(ch.ChannelTags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	put(strconv.Itoa(len(tags)))
	for _, t := range tags {
		put(t)
	}
	if ct, ok := ch.ChatType().(string); ok {
		put("s")
		put(ct)
	} else {
		put("-")
	}
	put(eventType)
	return "c:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// CountMatch returns how many subscribers Targets would return for the channel and event type
// over all its pages: the active (verified, not disabled) subscribers whose filters match. The
// count is exact at one moment during the call: a cached count is used only while no write has
// changed who is active or what their filters or tokens are since it was made (the generation),
// and a fresh count is cached only if no such write happened while it was made. A fresh count
// reads the match indexes and the compact fan-out records, never the documents.
func (s *Store) CountMatch(ctx context.Context, ch *channels.Channel, eventType string) (int, error) {
	sig := countSig(ch, eventType)
	var genCmd *redis.StringCmd
	var cached *redis.SliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		genCmd = p.Get(ctx, s.k.gen())
		cached = p.HMGet(ctx, s.k.counts(), "gen", sig)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("subscribers: read cached count: %w", err)
	}
	gen := "0"
	if err := genCmd.Err(); err == nil {
		gen = genCmd.Val()
	} else if !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("subscribers: read generation: %w", err)
	}
	if v := cached.Val(); len(v) == 2 && v[0] == gen {
		if c, ok := v[1].(string); ok {
			if n, err := strconv.Atoi(c); err == nil {
				return n, nil
			}
		}
	}
	n, err := s.count(ctx, ch, eventType)
	if err != nil {
		return 0, fmt.Errorf("subscribers: count %s: %w", ch.ChannelID, err)
	}
	if err := setCountScript.Run(ctx, s.rdb, []string{s.k.gen(), s.k.counts()}, gen, sig, n, maxCachedCounts).Err(); err != nil {
		return 0, fmt.Errorf("subscribers: cache count: %w", err)
	}
	return n, nil
}
