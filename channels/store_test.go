package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/redisx/redistest"
)

// testPolicy lets tests use loopback receivers over http, as the try-out does.
var testPolicy = egress.Policy{AllowHTTP: true, AllowPrivate: true}

// newRedisStore is a Store on the shared real Redis under a prefix of its own.
func newRedisStore(t *testing.T) *Store {
	rdb, prefix := redistest.Shared(t)
	return NewStore(rdb, prefix, WithPolicy(testPolicy))
}

// newEmbeddedStore is a Store on miniredis, the embedded try-out store.
func newEmbeddedStore(t *testing.T) *Store {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return NewStore(rdb, "herald", WithPolicy(testPolicy))
}

func TestStoreRedis(t *testing.T) {
	t.Parallel()
	runStoreSuite(t, newRedisStore)
}

func TestStoreEmbedded(t *testing.T) {
	t.Parallel()
	runStoreSuite(t, newEmbeddedStore)
}

// runStoreSuite is the contract every Store backend must meet.
func runStoreSuite(t *testing.T, newStore func(t *testing.T) *Store) {
	tests := map[string]func(t *testing.T, s *Store){
		"CRUD":                 testCRUD,
		"CreateExists":         testCreateExists,
		"RacingCreates":        testRacingCreates,
		"ConcurrentTagUpdates": testConcurrentTagUpdates,
		"MergePatch":           testMergePatch,
		"InvalidWritesNothing": testInvalidWritesNothing,
		"FilterOperators":      testFilterOperators,
		"MetadataPaths":        testMetadataPaths,
		"Paging":               testPaging,
		"PartialPages":         testPartialPages,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newStore(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ch(id string, tags ...string) *Channel {
	return &Channel{
		ChannelID:       id,
		ChannelName:     "name " + id,
		ChannelMetadata: map[string]any{"endpoint_url": "http://127.0.0.1:5001/incoming"},
		ChannelTags:     tags,
	}
}

func mustCreate(t *testing.T, s *Store, c *Channel) *Channel {
	t.Helper()
	out, err := s.Create(ctxT(t), c)
	if err != nil {
		t.Fatalf("create %s: %v", c.ChannelID, err)
	}
	return out
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkIndex verifies that the indexes agree exactly with the documents: the all-channels set
// holds every document's id and nothing else, and each tag set holds exactly the ids of the
// documents carrying the tag. It finds the keys with SCAN, as an operator would.
func checkIndex(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	scan := func(pattern string) []string {
		var out []string
		it := s.rdb.Scan(ctx, 0, pattern, 500).Iterator()
		for it.Next(ctx) {
			out = append(out, it.Val())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	docs := map[string]*Channel{}
	wantTags := map[string][]string{}
	for _, k := range scan(s.k.base + "doc:*") {
		raw, err := s.rdb.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		e, err := decodeDoc(raw)
		if err != nil {
			t.Fatal(err)
		}
		if k != s.k.doc(e.C.ChannelID) {
			t.Fatalf("document under %s holds channel %s", k, e.C.ChannelID)
		}
		docs[e.C.ChannelID] = e.C
		for _, tag := range e.C.ChannelTags {
			wantTags[tag] = append(wantTags[tag], e.C.ChannelID)
		}
	}
	all, err := s.rdb.ZRange(ctx, s.k.all(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range docs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(all, ids) {
		t.Fatalf("all-channels index %v disagrees with documents %v", all, ids)
	}
	tagKeys := scan(s.k.base + "tag:*")
	if len(tagKeys) != len(wantTags) {
		t.Fatalf("%d tag indexes, want %d (tags %v)", len(tagKeys), len(wantTags), wantTags)
	}
	for tag, want := range wantTags {
		got, err := s.rdb.ZRange(ctx, s.k.tag(tag), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("tag index %q = %v, documents say %v", tag, got, want)
		}
	}
}

func testCRUD(t *testing.T, s *Store) {
	ctx := ctxT(t)
	in := &Channel{ChannelID: "slack-sim", ChannelMetadata: map[string]any{"endpoint_url": "http://localhost:5001/incoming"},
		ChannelTags: []string{"slack", "test", "slack"}}
	got := mustCreate(t, s, in)
	want := `{"channel_id":"slack-sim","channel_name":"","channel_description":"","channel_metadata":{"endpoint_url":"http://localhost:5001/incoming"},"channel_tags":["slack","test"]}`
	if asJSON(got) != want {
		t.Fatalf("created %s\nwant     %s", asJSON(got), want)
	}
	read, err := s.Get(ctx, "slack-sim")
	if err != nil || asJSON(read) != want {
		t.Fatalf("get = %s, %v", asJSON(read), err)
	}
	bare := mustCreate(t, s, &Channel{ChannelID: "bare", ChannelMetadata: map[string]any{"endpoint_url": "https://example.com/in"}})
	if asJSON(bare.ChannelTags) != "[]" || asJSON(bare.ChannelMetadata) != `{"endpoint_url":"https://example.com/in"}` {
		t.Fatalf("defaults: %s", asJSON(bare))
	}
	if b, _ := s.Get(ctx, "bare"); asJSON(b.ChannelTags) != "[]" {
		t.Fatalf("stored tags %s, want []", asJSON(b.ChannelTags))
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	desc := "Updated"
	up, err := s.Update(ctx, "slack-sim", Patch{Description: &desc})
	if err != nil || up.ChannelDescription != "Updated" || asJSON(up.ChannelTags) != `["slack","test"]` {
		t.Fatalf("update = %s, %v", asJSON(up), err)
	}
	if _, err := s.Update(ctx, "nope", Patch{Description: &desc}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	checkIndex(t, s)
	if err := s.Delete(ctx, "slack-sim"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "slack-sim"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, "slack-sim"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	checkIndex(t, s)
	// The id is free again.
	mustCreate(t, s, ch("slack-sim", "other"))
	checkIndex(t, s)
}

func testCreateExists(t *testing.T, s *Store) {
	ctx := ctxT(t)
	mustCreate(t, s, ch("a", "x"))
	dup := ch("a", "y")
	dup.ChannelName = "second"
	if _, err := s.Create(ctx, dup); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	got, _ := s.Get(ctx, "a")
	if got.ChannelName != "name a" || asJSON(got.ChannelTags) != `["x"]` {
		t.Fatalf("the losing create changed the channel: %s", asJSON(got))
	}
	checkIndex(t, s)
}

func testRacingCreates(t *testing.T, s *Store) {
	ctx := ctxT(t)
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := ch("race", fmt.Sprintf("t%d", i))
			c.ChannelName = fmt.Sprint(i)
			_, errs[i] = s.Create(ctx, c)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("two creates succeeded: %d and %d", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	got, _ := s.Get(ctx, "race")
	if got.ChannelName != fmt.Sprint(winner) || asJSON(got.ChannelTags) != fmt.Sprintf(`["t%d"]`, winner) {
		t.Fatalf("stored %s, winner was %d", asJSON(got), winner)
	}
	checkIndex(t, s)
}

func testConcurrentTagUpdates(t *testing.T, s *Store) {
	ctx := ctxT(t)
	pool := []string{"a", "b", "c", "d", "e", "f"}
	ids := []string{"c1", "c2", "c3"}
	for _, id := range ids {
		mustCreate(t, s, ch(id, "a"))
	}
	const workers, rounds = 12, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				id := ids[r.IntN(len(ids))]
				var tags []string
				for _, tg := range pool {
					if r.IntN(2) == 0 {
						tags = append(tags, tg)
					}
				}
				var err error
				switch r.IntN(10) {
				case 0: // delete and create again: the index must follow documents that come and go
					err = s.Delete(ctx, id)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
					if err == nil {
						_, err = s.Create(ctx, ch(id, tags...))
						if errors.Is(err, ErrExists) {
							err = nil
						}
					}
				case 1: // metadata-only writes race with tag writes
					_, err = s.Update(ctx, id, Patch{Metadata: map[string]any{"w": json.Number(fmt.Sprint(w))}})
				default:
					_, err = s.Update(ctx, id, Patch{Tags: &tags})
				}
				if errors.Is(err, ErrNotFound) {
					err = nil // deleted by another worker in between
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	checkIndex(t, s)
	// Queries through the index agree with a walk over the documents.
	for _, tg := range pool {
		f, _ := ParseFilter([]byte(fmt.Sprintf(`{"channel_tags": %q}`, tg)))
		got := queryAll(t, s, f, 2)
		var want []string
		for _, id := range ids {
			if c, err := s.Get(ctx, id); err == nil && slices.Contains(c.ChannelTags, tg) {
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tag %s: query %v, documents %v", tg, got, want)
		}
	}
}

func testMergePatch(t *testing.T, s *Store) {
	ctx := ctxT(t)
	c := ch("m", "x", "y")
	c.ChannelDescription = "desc"
	c.ChannelMetadata = map[string]any{
		"endpoint_url": "http://127.0.0.1:1/in",
		"chat_type":    "slack",
		"nested":       map[string]any{"a": json.Number("1"), "b": json.Number("2")},
		"list":         []any{json.Number("1"), json.Number("2")},
		"big":          json.Number("12345678901234567890"),
	}
	mustCreate(t, s, c)
	name := "renamed"
	got, err := s.Update(ctx, "m", Patch{
		Name: &name,
		Metadata: map[string]any{
			"chat_type": nil,                                  // null deletes the key
			"nested":    map[string]any{"a": nil, "c": "new"}, // objects merge key by key
			"list":      []any{"replaced"},                    // lists replace
			"fresh":     map[string]any{"x": nil, "y": true},  // nulls vanish inside new objects too
			"absent":    nil,                                  // deleting a missing key is fine
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"channel_id":"m","channel_name":"renamed","channel_description":"desc","channel_metadata":{"big":12345678901234567890,"endpoint_url":"http://127.0.0.1:1/in","fresh":{"y":true},"list":["replaced"],"nested":{"b":2,"c":"new"}},"channel_tags":["x","y"]}`
	if asJSON(got) != want {
		t.Fatalf("patched %s\nwant    %s", asJSON(got), want)
	}
	if read, _ := s.Get(ctx, "m"); asJSON(read) != want {
		t.Fatalf("stored %s", asJSON(read))
	}
	empty := []string{}
	if got, _ = s.Update(ctx, "m", Patch{Tags: &empty}); asJSON(got.ChannelTags) != "[]" {
		t.Fatalf("cleared tags: %s", asJSON(got.ChannelTags))
	}
	// An update that changes nothing writes nothing.
	before, _ := s.rdb.Get(ctx, s.k.doc("m")).Result()
	if _, err := s.Update(ctx, "m", Patch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.rdb.Get(ctx, s.k.doc("m")).Result(); after != before {
		t.Fatal("a no-op update rewrote the document")
	}
	checkIndex(t, s)
}

func testInvalidWritesNothing(t *testing.T, s *Store) {
	ctx := ctxT(t)
	strict := NewStore(s.rdb, strings.SplitN(s.k.base, ":", 2)[0])
	mustCreate(t, s, ch("keep", "t"))
	bad := []struct {
		name  string
		c     *Channel
		field string
	}{
		{"bad id", ch("a b"), "channel_id"},
		{"no endpoint", &Channel{ChannelID: "x"}, "channel_metadata.endpoint_url"},
		{"endpoint not string", &Channel{ChannelID: "x", ChannelMetadata: map[string]any{"endpoint_url": json.Number("5")}}, "channel_metadata.endpoint_url"},
		{"endpoint not http", &Channel{ChannelID: "x", ChannelMetadata: map[string]any{"endpoint_url": "ftp://h/x"}}, "channel_metadata.endpoint_url"},
		{"empty tag", ch("x", ""), "channel_tags"},
		{"long tag", ch("x", strings.Repeat("t", MaxTagLen+1)), "channel_tags"},
		{"control tag", ch("x", "a\nb"), "channel_tags"},
		{"too many tags", ch("x", manyTags(MaxTags+1)...), "channel_tags"},
		{"long name", &Channel{ChannelID: "x", ChannelName: strings.Repeat("n", MaxNameLen+1), ChannelMetadata: map[string]any{"endpoint_url": "http://h/"}}, "channel_name"},
	}
	for _, b := range bad {
		_, err := s.Create(ctx, b.c)
		var he *httpx.Error
		if !errors.As(err, &he) || he.Status != 400 || he.Field != b.field || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: err %v, want a 400 on %s", b.name, err, b.field)
		}
	}
	// The strict default policy refuses http and loopback targets.
	if _, err := strict.Create(ctx, ch("strict")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("strict policy accepted an http loopback target: %v", err)
	}
	before, _ := s.Get(ctx, "keep")
	for _, p := range []Patch{
		{Metadata: map[string]any{"endpoint_url": nil}},
		{Metadata: map[string]any{"endpoint_url": "javascript:alert(1)"}},
		{Tags: &[]string{""}},
	} {
		if _, err := s.Update(ctx, "keep", p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("update %+v: %v", p, err)
		}
	}
	after, _ := s.Get(ctx, "keep")
	if asJSON(after) != asJSON(before) {
		t.Fatalf("a refused update changed the channel: %s", asJSON(after))
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused create left a channel: %v", err)
	}
	checkIndex(t, s)
}

func manyTags(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("t", i)
	}
	return out
}

// queryAll pages through a query with the given page size and returns the ids in order, failing
// on a repeat or an out-of-order id.
func queryAll(t *testing.T, s *Store, f *Filter, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		chans, next, err := s.Query(ctxT(t), f, limit, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) > limit {
			t.Fatalf("page of %d, limit %d", len(chans), limit)
		}
		for _, c := range chans {
			if len(ids) > 0 && c.ChannelID <= ids[len(ids)-1] {
				t.Fatalf("id %s after %s: repeat or out of order", c.ChannelID, ids[len(ids)-1])
			}
			if !f.Match(c) {
				t.Fatalf("%s does not match %s", c.ChannelID, f)
			}
			ids = append(ids, c.ChannelID)
		}
		if next == "" {
			return ids
		}
		if next <= after {
			t.Fatalf("cursor went back from %q to %q", after, next)
		}
		after = next
	}
}

// filterFixture is the data set of testFilterOperators.
func filterFixture(t *testing.T, s *Store) {
	mk := func(id, name string, tags []string, meta map[string]any) {
		meta["endpoint_url"] = "http://127.0.0.1:9/" + id
		mustCreate(t, s, &Channel{ChannelID: id, ChannelName: name, ChannelDescription: "d-" + id, ChannelTags: tags, ChannelMetadata: meta})
	}
	mk("a1", "Alpha", []string{"slack", "prod"}, map[string]any{"chat_type": "slack", "n": json.Number("1"), "o": map[string]any{"k": "v"}})
	mk("b2", "Beta", []string{"teams"}, map[string]any{"chat_type": "teams", "n": json.Number("2.0"), "z": nil})
	mk("c3", "Gamma", []string{"slack", "test"}, map[string]any{"n": json.Number("2"), "arr": []any{"x", "y"}})
	mk("d4", "Delta", []string{}, map[string]any{"chat_type": "discord"})
	mk("e5", "Alpha", []string{"discord", "prod", "test"}, map[string]any{"chat_type": "slack", "o": map[string]any{"k": "w"}})
}

func testFilterOperators(t *testing.T, s *Store) {
	filterFixture(t, s)
	cases := []struct{ filter, want string }{
		{`{}`, "a1 b2 c3 d4 e5"},
		{``, "a1 b2 c3 d4 e5"},
		{`{"channel_tags": {"$in": ["slack"]}}`, "a1 c3"},
		{`{"channel_tags": "prod"}`, "a1 e5"},
		{`{"channel_tags": {"$eq": "test"}}`, "c3 e5"},
		{`{"channel_tags": {"$in": ["teams", "discord", 5, null]}}`, "b2 e5"},
		{`{"channel_tags": {"$in": []}}`, ""},
		{`{"channel_tags": {"$all": ["prod", "test"]}}`, "e5"},
		{`{"channel_tags": {"$all": []}}`, ""},
		{`{"channel_tags": ["slack", "test"]}`, "c3"},
		{`{"channel_tags": []}`, "d4"},
		{`{"channel_tags": {"$ne": "slack"}}`, "b2 d4 e5"},
		{`{"channel_tags": {"$nin": ["slack", "teams"]}}`, "d4 e5"},
		{`{"channel_tags": {"$exists": true}}`, "a1 b2 c3 d4 e5"},
		{`{"channel_id": "c3"}`, "c3"},
		{`{"channel_id": {"$in": ["e5", "a1", "zz", 7]}}`, "a1 e5"},
		{`{"channel_id": {"$ne": "c3"}}`, "a1 b2 d4 e5"},
		{`{"channel_id": {"$nin": ["a1", "b2"]}}`, "c3 d4 e5"},
		{`{"channel_name": "Alpha"}`, "a1 e5"},
		{`{"channel_name": {"$in": ["Beta", "Delta"]}}`, "b2 d4"},
		{`{"channel_description": "d-c3"}`, "c3"},
		{`{"channel_metadata.chat_type": "slack"}`, "a1 e5"},
		{`{"channel_metadata.chat_type": {"$exists": false}}`, "c3"},
		{`{"channel_metadata.chat_type": {"$exists": true, "$ne": "slack"}}`, "b2 d4"},
		{`{"channel_metadata.chat_type": null}`, "c3"},
		{`{"channel_metadata.z": null}`, "a1 b2 c3 d4 e5"},
		{`{"channel_metadata.z": {"$exists": true}}`, "b2"},
		{`{"channel_metadata.n": 2}`, "b2 c3"},
		{`{"channel_metadata.n": {"$in": [1, 3]}}`, "a1"},
		{`{"channel_metadata.o.k": "w"}`, "e5"},
		{`{"channel_metadata.o": {"k": "v"}}`, "a1"},
		{`{"channel_metadata.arr": "y"}`, "c3"},
		{`{"channel_metadata.arr": {"$all": ["y", "x"]}}`, "c3"},
		{`{"channel_metadata.o.k.deeper": {"$exists": true}}`, ""},
		{`{"channel_tags": "slack", "channel_name": "Gamma"}`, "c3"},
		{`{"$and": [{"channel_tags": "prod"}, {"channel_tags": "test"}]}`, "e5"},
		{`{"$and": [{"channel_tags": "prod"}, {"channel_metadata.chat_type": "slack"}]}`, "a1 e5"},
		{`{"$or": [{"channel_tags": "teams"}, {"channel_id": "d4"}]}`, "b2 d4"},
		{`{"$or": [{"channel_tags": "teams"}, {"channel_name": "Alpha"}]}`, "a1 b2 e5"},
		{`{"$or": [{"channel_tags": "nope"}, {"channel_id": "nope"}]}`, ""},
		{`{"$and": [{"$or": [{"channel_tags": "slack"}, {"channel_tags": "discord"}]}, {"channel_name": {"$ne": "Gamma"}}]}`, "a1 e5"},
		{`{"channel_tags": {"$in": ["slack"], "$nin": ["test"]}}`, "a1"},
	}
	for _, tc := range cases {
		f, err := ParseFilter([]byte(tc.filter))
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		// The JSON answer is what encoding the channels gives.
		chans, next, err := s.Query(ctxT(t), f, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		raws, nextJSON, err := s.QueryJSON(ctxT(t), f, 100, "")
		if err != nil || asJSON(chans) != asJSON(raws) || next != nextJSON {
			t.Fatalf("%s: QueryJSON %s, Query %s (%v)", tc.filter, asJSON(raws), asJSON(chans), err)
		}
		for _, limit := range []int{1, 2, 100} {
			got := strings.Join(queryAll(t, s, f, limit), " ")
			if got != tc.want {
				t.Errorf("%s (limit %d) = [%s], want [%s]", tc.filter, limit, got, tc.want)
			}
		}
	}
}

// testMetadataPaths: a channel_metadata path walks lists as MongoDB does. Where the path meets a
// list, the rest of it applies to every element (a condition matches when it matches for one),
// and a whole-number key picks an element by index. Where a path reaches nothing it is missing,
// so $ne, $nin and $exists: false match only channels where no element matches.
func testMetadataPaths(t *testing.T, s *Store) {
	for id, meta := range map[string]map[string]any{
		"p1": {"items": []any{map[string]any{"id": "a", "n": json.Number("1")}, map[string]any{"id": "b"}}},
		"p2": {"items": []any{map[string]any{"id": "c", "n": json.Number("2.0")}}},
		"p3": {"items": []any{}},
		"p4": {"items": map[string]any{"id": "a", "0": "zero"}},
		"p5": {},
		"p6": {"items": []any{"a", map[string]any{"id": "d"}}},
		"p7": {"items": []any{[]any{map[string]any{"id": "a"}}}},
		"p8": {"items": []any{map[string]any{"tags": []any{"x", "y"}}, map[string]any{"tags": []any{"z"}, "id": nil}}},
	} {
		meta["endpoint_url"] = "http://127.0.0.1:9/" + id
		mustCreate(t, s, &Channel{ChannelID: id, ChannelMetadata: meta})
	}
	cases := []struct{ filter, want string }{
		{`{"channel_metadata.items.id": "a"}`, "p1 p4"},
		{`{"channel_metadata.items.id": "b"}`, "p1"},
		{`{"channel_metadata.items.id": {"$eq": "d"}}`, "p6"},
		{`{"channel_metadata.items.id": {"$ne": "a"}}`, "p2 p3 p5 p6 p7 p8"},
		{`{"channel_metadata.items.id": {"$in": ["b", "c"]}}`, "p1 p2"},
		{`{"channel_metadata.items.id": {"$nin": ["a", "c"]}}`, "p3 p5 p6 p7 p8"},
		{`{"channel_metadata.items.id": {"$all": ["a", "b"]}}`, "p1"},
		{`{"channel_metadata.items.id": {"$exists": true}}`, "p1 p2 p4 p6 p8"},
		{`{"channel_metadata.items.id": {"$exists": false}}`, "p3 p5 p7"},
		{`{"channel_metadata.items.id": null}`, "p3 p5 p6 p7 p8"},
		{`{"channel_metadata.items.id": {"$ne": null}}`, "p1 p2 p4"},
		{`{"channel_metadata.items.n": 2}`, "p2"},
		{`{"channel_metadata.items.n": {"$in": [1, 3]}}`, "p1"},
		{`{"channel_metadata.items.tags": "z"}`, "p8"},
		{`{"channel_metadata.items.tags": {"$all": ["x", "z"]}}`, "p8"},
		{`{"channel_metadata.items.tags": {"$nin": ["y"]}}`, "p1 p2 p3 p4 p5 p6 p7"},
		{`{"channel_metadata.items.0.id": "a"}`, "p1 p7"},
		{`{"channel_metadata.items.1.id": {"$exists": true}}`, "p1 p6 p8"},
		{`{"channel_metadata.items.0": "a"}`, "p6"},
		{`{"channel_metadata.items.0": "zero"}`, "p4"},
		{`{"channel_metadata.items.0.0.id": "a"}`, "p7"},
		{`{"channel_metadata.items.2": {"$exists": true}}`, ""},
		{`{"channel_metadata.items.00.id": "a"}`, ""},
		{`{"channel_metadata.items": {"$exists": false}}`, "p5"},
		{`{"channel_metadata.items": []}`, "p3"},
	}
	for _, tc := range cases {
		f, err := ParseFilter([]byte(tc.filter))
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if got := strings.Join(queryAll(t, s, f, 100), " "); got != tc.want {
			t.Errorf("%s = [%s], want [%s]", tc.filter, got, tc.want)
		}
	}
}

func testPaging(t *testing.T, s *Store) {
	const n = 230
	ctx := ctxT(t)
	var all, even, tagged []string
	for i := range n {
		id := fmt.Sprintf("p%04d", i)
		tags := []string{fmt.Sprint("m", i%3), fmt.Sprint("u", i)}
		if i%2 == 0 {
			tags = append(tags, "even")
			even = append(even, id)
		}
		if i%3 != 1 {
			tagged = append(tagged, id)
		}
		all = append(all, id)
		c := ch(id, tags...)
		c.ChannelName = fmt.Sprint(i % 2)
		mustCreate(t, s, c)
	}
	var uTags []string
	var uWant []string
	for i := 0; i < n; i += 2 {
		uTags = append(uTags, fmt.Sprintf("%q", fmt.Sprint("u", i)))
		uWant = append(uWant, fmt.Sprintf("p%04d", i))
	}
	filters := []struct {
		f    string
		want []string
	}{
		{`{"channel_tags": {"$in": [` + strings.Join(uTags, ",") + `]}}`, uWant},
		{`{}`, all},
		{`{"channel_tags": "even"}`, even},
		{`{"channel_name": "0"}`, even},
		{`{"channel_tags": {"$in": ["m0", "m2"]}}`, tagged},
		{`{"$or": [{"channel_tags": "m0"}, {"channel_tags": "m2"}, {"channel_id": "p0002"}]}`, tagged},
	}
	for _, fl := range filters {
		f, err := ParseFilter([]byte(fl.f))
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 7, 100, 1000} {
			if got := queryAll(t, s, f, limit); !slices.Equal(got, fl.want) {
				t.Fatalf("%s limit %d: %d ids, want %d (first %v)", fl.f, limit, len(got), len(fl.want), got[:min(5, len(got))])
			}
		}
	}
	// A full page ends where the next begins; the last page says there is no next.
	f, _ := ParseFilter([]byte(`{"channel_tags": "even"}`))
	page, next, err := s.Query(ctx, f, len(even), "")
	if err != nil || len(page) != len(even) || next != "" {
		t.Fatalf("exact page: %d channels, next %q, %v", len(page), next, err)
	}
	page, next, err = s.Query(ctx, f, 10, even[len(even)-1])
	if err != nil || len(page) != 0 || next != "" {
		t.Fatalf("after the last: %d channels, next %q, %v", len(page), next, err)
	}
}

func testPartialPages(t *testing.T, s *Store) {
	s.minBudget = 20
	ctx := ctxT(t)
	var want []string
	for i := range 120 {
		c := ch(fmt.Sprintf("q%03d", i))
		if i%40 == 39 {
			c.ChannelName = "needle"
			want = append(want, c.ChannelID)
		}
		mustCreate(t, s, c)
	}
	f, _ := ParseFilter([]byte(`{"channel_name": "needle"}`))
	// The first page examines at most 20 channels: none match, and a cursor says where to resume.
	page, next, err := s.Query(ctx, f, 1, "")
	if err != nil || len(page) != 0 || next != "q019" {
		t.Fatalf("first page: %d channels, next %q, %v", len(page), next, err)
	}
	if got := queryAll(t, s, f, 1); !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
	// Indexed queries are bounded the same way, but walk only their candidates.
	for i := range 30 {
		c := ch(fmt.Sprintf("r%03d", i), "hot")
		if i == 25 {
			c.ChannelName = "needle"
		}
		mustCreate(t, s, c)
	}
	ft, _ := ParseFilter([]byte(`{"channel_tags": {"$in": ["hot"]}, "channel_name": "needle"}`))
	page, next, err = s.Query(ctx, ft, 1, "")
	if err != nil || len(page) != 0 || next != "r019" {
		t.Fatalf("tag page: %d channels, next %q, %v", len(page), next, err)
	}
	if got := queryAll(t, s, ft, 1); !slices.Equal(got, []string{"r025"}) {
		t.Fatalf("tag query paged %v, want [r025]", got)
	}
}
