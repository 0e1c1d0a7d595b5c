package subscribers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/webhooksig"
)

// clock is a settable clock for tests.
type clock = testutil.Clock

func newClock() *clock { return testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

type bundle struct {
	store  *Store
	rdb    redis.UniversalClient
	prefix string
	clock  *clock
}

// backends runs a store contract test against real Redis and against the embedded store.
func backends(t *testing.T, test func(t *testing.T, b *bundle)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rdb, prefix := redistest.Shared(t)
		c := newClock()
		test(t, &bundle{store: NewStore(rdb, prefix, WithClock(c.Now)), rdb: rdb, prefix: prefix, clock: c})
	})
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		conn, err := redisx.Open(context.Background(), redisx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := newClock()
		test(t, &bundle{store: NewStore(conn.Client, "herald", WithClock(c.Now)), rdb: conn.Client, prefix: "herald", clock: c})
	})
}

// eachPage walks a paged listing from the start, passing each page to each: fetch returns the
// page after a cursor and the next cursor, empty after the last page. It fails tb on an error or
// when paging goes past maxPages pages (0: no limit).
func eachPage[T any](tb testing.TB, maxPages int, fetch func(after string) ([]T, string, error), each func(page []T)) {
	tb.Helper()
	after := ""
	for pages := 1; ; pages++ {
		page, next, err := fetch(after)
		if err != nil {
			tb.Fatal(err)
		}
		each(page)
		if next == "" {
			return
		}
		if maxPages > 0 && pages >= maxPages {
			tb.Fatal("paging does not end")
		}
		after = next
	}
}

func newSub(url string) *Subscriber {
	return &Subscriber{URL: url, Token: "tok", Secret: webhooksig.NewSecret()}
}

func mustCreate(t *testing.T, s *Store, sub *Subscriber) *Subscriber {
	t.Helper()
	got, err := s.Create(context.Background(), sub)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return got
}

