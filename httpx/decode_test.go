package httpx_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/httpx"
)

// TestDecodeList: DecodeList hands over the elements in order, stops at the first error of its
// callback without reading the rest (which may even be malformed), and refuses what is not a list
// of the element type.
func TestDecodeList(t *testing.T) {
	t.Parallel()
	var got []string
	if err := httpx.DecodeList([]byte(` ["a", "b" ,"c"] `), func(s string) error { got = append(got, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("got %v", got)
	}
	stop := errors.New("stop")
	n := 0
	err := httpx.DecodeList([]byte(`["a", "b", "c", not json at all`), func(string) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("stopped with %v after %d elements, want the callback's error after 2", err, n)
	}
	for _, raw := range []string{`"a"`, `{"a": 1}`, `["a", 1]`, `["a"`, ``, `null`} {
		if err := httpx.DecodeList([]byte(raw), func(string) error { return nil }); !errors.Is(err, httpx.ErrNotList) {
			t.Errorf("DecodeList(%s) = %v, want ErrNotList", raw, err)
		}
	}
}
