package channels

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/redisx/redistest"
)

// Benchmarks on the shared real Redis (not run by `go test`; run `go test -bench . ./channels/`).
// scripts/bench-channels.sh measures the full 100,000-channel case with latency percentiles.

func benchStore(b *testing.B, n int) *Store {
	rdb, prefix := redistest.Shared(b)
	s := NewStore(rdb, prefix, WithPolicy(egress.Policy{}))
	ctx := context.Background()
	for i := range n {
		c := &Channel{
			ChannelID:   fmt.Sprintf("bench-%06d", i),
			ChannelName: fmt.Sprint("Channel ", i), ChannelDescription: "Sends messages to a chat platform",
			ChannelTags:     []string{fmt.Sprintf("g%02d", i%100), fmt.Sprintf("p%d", i%10)},
			ChannelMetadata: map[string]any{"endpoint_url": "https://chat.example.com/incoming", "chat_type": "slack"},
		}
		if _, err := s.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkQueryTag(b *testing.B) {
	s := benchStore(b, 10_000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		f, _ := ParseFilter(fmt.Appendf(nil, `{"channel_tags": {"$in": ["g%02d"]}}`, i%100))
		got, _, err := s.Query(ctx, f, 100, "")
		if err != nil || len(got) != 100 {
			b.Fatalf("%d channels, %v", len(got), err)
		}
		i++
	}
}

func BenchmarkQueryTagJSON(b *testing.B) {
	s := benchStore(b, 10_000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		f, _ := ParseFilter(fmt.Appendf(nil, `{"channel_tags": {"$in": ["g%02d"]}}`, i%100))
		got, _, err := s.QueryJSON(ctx, f, 100, "")
		if err != nil || len(got) != 100 {
			b.Fatalf("%d channels, %v", len(got), err)
		}
		i++
	}
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b, 1000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, fmt.Sprintf("bench-%06d", i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCreate(b *testing.B) {
	s := benchStore(b, 0)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		c := &Channel{ChannelID: fmt.Sprint("c", i), ChannelTags: []string{"a", "b"},
			ChannelMetadata: map[string]any{"endpoint_url": "https://chat.example.com/incoming"}}
		if _, err := s.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDecodeMatch(b *testing.B) {
	raw, _ := encodeDoc(3, &Channel{ChannelID: "bench-000001", ChannelName: "Channel 1", ChannelDescription: "Sends messages",
		ChannelTags:     []string{"g01", "p1"},
		ChannelMetadata: map[string]any{"endpoint_url": "https://chat.example.com/incoming", "chat_type": "slack"}})
	f, _ := ParseFilter([]byte(`{"channel_tags": {"$in": ["g01"]}}`))
	for b.Loop() {
		e, err := decodeDoc(raw)
		if err != nil || !f.Match(e.C) {
			b.Fatal(err)
		}
	}
}
