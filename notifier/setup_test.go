package notifier

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx/redistest"
)

// testSecret is a valid whsec_ secret for tests.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// bundle is what setup gives a test besides the engine.
type bundle struct {
	rdb    redis.UniversalClient
	prefix string
	mu     sync.Mutex
	out    []Outcome
}

func (b *bundle) outcomes() []Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Outcome(nil), b.out...)
}

// testConfig is a config with test-speed schedules on prefix.
func testConfig(prefix string) Config {
	return Config{
		Prefix:          prefix,
		Version:         "test",
		RequestTimeout:  2 * time.Second,
		RetrySchedule:   []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
		AllowHTTP:       true,
		AllowPrivate:    true,
		Heartbeat:       100 * time.Millisecond,
		BreakerCooldown: 500 * time.Millisecond,
		Workers:         32,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// setup starts an engine on the shared test Redis under a fresh prefix; mod adjusts its config.
func setup(t *testing.T, mod func(*Config)) (*Engine, *bundle) {
	t.Helper()
	rdb, prefix := redistest.Shared(t)
	b := &bundle{rdb: rdb, prefix: prefix}
	cfg := testConfig(prefix)
	if mod != nil {
		mod(&cfg)
	}
	e := startEngine(t, rdb, cfg)
	e.OnOutcome(func(o Outcome) {
		b.mu.Lock()
		b.out = append(b.out, o)
		b.mu.Unlock()
	})
	return e, b
}

func startEngine(t *testing.T, rdb redis.UniversalClient, cfg Config) *Engine {
	t.Helper()
	e, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

// receiver is a loopback HTTP endpoint that records what it gets and answers with handle.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []received
	count atomic.Int64
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, handle func(n int64, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		n := rc.count.Add(1)
		if handle != nil {
			handle(n, w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Server.Close)
	return rc
}

// failingReceiver answers status while its switch is on and 200 once it is off; failing is where
// the switch starts.
func failingReceiver(t *testing.T, status int, failing bool) (*receiver, *atomic.Bool) {
	var fail atomic.Bool
	fail.Store(failing)
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return rc, &fail
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func putEndpoint(t *testing.T, e *Engine, ep Endpoint) {
	t.Helper()
	if err := e.PutEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, e *Engine, reqs ...Request) []string {
	t.Helper()
	ids, err := e.Enqueue(context.Background(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// waitStatus waits until delivery id has status s and returns it.
func waitStatus(t *testing.T, e *Engine, id string, s Status, d time.Duration) *Delivery {
	t.Helper()
	var last *Delivery
	testutil.Eventually(t, d, "delivery "+id+" to be "+string(s), func() bool {
		got, err := e.Get(context.Background(), id)
		if err != nil {
			return false
		}
		last = got
		return got.Status == s
	})
	return last
}
