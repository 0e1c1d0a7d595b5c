package app_test

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/redisx/redistest"
)

// serveOnRedis runs a daemon on the Redis at addr, logging to a recorder.
func serveOnRedis(t *testing.T, addr string) (string, logRecorder) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Redis.URL = "redis://" + addr
	cfg.APIKeys = []string{testKey}
	rec := newLogRecorder()
	base, _, _ := serveLog(t, cfg, slog.New(rec))
	return base, rec
}

// readyzWarnings returns /readyz's warnings, failing t unless it answers 200.
func readyzWarnings(t *testing.T, base string) []string {
	t.Helper()
	resp, m := do(t, "GET", base+"/readyz", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("readyz: %d %v, want 200 (unsafe settings are a warning, not unreadiness)", resp.StatusCode, m)
	}
	var out []string
	ws, _ := m["warnings"].([]any)
	for _, w := range ws {
		out = append(out, w.(string))
	}
	return out
}

// metrics returns the daemon's /metrics text.
func metrics(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// warned returns the warnings logged that contain s.
func warned(rec logRecorder, s string) []string {
	return slices.DeleteFunc(rec.messages(slog.LevelWarn), func(m string) bool { return !strings.Contains(m, s) })
}

// Started against a Redis that evicts keys and persists nothing, herald warns at start-up, and
// shows both on /readyz (still 200) and on /metrics.
func TestUnsafeRedisSettings(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--maxmemory-policy", "allkeys-lru") // redistest: no AOF, no save points
	base, rec := serveOnRedis(t, srv.Addr)
	ws := readyzWarnings(t, base) // answered once Serve serves, after the start-up check
	if len(ws) != 2 || !strings.Contains(ws[0], "allkeys-lru") || !strings.Contains(ws[1], "appendonly") {
		t.Errorf("readyz warnings %q, want eviction and persistence", ws)
	}
	if len(warned(rec, "UNSAFE REDIS SETTING: maxmemory-policy is allkeys-lru")) != 1 ||
		len(warned(rec, "UNSAFE REDIS SETTING: Redis has no persistence")) != 1 {
		t.Errorf("start-up warnings %q, want one for eviction and one for persistence", rec.messages(slog.LevelWarn))
	}
	m := metrics(t, base)
	for _, want := range []string{`herald_redis_config_unsafe{setting="maxmemory-policy"} 1`,
		`herald_redis_config_unsafe{setting="appendonly"} 1`, `herald_redis_config_checked 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A Redis set up as the README says (noeviction, AOF) passes quietly.
func TestSafeRedisSettings(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--maxmemory-policy", "noeviction")
	base, rec := serveOnRedis(t, srv.Addr)
	if ws := readyzWarnings(t, base); len(ws) > 0 {
		t.Errorf("readyz warnings %q for a safe Redis", ws)
	}
	if w := warned(rec, "REDIS"); len(w) > 0 {
		t.Errorf("warned %q about a safe Redis", w)
	}
	m := metrics(t, base)
	for _, want := range []string{`herald_redis_config_unsafe{setting="maxmemory-policy"} 0`,
		`herald_redis_config_unsafe{setting="appendonly"} 0`, `herald_redis_config_checked 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A Redis that refuses CONFIG (as managed services do) is said once: herald cannot check.
func TestRedisRefusesConfig(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--rename-command", "CONFIG", "CONFIG-"+strings.ToUpper(t.Name()))
	base, rec := serveOnRedis(t, srv.Addr)
	if ws := readyzWarnings(t, base); len(ws) != 1 || !strings.Contains(ws[0], "CONFIG GET is refused") {
		t.Errorf("readyz warnings %q, want that CONFIG is refused", ws)
	}
	if w := warned(rec, "cannot check the Redis settings"); len(w) != 1 {
		t.Errorf("warned %q, want once that herald cannot check", rec.messages(slog.LevelWarn))
	}
	if m := metrics(t, base); !strings.Contains(m, "herald_redis_config_checked 0") || strings.Contains(m, "herald_redis_config_unsafe{") {
		t.Errorf("/metrics with CONFIG refused: want checked 0 and no unsafe series")
	}
}
