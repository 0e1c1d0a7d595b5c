package verifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/verifier"
	"github.com/heraldhq/herald/webhooksig"
)

var loopback = egress.Policy{AllowHTTP: true, AllowPrivate: true}

type fixture struct {
	store *subscribers.Store
	cfg   verifier.Config
}

// setup returns a store on real Redis and a verifier config with short waits.
func setup(t *testing.T) *fixture {
	t.Helper()
	rdb, prefix := redistest.Shared(t)
	store := subscribers.NewStore(rdb, prefix)
	return &fixture{store: store, cfg: verifier.Config{
		Store: store, Policy: loopback, Version: "test", Timeout: 2 * time.Second,
		Backoff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, PollInterval: 20 * time.Millisecond,
	}}
}

func (f *fixture) start(t *testing.T) *verifier.Service {
	t.Helper()
	svc := verifier.New(f.cfg)
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return svc
}

func (f *fixture) create(t *testing.T, url, token string) *subscribers.Subscriber {
	t.Helper()
	sub, err := f.store.Create(context.Background(), &subscribers.Subscriber{URL: url, Token: token, Secret: webhooksig.NewSecret()})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// wait polls the subscriber until it leaves pending, or fails the test after a deadline.
func (f *fixture) wait(t *testing.T, id string) *subscribers.Subscriber {
	t.Helper()
	var sub *subscribers.Subscriber
	testutil.Eventually(t, 15*time.Second, "subscriber "+id+" to leave pending", func() bool {
		var err error
		if sub, err = f.store.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return sub.Status != subscribers.StatusPending
	})
	return sub
}

// handshake is a handshake request as a receiver decodes it.
type handshake struct {
	Token     string `json:"token"`
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
}

// receiver serves answer for every handshake and counts the requests.
type receiver struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	errs []string
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, h handshake)) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		var h handshake
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
			rc.fail("body is not JSON: %v", err)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			rc.fail("Content-Type %q", ct)
		}
		if ua := r.Header.Get("User-Agent"); ua != "herald/test" {
			rc.fail("User-Agent %q", ua)
		}
		if r.Method != http.MethodPost || h.Type != "url_verification" || h.Challenge == "" {
			rc.fail("not a handshake: %s %+v", r.Method, h)
		}
		answer(w, r, h)
	}))
	t.Cleanup(func() {
		rc.Close()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, e := range rc.errs {
			t.Error("receiver: " + e)
		}
	})
	return rc
}

func (rc *receiver) fail(format string, args ...any) {
	rc.mu.Lock()
	rc.errs = append(rc.errs, fmt.Sprintf(format, args...))
	rc.mu.Unlock()
}

// djangoView answers like the seed's Django REST view: 403 on a wrong token, else the challenge
// as a JSON string.
func djangoView(token string) func(http.ResponseWriter, *http.Request, handshake) {
	return func(w http.ResponseWriter, _ *http.Request, h handshake) {
		if h.Token != token {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Challenge)
	}
}

func TestHandshakeAnswers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	cases := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request, handshake)
		token  string
		want   string // "" verified, else the reason
		hits   int64
	}{
		{"django json string", djangoView("s3cret"), "s3cret", "", 1},
		{"django wrong token", djangoView("s3cret"), "other", "answered 403", 3},
		{"slack object", func(w http.ResponseWriter, _ *http.Request, h handshake) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"challenge": h.Challenge})
		}, "t", "", 1},
		{"plain text", func(w http.ResponseWriter, _ *http.Request, h handshake) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, h.Challenge+"\n")
		}, "t", "", 1},
		{"form", func(w http.ResponseWriter, _ *http.Request, h handshake) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			fmt.Fprint(w, url.Values{"challenge": {h.Challenge}}.Encode())
		}, "t", "", 1},
		{"wrong body", func(w http.ResponseWriter, _ *http.Request, _ handshake) {
			fmt.Fprint(w, `{"ok": true}`)
		}, "t", "answered 200 but the body did not contain the challenge", 3},
		{"created but empty", func(w http.ResponseWriter, _ *http.Request, _ handshake) {
			w.WriteHeader(http.StatusCreated)
		}, "t", "answered 201 but the body did not contain the challenge", 3},
		{"server error", func(w http.ResponseWriter, _ *http.Request, _ handshake) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "t", "answered 500", 3},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request, _ handshake) {
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		}, "t", "answered 302", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, c.answer)
			sub := f.create(t, rc.URL+"/hook?key=abc", c.token)
			got := f.wait(t, sub.ID)
			if c.want == "" && (got.Status != subscribers.StatusVerified || !got.Verified || got.LastVerificationError != "") {
				t.Fatalf("want verified, got %+v", got)
			}
			if c.want != "" && (got.Status != subscribers.StatusFailed || got.Verified || got.LastVerificationError != c.want) {
				t.Fatalf("want failed with %q, got status %s reason %q", c.want, got.Status, got.LastVerificationError)
			}
			if n := rc.hits.Load(); n != c.hits {
				t.Fatalf("receiver got %d requests, want %d", n, c.hits)
			}
			if strings.Contains(got.LastVerificationError, c.token) && c.token != "t" || strings.Contains(got.LastVerificationError, "key=abc") {
				t.Fatalf("reason leaks a secret: %q", got.LastVerificationError)
			}
		})
	}
}

func TestHandshakeTimeoutAndNetworkErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.cfg.Timeout = 150 * time.Millisecond
	f.cfg.Backoff = []time.Duration{}
	f.start(t)

	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ handshake) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	sub := f.create(t, slow.URL, "t")
	if got := f.wait(t, sub.ID); got.LastVerificationError != "timed out after 150ms" {
		t.Fatalf("slow endpoint: %+v", got)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/hook"
	l.Close()
	sub = f.create(t, closed, "t")
	if got := f.wait(t, sub.ID); got.LastVerificationError != "connection refused" {
		t.Fatalf("closed port: %+v", got)
	}

	sub = f.create(t, "http://no-such-host.invalid/hook", "t")
	if got := f.wait(t, sub.ID); !strings.HasPrefix(got.LastVerificationError, "could not resolve host no-such-host.invalid") {
		t.Fatalf("unknown host: %+v", got)
	}
}

func TestPrivateTargetRefusedAtDial(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.cfg.Policy = egress.Policy{AllowHTTP: true} // loopback not allowed
	f.start(t)
	rc := newReceiver(t, djangoView("t"))
	sub := f.create(t, rc.URL, "t")
	got := f.wait(t, sub.ID)
	if got.Status != subscribers.StatusFailed || !strings.HasPrefix(got.LastVerificationError, "target refused: ") ||
		!strings.Contains(got.LastVerificationError, "loopback") {
		t.Fatalf("private target: %+v", got)
	}
	if n := rc.hits.Load(); n != 0 {
		t.Fatalf("the refused target was reached %d times", n)
	}
}

// TestURLChangeReverifies: a handshake of the old URL that succeeds after the URL changed must not
// mark the new URL verified; the new URL gets its own handshake.
func TestURLChangeReverifies(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ctx := context.Background()
	arrived, release := make(chan struct{}), make(chan struct{})
	old := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h handshake) {
		close(arrived)
		<-release
		fmt.Fprint(w, h.Challenge)
	})
	refusing := newReceiver(t, djangoView("the-other-token"))
	sub := f.create(t, old.URL, "t")
	testutil.Receive(t, arrived, 10*time.Second, "the old URL's handshake")
	if _, err := f.store.Update(ctx, sub.ID, func(s *subscribers.Subscriber) error { s.URL = refusing.URL; return nil }); err != nil {
		t.Fatal(err)
	}
	close(release)
	got := f.wait(t, sub.ID)
	if got.Verified || got.Status != subscribers.StatusFailed || got.LastVerificationError != "answered 403" || got.URL != refusing.URL {
		t.Fatalf("after the URL change: %+v", got)
	}
	// Fixing the receiver and asking again verifies the new URL.
	if _, err := f.store.Update(ctx, sub.ID, func(s *subscribers.Subscriber) error { s.Token = "the-other-token"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, sub.ID); !got.Verified || got.Status != subscribers.StatusVerified {
		t.Fatalf("after the token change: %+v", got)
	}
}