// settle claims every queued handshake and finishes it: verified when outcome[id] is "", failed
// with outcome[id] otherwise; ids without an entry are verified.
func settle(t *testing.T, s *Store, outcome map[string]string) {
	t.Helper()
	ctx := context.Background()
	for {
		tasks, err := s.ClaimVerifications(ctx, 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) == 0 {
			return
		}
		for _, task := range tasks {
			if _, err := s.FinishVerification(ctx, task, outcome[task.ID]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCreateGetList(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		var ids []string
		for i := range 7 {
			sub := newSub(fmt.Sprintf("https://example.com/hook/%d", i))
			sub.ChannelTags = []string{"slack"}
			got := mustCreate(t, b.store, sub)
			if got.Status != StatusPending || got.Verified || got.ID == "" || got.Secret == "" {
				t.Fatalf("created = %+v", got)
			}
			if got.ChannelIDs == nil || got.Types == nil {
				t.Fatalf("lists must be empty, not nil: %+v", got)
			}
			ids = append(ids, got.ID)
		}
		slices.Sort(ids)
		got, err := b.store.Get(ctx, ids[3])
		if err != nil || got.ID != ids[3] || !strings.HasPrefix(got.Secret, "whsec_") || got.Token != "tok" {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if _, err := b.store.Get(ctx, "sub_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get unknown: %v", err)
		}
		var listed []string
		eachPage(t, 7, func(after string) ([]*Subscriber, string, error) {
			return b.store.List(ctx, after, 3)
		}, func(page []*Subscriber) {
			for _, s := range page {
				if s.Secret != "" || s.Token != "" {
					t.Fatalf("list shows a secret or token: %+v", s)
				}
				listed = append(listed, s.ID)
			}
		})
		if !slices.Equal(listed, ids) {
			t.Fatalf("listed %v, want %v", listed, ids)
		}
		if n, _ := b.store.PendingVerifications(ctx); n != 7 {
			t.Fatalf("pending handshakes = %d, want 7", n)
		}
	})
}

func TestVerificationResultAppliesOnlyToItsURL(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		sub := mustCreate(t, b.store, newSub("https://old.example.com/hook"))
		tasks, err := b.store.ClaimVerifications(ctx, 10, time.Minute)
		if err != nil || len(tasks) != 1 || tasks[0].URL != "https://old.example.com/hook" {
			t.Fatalf("claim = %+v, %v", tasks, err)
		}
		old := tasks[0]
		// While the handshake of the old URL runs, the URL changes.
		upd, err := b.store.Update(ctx, sub.ID, func(s *Subscriber) error { s.URL = "https://new.example.com/hook"; return nil })
		if err != nil || upd.Status != StatusPending {
			t.Fatalf("update = %+v, %v", upd, err)
		}
		applied, err := b.store.FinishVerification(ctx, old, "")
		if err != nil || applied {
			t.Fatalf("old URL's result applied=%v err=%v; it must be dropped", applied, err)
		}
		got, _ := b.store.Get(ctx, sub.ID)
		if got.Verified || got.Status != StatusPending {
			t.Fatalf("after a stale result: %+v", got)
		}
		// The new URL's handshake is queued and due now, even though the old one was leased.
		tasks, err = b.store.ClaimVerifications(ctx, 10, time.Minute)
		if err != nil || len(tasks) != 1 || tasks[0].URL != "https://new.example.com/hook" {
			t.Fatalf("claim after change = %+v, %v", tasks, err)
		}
		// A failed try of the old URL shows nothing; one of the new URL shows at once, and its
		// handshake stays queued for the retry.
		if applied, err := b.store.NoteFailedTry(ctx, old, "answered 500"); err != nil || applied {
			t.Fatalf("old URL's failed try applied=%v err=%v; it must be dropped", applied, err)
		}
		if applied, err := b.store.NoteFailedTry(ctx, tasks[0], "answered 502"); err != nil || !applied {
			t.Fatalf("note: %v %v", applied, err)
		}
		got, _ = b.store.Get(ctx, sub.ID)
		if got.Verified || got.Status != StatusPending || got.LastVerificationError != "answered 502" {
			t.Fatalf("after a failed try: %+v", got)
		}
		if n, _ := b.store.PendingVerifications(ctx); n != 1 {
			t.Fatalf("queue holds %d while the handshake is retried, want 1", n)
		}
		if applied, err := b.store.FinishVerification(ctx, tasks[0], "answered 403"); err != nil || !applied {
			t.Fatalf("finish: %v %v", applied, err)
		}
		got, _ = b.store.Get(ctx, sub.ID)
		if got.Verified || got.Status != StatusFailed || got.LastVerificationError != "answered 403" {
			t.Fatalf("after failure: %+v", got)
		}
		if n, _ := b.store.PendingVerifications(ctx); n != 0 {
			t.Fatalf("queue holds %d after the result", n)
		}
		// A description change does not re-verify; a /verify does.
		upd, _ = b.store.Update(ctx, sub.ID, func(s *Subscriber) error { s.Description = "x"; return nil })
		if upd.Status != StatusFailed {
			t.Fatalf("description change moved status to %s", upd.Status)
		}
		upd, err = b.store.RequestVerification(ctx, sub.ID)
		if err != nil || upd.Status != StatusPending || upd.LastVerificationError != "" {
			t.Fatalf("request verification = %+v, %v", upd, err)
		}
		settle(t, b.store, nil)
		got, _ = b.store.Get(ctx, sub.ID)
		if !got.Verified || got.Status != StatusVerified {
			t.Fatalf("after verification: %+v", got)
		}
	})
}

