package channels

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Paging limits of Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// MinScanBudget is the least number of candidate channels one Query examines before it
	// returns a partial page (the budget is max(10*limit, MinScanBudget)).
	MinScanBudget = 5000
)

// Query returns the channels matching f in channel_id order, at most limit of them (0 means
// DefaultLimit; more than MaxLimit is cut to MaxLimit), starting after the id after ("" for the
// first page). next is the id to pass as after for the following page, or "" when there is none.
//
// Tag and id conditions are answered from the indexes, so their cost follows the number of
// channels they match, not the number stored. Other conditions walk every channel in id order;
// a call examines at most max(10*limit, MinScanBudget) candidates and then returns what it found
// with a next cursor, so a page may hold fewer than limit channels (even none) while next is
// not "". Callers page until next is "".
func (s *Store) Query(ctx context.Context, f *Filter, limit int, after string) (chans []*Channel, next string, err error) {
	hits, next, err := s.query(ctx, f, limit, after)
	if err != nil {
		return nil, "", err
	}
	chans = make([]*Channel, len(hits))
	for i, h := range hits {
		if chans[i], err = h.channel(true); err != nil {
			return nil, "", err
		}
	}
	return chans, next, nil
}

// QueryJSON is Query answering each channel as the JSON it is stored as, which is exactly what
// json.Marshal of the Channel gives: the HTTP API writes it out without decoding the metadata of
// channels that the filter did not need it for.
func (s *Store) QueryJSON(ctx context.Context, f *Filter, limit int, after string) (chans []json.RawMessage, next string, err error) {
	hits, next, err := s.query(ctx, f, limit, after)
	if err != nil {
		return nil, "", err
	}
	chans = make([]json.RawMessage, len(hits))
	for i, h := range hits {
		if chans[i], err = h.json(); err != nil {
			return nil, "", err
		}
	}
	return chans, next, nil
}

// hit is a stored document read by a query. Its metadata is decoded only when a filter or the
// caller needs it.
type hit struct {
	raw string
	doc lightDoc
	c   *Channel // built from doc; ChannelMetadata nil until decoded
}

// lightDoc is an envelope with channel_metadata left undecoded.
type lightDoc struct {
	V int64 `json:"v"`
	C struct {
		ChannelID          string          `json:"channel_id"`
		ChannelName        string          `json:"channel_name"`
		ChannelDescription string          `json:"channel_description"`
		ChannelMetadata    json.RawMessage `json:"channel_metadata"`
		ChannelTags        []string        `json:"channel_tags"`
	} `json:"c"`
}

func newHit(raw string) (*hit, error) {
	h := &hit{raw: raw}
	if err := json.Unmarshal([]byte(raw), &h.doc); err != nil {
		return nil, fmt.Errorf("channels: stored document is corrupt: %v", err)
	}
	d := &h.doc.C
	tags := d.ChannelTags
	if tags == nil {
		tags = []string{}
	}
	h.c = &Channel{ChannelID: d.ChannelID, ChannelName: d.ChannelName, ChannelDescription: d.ChannelDescription, ChannelTags: tags}
	return h, nil
}

// channel returns the channel, decoding its metadata first when withMeta says so.
func (h *hit) channel(withMeta bool) (*Channel, error) {
	if !withMeta || h.c.ChannelMetadata != nil {
		return h.c, nil
	}
	m := map[string]any{}
	if len(h.doc.C.ChannelMetadata) > 0 {
		dec := json.NewDecoder(bytes.NewReader(h.doc.C.ChannelMetadata))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("channels: stored metadata of %q is corrupt: %v", h.c.ChannelID, err)
		}
		if m == nil {
			m = map[string]any{}
		}
	}
	h.c.ChannelMetadata = m
	return h.c, nil
}

