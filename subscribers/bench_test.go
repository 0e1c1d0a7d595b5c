package subscribers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/webhooksig"
)

// BenchmarkMatch measures one fan-out lookup among 10,000 active subscribers: 9,000 filter on a
// few of 1,000 channel ids, 900 on a few of 100 tags, 100 want every channel; each lookup is one
// page of up to 1,000 targets (Targets). Run it with
// go test -run '^$' -bench Match ./subscribers/ (it is not part of the default test run).
func BenchmarkMatch(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	total := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ch := &channels.Channel{ChannelID: fmt.Sprintf("c%d", i%1000), ChannelTags: []string{fmt.Sprintf("t%d", i%100), "t-none"}}
		got, _, err := s.Targets(ctx, ch, TypeUpdateNotification, "", 1000)
		if err != nil {
			b.Fatal(err)
		}
		total += len(got)
	}
	b.ReportMetric(float64(total)/float64(b.N), "matches/op")
}

// BenchmarkFanOut10k measures what one notification to 10,000 subscribers that all match costs
// the subscriber store: the count at acceptance (fresh, then cached) and the expansion's pages of
// ids and tokens (Targets, 500 a page).
func BenchmarkFanOut10k(b *testing.B) {
	rdb, prefix := redistest.Shared(b)
	s := NewStore(rdb, prefix)
	ctx := context.Background()
	for i := range 10_000 {
		sub := &Subscriber{ID: fmt.Sprintf("s%06d", i), URL: fmt.Sprintf("https://example.com/%d", i), Token: fmt.Sprintf("tok-%d", i), Secret: webhooksig.NewSecret()}
		if _, err := s.Create(ctx, sub); err != nil {
			b.Fatal(err)
		}
	}
	verifyAll(b, s)
	ch := &channels.Channel{ChannelID: "c", ChannelTags: []string{"t"}}
	b.Run("CountFresh", func(b *testing.B) {
		for b.Loop() {
			if err := rdb.Del(ctx, s.k.counts()).Err(); err != nil {
				b.Fatal(err)
			}
			if n, err := s.CountMatch(ctx, ch, TypeUpdateNotification); err != nil || n != 10_000 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("CountCached", func(b *testing.B) {
		for b.Loop() {
			if n, err := s.CountMatch(ctx, ch, TypeUpdateNotification); err != nil || n != 10_000 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("Targets", func(b *testing.B) {
		for b.Loop() {
			n := 0
			eachPage(b, 0, func(after string) ([]Target, string, error) {
				return s.Targets(ctx, ch, TypeUpdateNotification, after, 500)
			}, func(page []Target) { n += len(page) })
			if n != 10_000 {
				b.Fatal(n)
			}
		}
	})
}

func verifyAll(b *testing.B, s *Store) {
	ctx := context.Background()
	for {
		tasks, err := s.ClaimVerifications(ctx, 1000, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(tasks) == 0 {
			return
		}
		for _, t := range tasks {
			if _, err := s.FinishVerification(ctx, t, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchStore holds 10,000 active subscribers: 9,000 filter on a few of 1,000 channel ids, 900 on
// a few of 100 tags, 100 want every channel.
func benchStore(b *testing.B) (*Store, string) {
	rdb, prefix := redistest.Shared(b)
	s := NewStore(rdb, prefix)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		sub := &Subscriber{URL: fmt.Sprintf("https://example.com/%d", i), Token: "t", Secret: webhooksig.NewSecret()}
		switch {
		case i < 9000:
			sub.ChannelIDs = []string{fmt.Sprintf("c%d", rng.IntN(1000)), fmt.Sprintf("c%d", rng.IntN(1000))}
		case i < 9900:
			sub.ChannelTags = []string{fmt.Sprintf("t%d", rng.IntN(100))}
		}
		if _, err := s.Create(ctx, sub); err != nil {
			b.Fatal(err)
		}
	}
	verifyAll(b, s)
	return s, prefix
}
