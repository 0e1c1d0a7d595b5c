package subscribers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
)

func TestFanRecordRoundTrip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // a length that takes two varint bytes
	for _, r := range []*record{
		{Subscriber: Subscriber{Token: "tok", Verified: true, Status: StatusVerified}},
		{Subscriber: Subscriber{Token: long, Verified: true, Status: StatusVerified,
			ChannelIDs: []string{"c1", "c2"}, ChannelTags: []string{"a\x00b", long, ""}, ChatTypes: []string{"x"},
			Types: []string{TypeRepublishRequest, TypeUnpublishRequest}}},
	} {
		enc := encodeFan(r)
		var f fanRecord
		if err := f.decode(enc); err != nil {
			t.Fatalf("decode: %v", err)
		}
		want := [4][]string{r.ChannelIDs, r.ChannelTags, r.ChatTypes, r.Types}
		got := [4][]string{f.sub.ChannelIDs, f.sub.ChannelTags, f.sub.ChatTypes, f.sub.Types}
		for i := range want {
			if !slices.Equal(want[i], got[i]) {
				t.Fatalf("list %d = %q, want %q", i, got[i], want[i])
			}
		}
		if f.token != r.Token {
			t.Fatalf("token = %q, want %q", f.token, r.Token)
		}
		// Every truncation and a trailing byte are refused, never a panic.
		for n := range len(enc) {
			if err := f.decode(enc[:n]); err == nil {
				t.Fatalf("decode of %d of %d bytes succeeded", n, len(enc))
			}
		}
		if err := f.decode(enc + "x"); err == nil {
			t.Fatal("decode with a trailing byte succeeded")
		}
	}
	for _, r := range []*record{nil, {Subscriber: Subscriber{Token: "t", Status: StatusPending}},
		{Subscriber: Subscriber{Token: "t", Verified: true, Status: StatusDisabled}}} {
		if enc := encodeFan(r); enc != "" {
			t.Fatalf("inactive subscriber has a fan-out record %q", enc)
		}
	}
}

func FuzzFanRecordDecode(f *testing.F) {
	f.Add(encodeFan(&record{Subscriber: Subscriber{Token: "tok", Verified: true, Status: StatusVerified, ChannelTags: []string{"a"}}}))
	f.Add("\x01\x03tok\x00\x00\x00\x00")
	f.Add("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, s string) {
		var r fanRecord
		if r.decode(s) != nil {
			return
		}
		// Whatever decodes encodes to a record that decodes to the same values (the encoding is
		// canonical; the decoder also takes longer varints).
		back := encodeFan(&record{Subscriber: Subscriber{Token: r.token, Verified: true, Status: StatusVerified,
			ChannelIDs: r.sub.ChannelIDs, ChannelTags: r.sub.ChannelTags, ChatTypes: r.sub.ChatTypes, Types: r.sub.Types}})
		var again fanRecord
		if err := again.decode(back); err != nil {
			t.Fatalf("re-encoded %q as %q, which does not decode: %v", s, back, err)
		}
		if again.token != r.token || !slices.Equal(again.sub.ChannelIDs, r.sub.ChannelIDs) ||
			!slices.Equal(again.sub.ChannelTags, r.sub.ChannelTags) || !slices.Equal(again.sub.ChatTypes, r.sub.ChatTypes) ||
			!slices.Equal(again.sub.Types, r.sub.Types) {
			t.Fatalf("%q decodes to %+v, its re-encoding %q to %+v", s, r, back, again)
		}
		if len(back) > len(s) {
			t.Fatalf("re-encoding %q is longer: %q", s, back)
		}
	})
}

// world is a population of subscribers with random filters and the channels to check them on.
type world struct {
	t     *testing.T
	b     *bundle
	rng   *rand.Rand
	ids   []string
	chans []*channels.Channel
}

var (
	worldChans = []string{"c0", "c1", "c2", "c3"}
	worldTags  = []string{"t0", "t1", "t2"}
	worldCTs   = []string{"a", "b"}
)

func (w *world) pick(pool []string) []string {
	var out []string
	for _, p := range pool {
		if w.rng.IntN(3) == 0 {
			out = append(out, p)
		}
	}
	return out
}

