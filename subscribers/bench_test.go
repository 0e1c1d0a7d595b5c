package subscribers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/redisx/redistest"
)

// BenchmarkMatch measures one fan-out lookup among 10,000 active subscribers: 9,000 filter on a
// few of 1,000 channel ids, 900 on a few of 100 tags, 100 want every channel. Run it with
// go test -run '^$' -bench Match ./subscribers/ (it is not part of the default test run).
func BenchmarkMatch(b *testing.B) {
	rdb, prefix := redistest.Shared(b)
	s := NewStore(rdb, prefix)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		sub := &Subscriber{URL: fmt.Sprintf("https://example.com/%d", i), Token: "t", Secret: NewSecret()}
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
	for {
		tasks, err := s.ClaimVerifications(ctx, 1000, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(tasks) == 0 {
			break
		}
		for _, t := range tasks {
			if _, err := s.FinishVerification(ctx, t, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	total := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ch := &channels.Channel{ChannelID: fmt.Sprintf("c%d", i%1000), ChannelTags: []string{fmt.Sprintf("t%d", i%100), "t-none"}}
		got, _, err := s.Match(ctx, ch, TypeUpdateNotification, "", 1000)
		if err != nil {
			b.Fatal(err)
		}
		total += len(got)
	}
	b.ReportMetric(float64(total)/float64(b.N), "matches/op")
}