// TestPendingSurviveRestartAndAreRunOnce: handshakes queued while no verifier runs are picked up
// when one starts, and two verifiers sharing the queue run each handshake once.
func TestPendingSurviveRestartAndAreRunOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var mu sync.Mutex
	perPath := map[string]int{}
	var inFlight atomic.Int64
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h handshake) {
		mu.Lock()
		perPath[r.URL.Path]++
		mu.Unlock()
		inFlight.Add(1)
		<-release
		fmt.Fprint(w, h.Challenge)
	})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll) // before the receiver closes, which waits for its handlers
	var ids []string
	for i := range 12 {
		ids = append(ids, f.create(t, fmt.Sprintf("%s/s%d", rc.URL, i), "t").ID)
	}
	f.cfg.Concurrency = 3
	f.cfg.Timeout = time.Minute // the handshakes held below must not time out and be tried again
	f.start(t)
	f.start(t)
	// Both verifiers work the queue at once: their handshakes are held until each runs its three.
	testutil.Eventually(t, 15*time.Second, "six handshakes in flight, three per verifier", func() bool { return inFlight.Load() == 6 })
	testutil.Never(t, 100*time.Millisecond, "a seventh handshake in flight", func() bool { return inFlight.Load() > 6 })
	releaseAll()
	for _, id := range ids {
		if got := f.wait(t, id); got.Status != subscribers.StatusVerified {
			t.Fatalf("%s: %+v", id, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 12 {
		if n := perPath[fmt.Sprintf("/s%d", i)]; n != 1 {
			t.Errorf("/s%d got %d handshakes, want 1", i, n)
		}
	}
}

// TestStopPutsUnfinishedWorkBack: a verifier stopped between tries leaves the handshake queued,
// and the next one (a new Service: a stopped one does not start again) finishes it.
func TestStopPutsUnfinishedWorkBack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.cfg.Backoff = []time.Duration{time.Hour}
	var hits atomic.Int64
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, h handshake) {
		if hits.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, h.Challenge)
	})
	svc := verifier.New(f.cfg)
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub := f.create(t, rc.URL, "t")
	svc.Nudge()
	testutil.Eventually(t, 10*time.Second, "the first handshake", func() bool { return hits.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := svc.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := svc.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if got, _ := f.store.Get(context.Background(), sub.ID); got.Status != subscribers.StatusPending {
		t.Fatalf("after stop: %+v", got)
	}
	f.start(t)
	if got := f.wait(t, sub.ID); got.Status != subscribers.StatusVerified {
		t.Fatalf("after restart: %+v", got)
	}
}

// Start and Stop may race: every Stop returns, at most one Start succeeds, and the race detector
// sees no shared state swapped under it.
func TestStartStopRacing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	svc := verifier.New(f.cfg)
	var wg sync.WaitGroup
	var started atomic.Int64
	for range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := svc.Start(context.Background())
			switch {
			case err == nil:
				started.Add(1)
			case !errors.Is(err, lifecycle.ErrStarted) && !errors.Is(err, lifecycle.ErrStopped):
				t.Errorf("start: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := svc.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	testutil.Receive(t, done, 20*time.Second, "every Stop to return while Starts and Stops raced")
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := started.Load(); n > 1 {
		t.Fatalf("%d Starts succeeded, want at most 1", n)
	}
}

// TestLifecycle: a second Start and a Start after Stop are errors; Stop twice returns nil, and so
// does a Stop before Start.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	svc := verifier.New(f.cfg)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); !errors.Is(err, lifecycle.ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	for range 2 {
		if err := svc.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if err := svc.Start(ctx); !errors.Is(err, lifecycle.ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
	never := verifier.New(f.cfg)
	if err := never.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := never.Start(ctx); !errors.Is(err, lifecycle.ErrStopped) {
		t.Fatalf("Start after a Stop before Start: %v, want ErrStopped", err)
	}
}

// A failed handshake try shows its reason at once, while the subscriber stays pending for the
// retries still to come (not only when the last one has failed).
func TestFailedTryShowsItsReasonWhilePending(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.cfg.Backoff = []time.Duration{time.Hour}
	f.start(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ handshake) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	sub := f.create(t, rc.URL+"/hook", "t")
	testutil.Eventually(t, 10*time.Second, "the first try's reason", func() bool {
		got, err := f.store.Get(context.Background(), sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status == subscribers.StatusPending && got.LastVerificationError == "answered 500"
	})
}