// json returns the channel's JSON as stored: the envelope is {"v":<n>,"c":<channel>}, written by
// encodeDoc. Anything else is re-encoded from the decoded channel.
func (h *hit) json() (json.RawMessage, error) {
	const head = `{"v":`
	if strings.HasPrefix(h.raw, head) && strings.HasSuffix(h.raw, "}") {
		if i := strings.Index(h.raw, `,"c":`); i > 0 {
			return json.RawMessage(h.raw[i+len(`,"c":`) : len(h.raw)-1]), nil
		}
	}
	c, err := h.channel(true)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// query runs a query and returns the matching documents.
func (s *Store) query(ctx context.Context, f *Filter, limit int, after string) (hits []*hit, next string, err error) {
	if f == nil {
		f = MatchAll()
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	m, err := s.candidates(ctx, f, after)
	if err != nil {
		return nil, "", err
	}
	budget := max(10*limit, s.minBudget)
	examined := 0
	lastExamined := ""
	out := make([]*hit, 0, min(limit+1, 128))
	chunk := limit + 1
	exhausted := false
	for len(out) <= limit && examined < budget {
		ids, err := m.next(ctx, min(chunk, budget-examined))
		if err != nil {
			return nil, "", err
		}
		if len(ids) == 0 {
			exhausted = true
			break
		}
		docKeys := make([]string, len(ids))
		for i, id := range ids {
			docKeys[i] = s.k.doc(id)
		}
		vals, err := s.rdb.MGet(ctx, docKeys...).Result()
		if err != nil {
			return nil, "", fmt.Errorf("channels: query: %w", err)
		}
		for i, v := range vals {
			examined++
			lastExamined = ids[i]
			raw, ok := v.(string)
			if !ok {
				continue // deleted since the index was read
			}
			h, err := newHit(raw)
			if err != nil {
				return nil, "", err
			}
			c, err := h.channel(f.needsMeta)
			if err != nil {
				return nil, "", err
			}
			if f.Match(c) {
				out = append(out, h)
				if len(out) > limit {
					break
				}
			}
		}
		chunk = min(chunk*2, MaxLimit)
	}
	switch {
	case len(out) > limit:
		out = out[:limit]
		next = out[limit-1].c.ChannelID
	case exhausted:
		next = ""
	default:
		// The budget ran out: resume after the last channel examined.
		next = lastExamined
	}
	return out, next, nil
}

// candidates plans f and returns a stream of candidate ids after after: a superset of the
// matching channels, in id order, without repeats.
func (s *Store) candidates(ctx context.Context, f *Filter, after string) (*merger, error) {
	p, ok := planFor(f.root, s.k)
	if !ok {
		return newMerger(s.rdb, []string{s.k.all()}, nil, after), nil
	}
	if hasInter(p) {
		var ks []string
		collectKeys(p, &ks)
		cards := make(map[string]int64, len(ks))
		if len(ks) > 0 {
			pipe := s.rdb.Pipeline()
			cmds := make([]*redis.IntCmd, len(ks))
			for i, k := range ks {
				cmds[i] = pipe.ZCard(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("channels: query plan: %w", err)
			}
			for i, k := range ks {
				cards[k] = cmds[i].Val()
			}
		}
		p = choose(p, cards)
	}
	var zsets, ids []string
	flatten(p, &zsets, &ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	zsets = slices.Compact(sortedCopy(zsets))
	return newMerger(s.rdb, zsets, ids, after), nil
}

func sortedCopy(l []string) []string {
	l = slices.Clone(l)
	slices.Sort(l)
	return l
}

// A plan says where candidates come from. It is a tree of:
type (
	pLeaf  struct{ key string } // the members of one tag index
	pIDs   struct{ ids []string }
	pNone  struct{}               // nothing can match
	pUnion struct{ kids []pnode } // every kid's candidates
	pInter struct{ kids []pnode } // all kids must match: the cheapest kid alone is a superset
	pnode  interface{ isPlan() }
)

func (pLeaf) isPlan()  {}
func (pIDs) isPlan()   {}
func (pNone) isPlan()  {}
func (pUnion) isPlan() {}
func (pInter) isPlan() {}

// planFor returns an index plan for n, or false when n needs a walk of every channel.
func planFor(n node, k keys) (pnode, bool) {
	switch t := n.(type) {
	case andNode:
		var kids []pnode
		for _, c := range t.kids {
			if p, ok := planFor(c, k); ok {
				kids = append(kids, p)
			}
		}
		if len(kids) == 0 {
			return nil, false
		}
		return pInter{kids: kids}, true
	case orNode:
		kids := make([]pnode, 0, len(t.kids))
		for _, c := range t.kids {
			p, ok := planFor(c, k)
			if !ok {
				return nil, false
			}
			kids = append(kids, p)
		}
		return pUnion{kids: kids}, true
	case condNode:
		return condPlan(t, k)
	}
	return nil, false
}

func condPlan(c condNode, k keys) (pnode, bool) {
	var eq func(q any) (pnode, bool)
	switch c.field.kind {
	case fTags:
		eq = func(q any) (pnode, bool) { return tagEqPlan(q, k) }
	case fID:
		eq = idEqPlan
	default:
		return nil, false
	}
	switch c.op {
	case opEq:
		return eq(c.val)
	case opIn:
		kids := make([]pnode, 0, len(c.vals))
		for _, q := range c.vals {
			p, ok := eq(q)
			if !ok {
				return nil, false
			}
			kids = append(kids, p)
		}
		return pUnion{kids: kids}, true
	case opAll:
		if len(c.vals) == 0 {
			return pNone{}, true
		}
		var kids []pnode
		for _, q := range c.vals {
			if p, ok := eq(q); ok {
				kids = append(kids, p)
			}
		}
		if len(kids) == 0 {
			return nil, false
		}
		return pInter{kids: kids}, true
	}
	return nil, false
}

// tagEqPlan plans channel_tags equal to q: a string matches the channels carrying that tag; a
// non-empty list of strings matches tag lists equal to it, a subset of those carrying all of them;
// an empty list needs a walk; anything else matches nothing (tags are strings).
func tagEqPlan(q any, k keys) (pnode, bool) {
	switch v := q.(type) {
	case string:
		return pLeaf{key: k.tag(v)}, true
	case []any:
		if len(v) == 0 {
			return nil, false
		}
		kids := make([]pnode, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return pNone{}, true
			}
			kids = append(kids, pLeaf{key: k.tag(s)})
		}
		return pInter{kids: kids}, true
	}
	return pNone{}, true
}

// idEqPlan plans channel_id equal to q: only a string can match.
func idEqPlan(q any) (pnode, bool) {
	if s, ok := q.(string); ok {
		return pIDs{ids: []string{s}}, true
	}
	return pNone{}, true
}

func hasInter(p pnode) bool {
	switch t := p.(type) {
	case pInter:
		return true
	case pUnion:
		return slices.ContainsFunc(t.kids, hasInter)
	}
	return false
}

func collectKeys(p pnode, out *[]string) {
	switch t := p.(type) {
	case pLeaf:
		*out = append(*out, t.key)
	case pUnion:
		for _, c := range t.kids {
			collectKeys(c, out)
		}
	case pInter:
		for _, c := range t.kids {
			collectKeys(c, out)
		}
	}
}

// choose replaces every intersection by its cheapest kid (by ZCARD), the most selective index.
func choose(p pnode, cards map[string]int64) pnode {
	switch t := p.(type) {
	case pUnion:
		kids := make([]pnode, len(t.kids))
		for i, c := range t.kids {
			kids[i] = choose(c, cards)
		}
		return pUnion{kids: kids}
	case pInter:
		var best pnode
		bestCost := int64(-1)
		for _, c := range t.kids {
			c = choose(c, cards)
			if cost := planCost(c, cards); bestCost < 0 || cost < bestCost {
				best, bestCost = c, cost
			}
		}
		return best
	}
	return p
}

func planCost(p pnode, cards map[string]int64) int64 {
	switch t := p.(type) {
	case pLeaf:
		return cards[t.key]
	case pIDs:
		return int64(len(t.ids))
	case pUnion:
		var n int64
		for _, c := range t.kids {
			n += planCost(c, cards)
		}
		return n
	case pInter:
		n := int64(-1)
		for _, c := range t.kids {
			if cost := planCost(c, cards); n < 0 || cost < n {
				n = cost
			}
		}
		return max(n, 0)
	}
	return 0
}

// flatten lists the sources of a plan without intersections. An intersection left in it (when
// no costs were needed) is answered by its first kid, a superset.
func flatten(p pnode, zsets, ids *[]string) {
	switch t := p.(type) {
	case pLeaf:
		*zsets = append(*zsets, t.key)
	case pIDs:
		*ids = append(*ids, t.ids...)
	case pUnion:
		for _, c := range t.kids {
			flatten(c, zsets, ids)
		}
	case pInter:
		if len(t.kids) > 0 {
			flatten(t.kids[0], zsets, ids)
		}
	}
}

// source is one index sorted set read in id order, a batch at a time.
type source struct {
	key    string
	buf    []string
	cursor string // last id read; "" before the first read of a first page
	done   bool
}

// merger merges index sorted sets and a fixed id list into one id-ordered stream without repeats.
type merger struct {
	rdb  redis.UniversalClient
	srcs []*source
	ids  []string // fixed candidates, sorted, all > after
}

func newMerger(rdb redis.UniversalClient, zsets, ids []string, after string) *merger {
	m := &merger{rdb: rdb}
	for _, k := range zsets {
		m.srcs = append(m.srcs, &source{key: k, cursor: after})
	}
	for len(ids) > 0 && after != "" && ids[0] <= after {
		ids = ids[1:]
	}
	m.ids = ids
	return m
}

// next returns up to n more candidate ids; none when the stream is done.
func (m *merger) next(ctx context.Context, n int) ([]string, error) {
	out := make([]string, 0, n)
	for len(out) < n {
		// Each source reads what the page still needs, shared out when there are many sources (a
		// long $in) so that one round reads at most about twice the page plus 16 per source.
		want := n - len(out)
		batch := max(16, min(want, (2*want+len(m.srcs)-1)/max(len(m.srcs), 1)))
		if err := m.fill(ctx, batch); err != nil {
			return nil, err
		}
		head, found := "", false
		for _, s := range m.srcs {
			if len(s.buf) > 0 && (!found || s.buf[0] < head) {
				head, found = s.buf[0], true
			}
		}
		if len(m.ids) > 0 && (!found || m.ids[0] < head) {
			head, found = m.ids[0], true
		}
		if !found {
			break
		}
		for _, s := range m.srcs {
			if len(s.buf) > 0 && s.buf[0] == head {
				s.buf = s.buf[1:]
			}
		}
		if len(m.ids) > 0 && m.ids[0] == head {
			m.ids = m.ids[1:]
		}
		out = append(out, head)
	}
	return out, nil
}

// fill reads the next batch of every source whose buffer is empty, in one pipeline, so that the
// smallest head of all sources is known.
func (m *merger) fill(ctx context.Context, batch int) error {
	batch = min(batch, MaxLimit)
	var need []*source
	for _, s := range m.srcs {
		if len(s.buf) == 0 && !s.done {
			need = append(need, s)
		}
	}
	if len(need) == 0 {
		return nil
	}
	cmds := make([]*redis.StringSliceCmd, len(need))
	pipe := m.rdb.Pipeline()
	for i, s := range need {
		min := "-"
		if s.cursor != "" {
			min = "(" + s.cursor
		}
		cmds[i] = pipe.ZRangeByLex(ctx, s.key, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(batch)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("channels: query index: %w", err)
	}
	for i, s := range need {
		res := cmds[i].Val()
		s.buf = res
		if len(res) < batch {
			s.done = true
		}
		if len(res) > 0 {
			s.cursor = res[len(res)-1]
		}
	}
	return nil
}
