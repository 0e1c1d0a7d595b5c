package sessions

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldhq/herald/notifier"
)

type countingEngine struct {
	Engine
	puts, deletes int
}

func (c *countingEngine) PutEndpoint(context.Context, notifier.Endpoint) error { c.puts++; return nil }
func (c *countingEngine) DeleteEndpoint(context.Context, string) error         { c.deletes++; return nil }

// The endpoints this process remembers registering stay bounded however many channels it relays
// to: entries older than endpointRecheck (useless anyway) make room; past the bound it registers
// every time.
func TestRegisteredEndpointsBounded(t *testing.T) {
	eng := &countingEngine{}
	s := &Service{engine: eng, endpoints: map[string]registered{}, maxRegistered: 3}
	ctx := context.Background()
	for i := range 10 {
		if err := s.ensureEndpoint(ctx, notifier.Endpoint{ID: fmt.Sprintf("chan:c%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.endpoints) != 3 || eng.puts != 10 {
		t.Fatalf("%d remembered, %d registered; want 3 and 10", len(s.endpoints), eng.puts)
	}
	// A remembered one is not registered again...
	_ = s.ensureEndpoint(ctx, notifier.Endpoint{ID: "chan:c0"})
	if eng.puts != 10 {
		t.Errorf("a remembered endpoint was registered again")
	}
	// ...and once they are old, new ones take their place.
	for id, r := range s.endpoints {
		r.at = r.at.Add(-endpointRecheck)
		s.endpoints[id] = r
	}
	_ = s.ensureEndpoint(ctx, notifier.Endpoint{ID: "chan:new"})
	if _, ok := s.endpoints["chan:new"]; !ok || len(s.endpoints) != 1 {
		t.Errorf("after the old ones lapsed: %v", s.endpoints)
	}
}

func TestChannelDeletedDropsItsEndpoint(t *testing.T) {
	eng := &countingEngine{}
	s := &Service{engine: eng, endpoints: map[string]registered{}, maxRegistered: 3}
	ctx := context.Background()
	_ = s.ensureEndpoint(ctx, notifier.Endpoint{ID: ChannelEndpointID("c1")})
	if err := s.ChannelDeleted(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if eng.deletes != 1 || len(s.endpoints) != 0 {
		t.Errorf("deletes %d, remembered %v", eng.deletes, s.endpoints)
	}
}
