package app_test

import (
	"net/http"
	"testing"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/httpx"
)

// Wrong API keys from one client are slowed: past httpx.DefaultAuthFailures in a window they get
// 429 with Retry-After, while the valid key from the same address keeps working; every 401 carries
// the Bearer challenge, and the scheme is matched in any case.
func TestWrongKeysThrottled(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey} })
	send := func(auth string) *http.Response {
		req, _ := http.NewRequest("GET", base+"/subscribers", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range httpx.DefaultAuthFailures {
		resp := send("Bearer wrong-key-0123456789")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("wrong key %d: %d, WWW-Authenticate %q; want 401 with the challenge", i, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp := send("Bearer wrong-key-0123456789")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("wrong key past the limit: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := send("Bearer " + testKey); resp.StatusCode != 429 {
		t.Fatalf("the valid key from the throttled address: %d, want 429 (a guesser learns nothing)", resp.StatusCode)
	}
}
