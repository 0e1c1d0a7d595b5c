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

// TestDeriver: a derived id is valid for every valid id, even the longest, the same every time,
// and two ids never give one derived id, also when one is chosen to look like the other's hashed
// form.
func TestDeriver(t *testing.T) {
	t.Parallel()
	d := ids.NewDeriver("chan:", "chanh:")
	longest := strings.Repeat("x", ids.MaxLen)
	hashed := d.ID(longest)
	cases := []struct{ id, want string }{
		{"c1", "chan:c1"},
		{strings.Repeat("y", ids.MaxLen-5), "chan:" + strings.Repeat("y", ids.MaxLen-5)},
		{longest, hashed},
	}
	for _, c := range cases {
		if got := d.ID(c.id); got != c.want || !ids.Valid(got) {
			t.Errorf("ID(%.20s... %d chars) = %q, want %q (valid)", c.id, len(c.id), got, c.want)
		}
	}
	if !strings.HasPrefix(hashed, "chanh:") || len(hashed) != len("chanh:")+64 {
		t.Fatalf("hashed form %q", hashed)
	}
	seen := map[string]string{}
	for _, id := range []string{longest, longest[1:], longest[:ids.MaxLen-4], longest[:ids.MaxLen-5],
		strings.TrimPrefix(hashed, "chan:"), "h:" + strings.TrimPrefix(hashed, "chanh:")} {
		got := d.ID(id)
		if other, dup := seen[got]; dup {
			t.Fatalf("%q and %q both derive %q", other, id, got)
		}
		seen[got] = id
	}
}

// TestNewDeriverRefusesCollidingPrefixes: prefixes where one starts with the other could derive
// one id from two.
func TestNewDeriverRefusesCollidingPrefixes(t *testing.T) {
	t.Parallel()
	for _, p := range [][2]string{{"chan:", "chan:h"}, {"chan:h", "chan:"}, {"a b", "c"}, {"p", strings.Repeat("h", ids.MaxLen-63)}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewDeriver(%q, %q) did not panic", p[0], p[1])
				}
			}()
			ids.NewDeriver(p[0], p[1])
		}()
	}
}