func TestClaimLeases(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		a := mustCreate(t, b.store, newSub("https://a.example.com/"))
		mustCreate(t, b.store, newSub("https://b.example.com/"))
		first, _ := b.store.ClaimVerifications(ctx, 1, time.Minute)
		second, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
		third, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
		if len(first) != 1 || len(second) != 1 || len(third) != 0 || first[0].ID == second[0].ID {
			t.Fatalf("claims: %v / %v / %v", first, second, third)
		}
		// A crashed verifier's lease ends: the work comes back.
		b.clock.Add(61 * time.Second)
		again, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
		if len(again) != 2 {
			t.Fatalf("after the lease: %v", again)
		}
		// Released work is due at once.
		if err := b.store.ReleaseVerification(ctx, again[0].ID); err != nil {
			t.Fatal(err)
		}
		back, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
		if len(back) != 1 || back[0].ID != again[0].ID {
			t.Fatalf("after release: %v", back)
		}
		// A deleted subscriber's entry is dropped on the way.
		if err := b.store.Delete(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		b.clock.Add(2 * time.Minute)
		rest, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
		if len(rest) != 1 || rest[0].ID == a.ID {
			t.Fatalf("after delete: %v", rest)
		}
	})
}

func TestDeleteRemovesEverything(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		sub := newSub("https://example.com/")
		sub.ChannelIDs = []string{"c1", "c2"}
		s := mustCreate(t, b.store, sub)
		settle(t, b.store, nil)
		ch := &channels.Channel{ChannelID: "c1"}
		if got, _, _ := b.store.Targets(ctx, ch, TypeUpdateNotification, "", 10); len(got) != 1 {
			t.Fatalf("targets before delete = %d", len(got))
		}
		if err := b.store.Delete(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.store.Delete(ctx, s.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		// Only the generation counter stays: cached counts are keyed by it, so it never restarts.
		if keys := allKeys(t, b); !slices.Equal(keys, []string{b.store.k.gen()}) {
			t.Fatalf("keys left after delete: %v, want only the generation counter", keys)
		}
	})
}

// allKeys lists the subscriber keys that exist.
func allKeys(t *testing.T, b *bundle) []string {
	t.Helper()
	var out []string
	iter := b.rdb.Scan(context.Background(), 0, b.prefix+":{"+b.prefix+":subs}*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestMatchFilters(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		byName := createFilterWorld(t, b)
		for _, c := range matchFilterCases {
			got, next, err := b.store.Targets(ctx, &c.ch, c.typ, "", 100)
			if err != nil || next != "" {
				t.Fatalf("targets %+v: next=%q err=%v", c.ch, next, err)
			}
			if g := targetNames(byName, got); !slices.Equal(g, c.want) {
				t.Errorf("targets %s %v %v %s = %v, want %v", c.ch.ChannelID, c.ch.ChannelTags, c.ch.ChannelMetadata, c.typ, g, c.want)
			}
			for _, g := range got {
				if g.Token == "" {
					t.Errorf("targets must carry the token (fan-out puts it in the notification): %+v", g)
				}
			}
		}
		// Re-enabling by an update sends the disabled one back through verification.
		upd, err := b.store.Update(ctx, byName["disabled"], func(*Subscriber) error { return nil })
		if err != nil || upd.Status != StatusPending || upd.DisabledReason != "" {
			t.Fatalf("re-enable: %+v %v", upd, err)
		}
	})
}

// matchFilterCases are the channels and event types TestMatchFilters matches, with the names of
// the subscribers of createFilterWorld each must reach: the verified ones whose filters all match.
var matchFilterCases = []struct {
	ch   channels.Channel
	typ  string
	want []string
}{
	{channels.Channel{ChannelID: "c1"}, TypeUpdateNotification, []string{"all", "ids"}},
	{channels.Channel{ChannelID: "c1", ChannelTags: []string{"web"}}, TypeUpdateNotification, []string{"all", "ids", "idsandtag", "tags"}},
	{channels.Channel{ChannelID: "c2", ChannelTags: []string{"slack", "web"}}, TypeUpdateNotification, []string{"all", "tags"}},
	{channels.Channel{ChannelID: "c2", ChannelMetadata: map[string]any{"chat_type": "support"}}, TypeUpdateNotification, []string{"all", "chattype"}},
	{channels.Channel{ChannelID: "c2", ChannelMetadata: map[string]any{"chat_type": "sales"}}, TypeRepublishRequest, []string{"all", "types"}},
	{channels.Channel{ChannelID: "c9", ChannelMetadata: map[string]any{"chat_type": "support"}}, TypeRepublishRequest, []string{"all", "chattype", "ids", "types"}},
}

