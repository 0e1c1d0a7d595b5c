// Package daemontest runs a whole herald in-process for tests of any package: the daemon as
// `herald serve` builds it (app.New), on a free loopback port, on the shared test Redis with a key
// prefix of the test's own, stopped when the test ends. Every daemon it starts is registered with
// internal/apitest, so the requests the test sends it through http.DefaultClient, and the
// answers, are checked against the OpenAPI document: the package's TestMain must call
// apitest.Run.
package daemontest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
)

// Config is a daemon config on the shared test Redis with a key prefix of this test's own,
// allowing loopback http targets (the tests' receivers).
func Config(t testing.TB) app.Config {
	t.Helper()
	rdb, prefix := redistest.Shared(t)
	cfg := app.Default()
	cfg.Redis.URL = "redis://" + rdb.(*redis.Client).Options().Addr
	cfg.RedisPrefix = prefix
	cfg.AllowHTTP, cfg.AllowPrivate = true, true
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// Listen returns a listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Serve runs a daemon with cfg on a free port (cfg.Addr is set to it), logging to log (nil:
// nowhere). stop shuts it down gracefully and waits for Serve to return; it is safe to call twice
// and runs when the test ends.
func Serve(t testing.TB, cfg app.Config, log *slog.Logger) (base string, a *app.App, stop func()) {
	t.Helper()
	ln := Listen(t)
	cfg.Addr = ln.Addr().String()
	return ServeOn(t, cfg, ln, log)
}

// ServeOn is Serve on ln, whatever cfg.Addr says.
func ServeOn(t testing.TB, cfg app.Config, ln net.Listener, log *slog.Logger) (base string, a *app.App, stop func()) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := testutil.Receive(t, done, 15*time.Second, "Serve to return after shutdown"); err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	base = "http://" + ln.Addr().String()
	apitest.Serve(t, base)
	return base, a, stop
}
