package app_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
)

// A daemon on a wildcard address with no --public-url does not hand out http://:port/... as a
// response_url: it uses the machine's hostname, and warns that it guessed.
func TestWildcardAddrResponseURL(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "127.0.0.1"
	}
	rc := newReceiver(t)
	for _, addr := range []string{":%s", "0.0.0.0:%s", "[::]:%s"} {
		t.Run(strings.Replace(addr, "%s", "port", 1), func(t *testing.T) {
			t.Parallel()
			ln := listen(t) // served on loopback: the test only needs the address herald is told
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			cfg := testConfig(t)
			cfg.Addr = strings.Replace(addr, "%s", port, 1)
			cfg.APIKeys = []string{testKey}
			rec := newLogRecorder()
			base, _, _ := serveOn(t, cfg, ln, slog.New(rec))

			do(t, "POST", base+"/channel", testKey, `{"channel_id": "c1", "channel_metadata": {"endpoint_url": "`+rc.URL+`/incoming"}}`)
			if resp, m := do(t, "POST", base+"/channel/message", testKey, `{"channel_id": "c1", "session_id": "s-`+port+`", "message": "hi"}`); resp.StatusCode != 202 {
				t.Fatalf("message: %d %v", resp.StatusCode, m)
			}
			var got string
			testutil.Eventually(t, 10*time.Second, "the relayed message", func() bool {
				for _, n := range rc.received() {
					var b struct {
						SessionID   string `json:"session_id"`
						ResponseURL string `json:"response_url"`
					}
					if json.Unmarshal(n.body, &b) == nil && b.SessionID == "s-"+port {
						got = b.ResponseURL
						return true
					}
				}
				return false
			})
			if want := "http://" + net.JoinHostPort(host, port) + "/webhook-response?"; !strings.HasPrefix(got, want) {
				t.Errorf("response_url %q, want it to start with %q", got, want)
			}
			guessed := func(m string) bool { return strings.HasPrefix(m, "no --public-url") }
			if !slices.ContainsFunc(rec.messages(slog.LevelWarn), guessed) {
				t.Errorf("no warning that the public URL was guessed; logged %q", rec.messages(slog.LevelWarn))
			}
		})
	}
}