func (w *world) filters(s *Subscriber) {
	s.ChannelIDs, s.ChannelTags, s.ChatTypes, s.Types = nil, nil, nil, nil
	if w.rng.IntN(2) == 0 {
		s.ChannelIDs = w.pick(worldChans)
	}
	if w.rng.IntN(2) == 0 {
		s.ChannelTags = w.pick(worldTags)
	}
	if w.rng.IntN(3) == 0 {
		s.ChatTypes = w.pick(worldCTs)
	}
	if w.rng.IntN(3) == 0 {
		s.Types = w.pick(EventTypes)
	}
}

func newWorld(t *testing.T, b *bundle, n int) *world {
	w := &world{t: t, b: b, rng: rand.New(rand.NewPCG(5, 6))}
	outcome := map[string]string{}
	for i := range n {
		s := newSub(fmt.Sprintf("https://example.com/%d", i))
		s.Token = fmt.Sprintf("tok-%d", i)
		w.filters(s)
		got := mustCreate(t, b.store, s)
		w.ids = append(w.ids, got.ID)
		if w.rng.IntN(5) == 0 {
			outcome[got.ID] = "answered 500"
		}
	}
	settle(t, b.store, outcome)
	for i := range 8 {
		ch := &channels.Channel{ChannelID: worldChans[i%len(worldChans)], ChannelTags: w.pick(worldTags)}
		switch i % 3 {
		case 0:
			ch.ChannelMetadata = map[string]any{"chat_type": worldCTs[i%2]}
		case 1:
			ch.ChannelMetadata = map[string]any{"chat_type": 7.0} // not a string: chat_types filters never match
		}
		w.chans = append(w.chans, ch)
	}
	return w
}

// mutate makes a random change of the kind that moves subscribers in and out of matching.
func (w *world) mutate() string {
	ctx := context.Background()
	id := w.ids[w.rng.IntN(len(w.ids))]
	var err error
	var what string
	switch w.rng.IntN(7) {
	case 0:
		what = "filters"
		_, err = w.b.store.Update(ctx, id, func(s *Subscriber) error { w.filters(s); return nil })
	case 1:
		what = "token (back to pending)"
		_, err = w.b.store.Update(ctx, id, func(s *Subscriber) error { s.Token = fmt.Sprintf("new-%d", w.rng.Int()); return nil })
	case 2:
		what = "disable"
		_, err = w.b.store.Disable(ctx, id, "test")
	case 3:
		what = "verify again"
		_, err = w.b.store.RequestVerification(ctx, id)
	case 4:
		what = "settle handshakes, some failing"
		outcome := map[string]string{}
		if w.rng.IntN(2) == 0 {
			outcome[id] = "answered 403"
		}
		settle(w.t, w.b.store, outcome)
	case 5:
		what = "delete and create"
		if err = w.b.store.Delete(ctx, id); err == nil {
			s := newSub("https://example.com/again")
			w.filters(s)
			got := mustCreate(w.t, w.b.store, s)
			w.ids[slices.Index(w.ids, id)] = got.ID
			settle(w.t, w.b.store, nil)
		}
	case 6:
		what = "description (no fan-out change)"
		_, err = w.b.store.Update(ctx, id, func(s *Subscriber) error { s.Description = fmt.Sprint(w.rng.Int()); return nil })
	}
	if err != nil {
		w.t.Fatalf("%s of %s: %v", what, id, err)
	}
	return what
}

