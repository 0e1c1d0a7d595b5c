package app

import (
	"errors"
	"testing"
)

func TestDefaultPublicURL(t *testing.T) {
	t.Parallel()
	named := func() (string, error) { return "herald-7f3c", nil }
	none := func() (string, error) { return "", errors.New("no hostname") }
	for _, c := range []struct {
		addr     string
		hostname func() (string, error)
		want     string
		derived  bool
	}{
		{"127.0.0.1:8000", named, "http://127.0.0.1:8000", false},
		{"[::1]:8000", named, "http://[::1]:8000", false},
		{"localhost:8000", named, "http://localhost:8000", false},
		{"10.0.0.5:8000", named, "http://10.0.0.5:8000", false},
		{":8100", named, "http://herald-7f3c:8100", true},
		{"0.0.0.0:8100", named, "http://herald-7f3c:8100", true},
		{"[::]:8100", named, "http://herald-7f3c:8100", true},
		{":8100", none, "http://127.0.0.1:8100", true},
	} {
		got, derived := defaultPublicURL(c.addr, c.hostname)
		if got != c.want || derived != c.derived {
			t.Errorf("defaultPublicURL(%q) = %q, %v; want %q, %v", c.addr, got, derived, c.want, c.derived)
		}
	}
}