// createFilterWorld creates one subscriber per filter kind, each verified, plus "failed" (its
// handshake failed), "pending" (its handshake is never claimed) and "disabled" (disabled after it
// was verified), all without filters. It returns their ids by name.
func createFilterWorld(t *testing.T, b *bundle) (byName map[string]string) {
	t.Helper()
	ctx := context.Background()
	mk := func(name string, f func(s *Subscriber)) string {
		s := newSub("https://example.com/" + name)
		s.Description = name
		f(s)
		return mustCreate(t, b.store, s).ID
	}
	byName = map[string]string{
		"all":       mk("all", func(*Subscriber) {}),
		"ids":       mk("ids", func(s *Subscriber) { s.ChannelIDs = []string{"c1", "c9"} }),
		"tags":      mk("tags", func(s *Subscriber) { s.ChannelTags = []string{"slack", "web"} }),
		"chattype":  mk("chattype", func(s *Subscriber) { s.ChatTypes = []string{"support"} }),
		"types":     mk("types", func(s *Subscriber) { s.Types = []string{TypeRepublishRequest} }),
		"idsandtag": mk("idsandtag", func(s *Subscriber) { s.ChannelIDs = []string{"c1"}; s.ChannelTags = []string{"web"} }),
		"failed":    mk("failed", func(*Subscriber) {}),
		"pending":   mk("pending", func(*Subscriber) {}),
		"disabled":  mk("disabled", func(*Subscriber) {}),
	}
	// "pending" stays unclaimed; "failed" fails its handshake; "disabled" is disabled after.
	pendingTask := byName["pending"]
	outcome := map[string]string{byName["failed"]: "answered 403"}
	for {
		tasks, _ := b.store.ClaimVerifications(ctx, 100, time.Hour)
		if len(tasks) == 0 {
			break
		}
		for _, task := range tasks {
			if task.ID != pendingTask {
				if _, err := b.store.FinishVerification(ctx, task, outcome[task.ID]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if ok, err := b.store.Disable(ctx, byName["disabled"], "endpoint answered 410 Gone"); !ok || err != nil {
		t.Fatalf("disable: %v %v", ok, err)
	}
	return byName
}

// targetNames returns the sorted names (keys of byName) of targets.
func targetNames(byName map[string]string, targets []Target) []string {
	nameOf := make(map[string]string, len(byName))
	for name, id := range byName {
		nameOf[id] = name
	}
	var out []string
	for _, g := range targets {
		out = append(out, nameOf[g.ID])
	}
	slices.Sort(out)
	return out
}

// TestMatchPagingRandomized checks Targets against a brute-force filter over many subscribers with
// random filters, at several page sizes, with the store's own indexes as the only way in.
func TestMatchPagingRandomized(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		pick := func(pool []string) []string {
			var out []string
			for _, p := range pool {
				if rng.IntN(3) == 0 {
					out = append(out, p)
				}
			}
			return out
		}
		chans := []string{"c0", "c1", "c2", "c3"}
		tags := []string{"t0", "t1", "t2"}
		cts := []string{"a", "b"}
		outcome := map[string]string{}
		for i := range 150 {
			s := newSub(fmt.Sprintf("https://example.com/%d", i))
			if rng.IntN(2) == 0 {
				s.ChannelIDs = pick(chans)
			}
			if rng.IntN(2) == 0 {
				s.ChannelTags = pick(tags)
			}
			if rng.IntN(3) == 0 {
				s.ChatTypes = pick(cts)
			}
			if rng.IntN(3) == 0 {
				s.Types = pick(EventTypes)
			}
			got := mustCreate(t, b.store, s)
			if rng.IntN(5) == 0 {
				outcome[got.ID] = "answered 500"
			}
		}
		settle(t, b.store, outcome)
		all, _, err := b.store.List(ctx, "", 1000)
		if err != nil || len(all) != 150 {
			t.Fatalf("list: %d %v", len(all), err)
		}
		var full []*Subscriber
		for _, s := range all {
			f, _ := b.store.Get(ctx, s.ID)
			full = append(full, f)
		}
		for trial := range 12 {
			ch := &channels.Channel{ChannelID: chans[trial%len(chans)], ChannelTags: pick(tags),
				ChannelMetadata: map[string]any{"chat_type": cts[trial%2]}}
			typ := EventTypes[trial%3]
			var want []string
			for _, s := range full {
				if s.Active() && s.Matches(ch, typ) {
					want = append(want, s.ID)
				}
			}
			for _, limit := range []int{1, 4, 25, 1000} {
				var got []string
				eachPage(t, 202, func(after string) ([]Target, string, error) {
					return b.store.Targets(ctx, ch, typ, after, limit)
				}, func(page []Target) {
					if len(page) > limit {
						t.Fatalf("page of %d > limit %d", len(page), limit)
					}
					for _, s := range page {
						got = append(got, s.ID)
					}
				})
				if !slices.Equal(got, want) {
					t.Fatalf("trial %d limit %d: got %d ids, want %d\n got %v\nwant %v", trial, limit, len(got), len(want), got, want)
				}
			}
		}
	})
}

// TestConcurrentUpdatesKeepIndexes races updates of the filters and status of a few subscribers
// and checks that the indexes end up exactly what the final documents say.
func TestConcurrentUpdatesKeepIndexes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *bundle) {
		var ids []string
		for i := range 3 {
			ids = append(ids, mustCreate(t, b.store, newSub(fmt.Sprintf("https://example.com/%d", i))).ID)
		}
		settle(t, b.store, nil)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() { racingUpdates(t, b, ids, uint64(w)) })
		}
		wg.Wait()
		b.clock.Add(time.Hour)
		settle(t, b.store, nil)
		got, want := indexesInRedis(t, b), indexesOfDocuments(t, b, ids)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("indexes drifted from the documents:\n got %v\nwant %v", got, want)
		}
	})
}