// check compares CountMatch, Targets (at several page sizes) and scan with a brute-force filter
// over every stored document, for every channel and event type.
func (w *world) check(step string) {
	t := w.t
	t.Helper()
	ctx := context.Background()
	var full []*Subscriber
	for _, id := range w.ids {
		s, err := w.b.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, s)
	}
	slices.SortFunc(full, func(a, b *Subscriber) int { return strings.Compare(a.ID, b.ID) })
	for _, ch := range w.chans {
		for _, typ := range EventTypes {
			var want []Target
			for _, s := range full {
				if s.Active() && s.Matches(ch, typ) {
					want = append(want, Target{ID: s.ID, Token: s.Token})
				}
			}
			for range 2 { // a fresh count, then the cached one
				n, err := w.b.store.CountMatch(ctx, ch, typ)
				if err != nil {
					t.Fatal(err)
				}
				if n != len(want) {
					t.Fatalf("after %s: count %s %v %v %s = %d, want %d", step, ch.ChannelID, ch.ChannelTags, ch.ChannelMetadata, typ, n, len(want))
				}
			}
			for _, limit := range []int{5, 1000} {
				var got []Target
				after := ""
				for pages := 0; ; pages++ {
					page, next, err := w.b.store.Targets(ctx, ch, typ, after, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("page of %d > limit %d", len(page), limit)
					}
					got = append(got, page...)
					if next == "" {
						break
					}
					if pages > len(full)+1 {
						t.Fatal("paging does not end")
					}
					after = next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("after %s: targets %s %s limit %d:\n got %v\nwant %v", step, ch.ChannelID, typ, limit, got, want)
				}
			}
			// Small rounds make the indexes stop at different ids, which the merge must join.
			for _, batch := range []int{1, 3} {
				var got []Target
				if _, err := w.b.store.scan(ctx, ch, typ, "", batch, 2, func(id, token string) bool {
					got = append(got, Target{ID: id, Token: token})
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("after %s: scan %s %v %s in rounds of %d:\n got %v\nwant %v", step, ch.ChannelID, ch.ChannelTags, typ, batch, got, want)
				}
			}
			// Everything fits one page of 1000: no cursor follows it.
			all, next, err := w.b.store.Targets(ctx, ch, typ, "", 1000)
			if err != nil || next != "" || !slices.Equal(all, want) {
				t.Fatalf("after %s: one page of targets = %v, next %q, err %v; want %v", step, all, next, err, want)
			}
		}
	}
}

// TestCountAndTargetsExact checks CountMatch (fresh and cached) and Targets against a brute-force
// filter over every document, after each of a series of random updates, disables, handshake
// results, re-verifications and deletes.
func TestCountAndTargetsExact(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		w := newWorld(t, b, 60)
		w.check("set-up")
		for step := range 15 {
			what := w.mutate()
			w.check(fmt.Sprintf("step %d (%s)", step, what))
		}
	})
}

// TestCountCacheFollowsGeneration: a repeated count is served from the cache; a change of a
// subscriber's fan-out record or status moves the generation, a change of its description does
// not.
func TestCountCacheFollowsGeneration(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		gen := func() string { g, _ := b.rdb.Get(ctx, b.store.k.gen()).Result(); return g }
		a := mustCreate(t, b.store, newSub("https://example.com/a"))
		mustCreate(t, b.store, newSub("https://example.com/b"))
		if g := gen(); g != "" {
			t.Fatalf("pending subscribers moved the generation to %q", g)
		}
		settle(t, b.store, nil)
		ch := &channels.Channel{ChannelID: "c"}
		if n, err := b.store.CountMatch(ctx, ch, TypeUpdateNotification); n != 2 || err != nil {
			t.Fatalf("count = %d, %v", n, err)
		}
		sig := countSig(ch, TypeUpdateNotification)
		if v, _ := b.rdb.HGet(ctx, b.store.k.counts(), sig).Result(); v != "2" {
			t.Fatalf("cached count = %q, want 2", v)
		}
		g0 := gen()
		if _, err := b.store.Update(ctx, a.ID, func(s *Subscriber) error { s.Description = "x"; return nil }); err != nil {
			t.Fatal(err)
		}
		if gen() != g0 {
			t.Fatal("a description change moved the generation")
		}
		if _, err := b.store.Update(ctx, a.ID, func(s *Subscriber) error { s.ChatTypes = []string{"support"}; return nil }); err != nil {
			t.Fatal(err)
		}
		if gen() == g0 {
			t.Fatal("a filter change left the generation")
		}
		if n, _ := b.rdb.Exists(ctx, b.store.k.counts()).Result(); n != 0 {
			t.Fatal("a filter change left the cached counts")
		}
		if n, err := b.store.CountMatch(ctx, ch, TypeUpdateNotification); n != 1 || err != nil {
			t.Fatalf("count after a filter change = %d, %v", n, err)
		}
		// A count made while the generation moved is not cached.
		if ok, err := setCountScript.Run(ctx, b.rdb, []string{b.store.k.gen(), b.store.k.counts()}, g0, sig, 99, maxCachedCounts).Int(); ok != 0 || err != nil {
			t.Fatalf("stale count cached: %d %v", ok, err)
		}
		if n, _ := b.store.CountMatch(ctx, ch, TypeUpdateNotification); n != 1 {
			t.Fatalf("count = %d after a stale write, want 1", n)
		}
		if _, err := b.store.Disable(ctx, a.ID, "gone"); err != nil {
			t.Fatal(err)
		}
		chSupport := &channels.Channel{ChannelID: "c", ChannelMetadata: map[string]any{"chat_type": "support"}}
		if n, _ := b.store.CountMatch(ctx, chSupport, TypeUpdateNotification); n != 1 {
			t.Fatalf("count after disable = %d, want 1", n)
		}
	})
}

