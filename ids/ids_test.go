package ids_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/ids"
)

func TestValid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"sub_01HX-y.z:9", true},
		{strings.Repeat("x", ids.MaxLen), true},
		{"", false},
		{strings.Repeat("x", ids.MaxLen+1), false},
		{"a b", false},
		{"a/b", false},
		{"a%2F", false},
		{"é", false},
		{"a\n", false},
	} {
		if got := ids.Valid(c.id); got != c.ok {
			t.Errorf("Valid(%q) = %v, want %v", c.id, got, c.ok)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := ids.New("evt")
		rest, ok := strings.CutPrefix(id, "evt_")
		if !ok || len(rest) != 26 || !ids.Valid(id) || strings.ContainsAny(rest, "ilouABC=") {
			t.Fatalf("New = %q", id)
		}
		if seen[id] {
			t.Fatalf("New repeated %q", id)
		}
		seen[id] = true
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ids.New("evt")
	}
}

func ExampleNew() {
	id := ids.New("sub") // e.g. sub_1x9tq4m0c8k2r7w3z5n6b8d0fh
	fmt.Println(strings.HasPrefix(id, "sub_"), len(id), ids.Valid(id))
	// Output: true 30 true
}

// Rule says what Valid accepts.
func TestRuleNamesMaxLen(t *testing.T) {
	if !strings.Contains(ids.Rule, strconv.Itoa(ids.MaxLen)) {
		t.Errorf("ids.Rule %q does not say %d", ids.Rule, ids.MaxLen)
	}
}
