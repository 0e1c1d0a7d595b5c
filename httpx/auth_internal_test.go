package httpx

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// The table of counts never holds more than max clients: once it is full, the clients it has no
// room for share one count, and are throttled together; it empties when the window ends.
func TestAuthFailuresBounded(t *testing.T) {
	t.Parallel()
	f := newAuthFailures(2, time.Minute, 100)
	now := time.Unix(1_700_000_000, 0)
	for i := range 100 {
		if f.fail("10.0.0."+strconv.Itoa(i), now) != 0 {
			t.Fatalf("client %d throttled at its first wrong key", i)
		}
	}
	if len(f.counts) != 100 {
		t.Fatalf("%d clients counted, want 100", len(f.counts))
	}
	var throttled int
	for i := range 1000 {
		if f.fail("192.0.2."+strconv.Itoa(i), now.Add(time.Second)) > 0 {
			throttled++
		}
	}
	if len(f.counts) > 101 || throttled != 998 {
		t.Fatalf("%d entries after 1000 more clients (want 101 at most); %d throttled, want 998", len(f.counts), throttled)
	}
	if wait := f.fail("10.0.0.1", now.Add(time.Second)); wait != 0 {
		t.Fatalf("a counted client with one failure left was throttled (%s)", wait)
	}
	if wait := f.fail("10.0.0.1", now.Add(2*time.Second)); wait != 58*time.Second {
		t.Fatalf("past its limit: wait %s, want the 58 s left of the window", wait)
	}
	if f.fail("192.0.2.1", now.Add(time.Minute)) != 0 || len(f.counts) != 1 {
		t.Fatalf("a new window keeps %d clients, want only the one just counted", len(f.counts))
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"192.0.2.7:1234":                 "192.0.2.7",
		"[::ffff:192.0.2.7]:1234":        "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:0:0:1]:8000": "2001:db8:1:2::/64",
		"@":                              "@",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}
