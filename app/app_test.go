package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/daemontest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx/redistest"
)

const testKey = "test-api-key-0123456789"

// testConfig is a daemon config on the shared test Redis with a key prefix of this test's own.
func testConfig(t *testing.T) app.Config { return daemontest.Config(t) }

// start runs a whole herald in-process on a free port against the shared test Redis, with its own
// key prefix, and stops it when the test ends.
func start(t *testing.T, mutate func(*app.Config)) (base string, a *app.App) {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	base, a, _ = serve(t, cfg)
	return base, a
}

// serve runs a daemon with cfg on a free port (daemontest.Serve). stop shuts it down gracefully
// and waits for Serve to return; it is safe to call twice and runs when the test ends.
func serve(t *testing.T, cfg app.Config) (base string, a *app.App, stop func()) {
	t.Helper()
	return daemontest.Serve(t, cfg, nil)
}

// serveLog is serve with the daemon logging to log.
func serveLog(t *testing.T, cfg app.Config, log *slog.Logger) (base string, a *app.App, stop func()) {
	t.Helper()
	return daemontest.Serve(t, cfg, log)
}

// listen returns a listener on a free loopback port.
func listen(t *testing.T) net.Listener { return daemontest.Listen(t) }

// TestMain checks every request the tests make to a daemon they started (daemontest), and every
// answer, against the OpenAPI document (internal/apitest).
func TestMain(m *testing.M) { os.Exit(apitest.Run(m)) }

// serveOn runs a daemon with cfg on ln, whatever cfg.Addr says (daemontest.ServeOn).
func serveOn(t *testing.T, cfg app.Config, ln net.Listener, log *slog.Logger) (base string, a *app.App, stop func()) {
	t.Helper()
	return daemontest.ServeOn(t, cfg, ln, log)
}

func do(t *testing.T, method, url, key, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, url, b)
		}
	}
	return resp, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	base, _ := start(t, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, _ := do(t, "GET", base+p, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestReadyzFollowsRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	base, _ := start(t, func(c *app.Config) { c.Redis.URL = "redis://" + srv.Addr })
	if resp, _ := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz before: %d", resp.StatusCode)
	}
	srv.Kill()
	resp, m := do(t, "GET", base+"/readyz", "", "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz with Redis down: %d %v", resp.StatusCode, m)
	}
	if resp, _ := do(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz with Redis down: %d", resp.StatusCode)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "readyz to recover after Redis came back", func() bool {
		resp, _ := do(t, "GET", base+"/readyz", "", "")
		return resp.StatusCode == 200
	})
}

func TestAuthOnEveryAPIRoute(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey} })
	resp, m := do(t, "GET", base+"/metrics", "", "")
	if resp.StatusCode != 401 || errCode(m) != "unauthorized" {
		t.Fatalf("metrics without key: %d %v", resp.StatusCode, m)
	}
	resp, _ = do(t, "GET", base+"/metrics", testKey, "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics with key: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := do(t, "GET", base+p, "", ""); resp.StatusCode != 200 {
			t.Fatalf("%s must stay open: %d", p, resp.StatusCode)
		}
	}
	resp, m = do(t, "GET", base+"/no/such/route", testKey, "")
	if resp.StatusCode != 404 || errCode(m) != "not_found" {
		t.Fatalf("unknown route: %d %v", resp.StatusCode, m)
	}
	resp, m = do(t, "POST", base+"/healthz", "", "{}")
	if resp.StatusCode != 405 || errCode(m) != "method_not_allowed" {
		t.Fatalf("wrong method: %d %v", resp.StatusCode, m)
	}
}

func TestAPIRateLimitHeaders(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIRateLimit = 2 })
	// Requests back to back outrun 2 a second however slow the machine is, long before the 20th:
	// one of them is refused, and every answer names the limit. (/metrics is not limited: it must
	// answer while Redis, where the limiter counts, is down.)
	var last *http.Response
	for i := 0; i < 20; i++ {
		last, _ = do(t, "GET", base+"/subscribers", "", "")
		if last.Header.Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("request %d: X-RateLimit-Limit = %q", i, last.Header.Get("X-RateLimit-Limit"))
		}
		if last.StatusCode != 200 {
			break
		}
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("back-to-back requests over the limit: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
	}
}