// racingUpdates is one of the writers of TestConcurrentUpdatesKeepIndexes: 40 random changes of
// the filters or status of the subscribers ids, with handshakes finished in between as a verifier
// would. A conflict is expected; any other error fails t.
func racingUpdates(t *testing.T, b *bundle, ids []string, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	for range 40 {
		id := ids[rng.IntN(len(ids))]
		var err error
		switch rng.IntN(4) {
		case 0:
			_, err = b.store.Update(ctx, id, func(s *Subscriber) error {
				s.ChannelIDs = []string{fmt.Sprintf("c%d", rng.IntN(3))}
				s.ChannelTags = nil
				return nil
			})
		case 1:
			_, err = b.store.Update(ctx, id, func(s *Subscriber) error {
				s.ChannelIDs = nil
				s.ChannelTags = []string{fmt.Sprintf("t%d", rng.IntN(3))}
				return nil
			})
		case 2:
			_, err = b.store.Update(ctx, id, func(s *Subscriber) error { s.ChannelIDs, s.ChannelTags = nil, nil; return nil })
		case 3:
			_, err = b.store.Disable(ctx, id, "test")
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			t.Error(err)
			return
		}
		if rng.IntN(3) == 0 {
			// A verifier finishing handshakes meanwhile.
			tasks, _ := b.store.ClaimVerifications(ctx, 10, time.Minute)
			for _, task := range tasks {
				_, _ = b.store.FinishVerification(ctx, task, "")
			}
		}
	}
}

// indexesOfDocuments returns what the indexes must hold for the subscribers ids, from their
// documents: the sorted members of each index key.
func indexesOfDocuments(t *testing.T, b *bundle, ids []string) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	recs, err := b.store.getMany(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for _, k := range b.store.indexKeys(r) {
			want[k] = append(want[k], r.ID)
		}
	}
	for k := range want {
		slices.Sort(want[k])
	}
	return want
}

// indexesInRedis returns the members of every index key in Redis, in index order.
func indexesInRedis(t *testing.T, b *bundle) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, k := range allKeys(t, b) {
		if !strings.Contains(k, ":idx:") {
			continue
		}
		members, err := b.rdb.ZRange(context.Background(), k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		got[k] = members
	}
	return got
}
