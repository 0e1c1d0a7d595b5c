package sessions_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/daemontest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/sink"
)

// TestThroughDaemon runs the whole daemon in-process with an API key: the relay's routes sit
// beside the channel API's /channel/{id} routes, need the key, except /webhook-response, which
// the channel server calls without one.
func TestThroughDaemon(t *testing.T) {
	t.Parallel()
	sessionsSrv := newRecorder(t, nil)
	snk := sink.New(sink.Config{})
	chSrv := httptest.NewServer(snk)
	t.Cleanup(func() {
		chSrv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = snk.Close(ctx)
	})

	const key = "test-api-key-0123456789"
	cfg := daemontest.Config(t)
	cfg.APIKeys = []string{key}
	cfg.SessionsURL = sessionsSrv.srv.URL + "/sessions"
	cfg.RetrySchedule = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	cfg.ShutdownTimeout = 10 * time.Second
	base, _, _ := daemontest.Serve(t, cfg, nil)
	auth := []string{"Authorization", "Bearer " + key}

	ch := `{"channel_id":"slack-sim","channel_name":"Slack Simulated Channel","channel_tags":["slack"],"channel_metadata":{"endpoint_url":"` + chSrv.URL + `/incoming"}}`
	if r := do(t, http.MethodPost, base+"/channel", ch, auth...); r.status != 201 {
		t.Fatalf("POST /channel = %d %s", r.status, r.raw)
	}
	msg := `{"channel_id":"slack-sim","session_id":"d1","message":"Hello, Slack!"}`
	if r := do(t, http.MethodPost, base+"/channel/message", msg); r.status != 401 {
		t.Fatalf("POST /channel/message without the key = %d, want 401", r.status)
	}
	r := do(t, http.MethodPost, base+"/channel/message", msg, auth...)
	if r.status != 202 {
		t.Fatalf("POST /channel/message = %d %s", r.status, r.raw)
	}
	// The channel routes still answer beside the relay's.
	if r := do(t, http.MethodGet, base+"/channel/slack-sim", "", auth...); r.status != 200 || r.body["channel_id"] != "slack-sim" {
		t.Fatalf("GET /channel/slack-sim = %d %s", r.status, r.raw)
	}

	testutil.Eventually(t, 20*time.Second, "the forwarded response", func() bool { return len(sessionsSrv.got()) == 1 })
	var fwd map[string]any
	_ = json.Unmarshal(sessionsSrv.got()[0].body, &fwd)
	if fwd["session_id"] != "d1" || fwd["channel_id"] != "slack-sim" || !strings.Contains(mustJSON(fwd["response_data"]), "Hello, Slack!") {
		t.Fatalf("forwarded %v", fwd)
	}
	if r := do(t, http.MethodGet, base+"/sessions/d1", ""); r.status != 401 {
		t.Fatalf("GET /sessions/d1 without the key = %d, want 401", r.status)
	}
	if r := do(t, http.MethodGet, base+"/sessions/d1", "", auth...); r.status != 200 || len(r.body["responses"].([]any)) != 1 {
		t.Fatalf("GET /sessions/d1 = %d %s", r.status, r.raw)
	}
	// The relay's counters are on /metrics.
	if r := do(t, http.MethodGet, base+"/metrics", "", auth...); !strings.Contains(r.raw, `herald_relay_callbacks_total{result="accepted"} 1`) {
		t.Fatalf("/metrics lacks the relay's counters")
	}
}