func TestRefusesOpenNonLoopbackListen(t *testing.T) {
	t.Parallel()
	cfg := app.Default()
	cfg.Addr = "0.0.0.0:0"
	_, err := app.New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "--allow-no-auth") {
		t.Fatalf("want refusal naming --allow-no-auth, got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mutate func(*app.Config)
		flag   string
	}{
		{func(c *app.Config) { c.RetrySchedule = []time.Duration{-time.Second} }, "--retry-schedule"},
		{func(c *app.Config) { c.RateLimitPerMinute = 0 }, "--rate-limit-per-minute"},
		{func(c *app.Config) { c.MaxInFlight = -1 }, "--max-in-flight"},
		{func(c *app.Config) { c.MaxConnsPerHost = 0 }, "--max-conns-per-host"},
		{func(c *app.Config) { c.Redis.URL = "http://x" }, "--redis-url"},
		{func(c *app.Config) { c.PublicURL = "nope" }, "--public-url"},
		{func(c *app.Config) { c.APIKeys = []string{"short"} }, "--api-key"},
		{func(c *app.Config) { c.SigningSecret = "abc" }, "--signing-secret"},
		{func(c *app.Config) { c.SigningSecret = "whsec_abc" }, "--signing-secret"},
		{func(c *app.Config) { c.LogFormat = "xml" }, "--log-format"},
		{func(c *app.Config) { c.RequestTimeout = 0 }, "--request-timeout"},
		{func(c *app.Config) { c.Workers = 0 }, "--workers"},
		{func(c *app.Config) { c.Workers = 100_001 }, "--workers"},
		{func(c *app.Config) { c.MaxBacklog = 0 }, "--max-backlog"},
		{func(c *app.Config) { c.MaxDeliveryAge = 0 }, "--max-delivery-age"},
		{func(c *app.Config) { c.DeliveryRetention = 500 * time.Millisecond }, "--delivery-retention"},
		{func(c *app.Config) { c.RetrySchedule = make([]time.Duration, 51) }, "--retry-schedule"},
		{func(c *app.Config) { c.RedisPrefix = "a:b" }, "--redis-prefix"},
		{func(c *app.Config) { c.PprofAddr = "6060" }, "--pprof-addr"},
	} {
		cfg := app.Default()
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("want an error naming %s, got %v", c.flag, err)
		}
	}
	cfg := app.Default()
	cfg.Workers = 5000 // past the old limit of 4096: the engine's (100000) is the one limit
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.PublicURL != "http://127.0.0.1:8000" {
		t.Fatalf("PublicURL default = %q", cfg.PublicURL)
	}
}

// Default takes the engine's defaults from the engine, and every setting is named once per error.
func TestDefaultsFromComponents(t *testing.T) {
	t.Parallel()
	cfg, n := app.Default(), notifier.DefaultConfig()
	if cfg.RedisPrefix != n.Prefix || cfg.RequestTimeout != n.RequestTimeout || !slices.Equal(cfg.RetrySchedule, n.RetrySchedule) ||
		cfg.MaxDeliveryAge != n.MaxDeliveryAge || cfg.RateLimitPerMinute != n.RateLimitPerMinute ||
		cfg.MaxInFlight != n.MaxInFlight || cfg.MaxConnsPerHost != n.MaxConnsPerHost || cfg.MaxBacklog != n.MaxBacklog ||
		cfg.Workers != n.Workers || cfg.QueueShards != n.QueueShards || cfg.DeliveryRetention != n.Retention || cfg.Version != n.Version {
		t.Errorf("app.Default() = %+v\nnotifier.DefaultConfig() = %+v", cfg, n)
	}
	cfg.RetrySchedule = []time.Duration{-1, -2, -3}
	err := cfg.Validate()
	if err == nil || strings.Count(err.Error(), "--retry-schedule") != 1 {
		t.Errorf("want one error naming --retry-schedule, got %v", err)
	}
}