// TestFanOutReadsOldDocuments: a subscriber stored before fan-out records existed (indexed, but
// without a record) still matches, by its document.
func TestFanOutReadsOldDocuments(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		var ids []string
		for i := range 3 {
			s := newSub(fmt.Sprintf("https://example.com/%d", i))
			s.Token = fmt.Sprintf("tok-%d", i)
			ids = append(ids, mustCreate(t, b.store, s).ID)
		}
		settle(t, b.store, nil)
		slices.Sort(ids)
		if err := b.rdb.HDel(ctx, b.store.k.fan(), ids[1]).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.rdb.Del(ctx, b.store.k.counts()).Err(); err != nil {
			t.Fatal(err)
		}
		ch := &channels.Channel{ChannelID: "c"}
		got, next, err := b.store.Targets(ctx, ch, TypeUpdateNotification, "", 10)
		if err != nil || next != "" || len(got) != 3 {
			t.Fatalf("targets = %v, %q, %v", got, next, err)
		}
		for i, g := range got {
			s, _ := b.store.Get(ctx, ids[i])
			if g.ID != s.ID || g.Token != s.Token {
				t.Fatalf("target %d = %v, want %s/%s", i, g, s.ID, s.Token)
			}
		}
		if n, err := b.store.CountMatch(ctx, ch, TypeUpdateNotification); n != 3 || err != nil {
			t.Fatalf("count = %d, %v", n, err)
		}
		// The next write of the subscriber gives it its record.
		if _, err := b.store.Update(ctx, ids[1], func(s *Subscriber) error { s.Description = "x"; return nil }); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.rdb.HExists(ctx, b.store.k.fan(), ids[1]).Result(); !ok {
			t.Fatal("a write did not store the fan-out record")
		}
	})
}

// TestCountRacingWrites races counts with writes; once the writes stop, the count (cached or
// not) is exact.
func TestCountRacingWrites(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		w := newWorld(t, b, 30)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 3 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					for _, ch := range w.chans {
						if _, err := b.store.CountMatch(ctx, ch, TypeUpdateNotification); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		for range 40 {
			id := w.ids[w.rng.IntN(len(w.ids))]
			if _, err := b.store.Update(ctx, id, func(s *Subscriber) error { w.filters(s); return nil }); err != nil {
				t.Fatal(err)
			}
			if w.rng.IntN(4) == 0 {
				if _, err := b.store.Disable(ctx, id, "test"); err != nil {
					t.Fatal(err)
				}
			}
			b.clock.Add(2 * time.Minute) // claimed handshakes come back
			settle(t, b.store, nil)
		}
		close(stop)
		wg.Wait()
		w.check("racing writes")
	})
}

// TestMatchJoinsIndexesOfDifferentSizes: a large index (subscribers without channel filters, here
// all filtered out by their types) and a small one (the channel's id) are merged without losing
// the small one's ids past the point the large one's first round stopped at.
func TestMatchJoinsIndexesOfDifferentSizes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		var want []string
		for i := range 300 {
			s := newSub(fmt.Sprintf("https://example.com/%d", i))
			if i%30 == 0 {
				s.ChannelIDs = []string{"c1"}
			} else {
				s.Types = []string{TypeRepublishRequest}
			}
			id := mustCreate(t, b.store, s).ID
			if i%30 == 0 {
				want = append(want, id)
			}
		}
		settle(t, b.store, nil)
		slices.Sort(want)
		ch := &channels.Channel{ChannelID: "c1"}
		for _, limit := range []int{50, 1000} {
			var got []string
			eachPage(t, 0, func(after string) ([]Target, string, error) {
				return b.store.Targets(ctx, ch, TypeUpdateNotification, after, limit)
			}, func(page []Target) {
				for _, s := range page {
					got = append(got, s.ID)
				}
			})
			if !slices.Equal(got, want) {
				t.Fatalf("limit %d: targets found %d, want %d", limit, len(got), len(want))
			}
		}
		if n, err := b.store.CountMatch(ctx, ch, TypeUpdateNotification); n != len(want) || err != nil {
			t.Fatalf("count = %d, %v; want %d", n, err, len(want))
		}
	})
}
