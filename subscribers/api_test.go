package subscribers_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/verifier"
	"github.com/heraldhq/herald/webhooksig"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type clock = testutil.Clock

// api is a subscriber API wired as the daemon wires it: real Redis, the real delivery engine, the
// verifier service and the health listener, served over loopback.
type api struct {
	t       *testing.T
	url     string
	prefix  string
	rdb     redis.UniversalClient
	store   *subscribers.Store
	engine  *notifier.Engine
	clock   *clock
	logs    *syncBuffer
	secrets sync.Map // values that must never be logged
	tries   sync.Map // endpoint id -> *atomic.Int64 of outcomes
	health  *laggingEngine
}

// laggingEngine is the engine as Health sees it, able to hold Health back: while the test holds
// it, DisableEndpoint waits (a Health that lags behind the engine, as it may when Redis is busy).
type laggingEngine struct {
	*notifier.Engine
	mu   sync.Mutex
	held chan struct{}
}

func (l *laggingEngine) DisableEndpoint(ctx context.Context, id string) error {
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.Engine.DisableEndpoint(ctx, id)
}

// holdHealth holds Health's DisableEndpoint calls until the returned function is called.
func (a *api) holdHealth() func() {
	held := make(chan struct{})
	a.health.mu.Lock()
	a.health.held = held
	a.health.mu.Unlock()
	var once sync.Once
	release := func() { once.Do(func() { close(held) }) }
	a.t.Cleanup(release)
	return release
}

type apiOptions struct {
	policy     egress.Policy
	noVerifier bool
	// backoff are the verifier's waits between tries (default: none, one try); verifyTimeout
	// bounds one try (default 2 s).
	backoff       []time.Duration
	verifyTimeout time.Duration
	// retrySchedule is the engine's (default: one retry, 20 ms after the first try).
	retrySchedule []time.Duration
}

func setupAPI(t *testing.T, o apiOptions) *api {
	t.Helper()
	rdb, prefix := redistest.Shared(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := &api{t: t, rdb: rdb, prefix: prefix, clock: testutil.NewClock(time.Now()), logs: logs}
	if o.retrySchedule == nil {
		o.retrySchedule = []time.Duration{20 * time.Millisecond}
	}
	eng, err := notifier.New(rdb, notifier.Config{
		Prefix: prefix, Version: "test", RequestTimeout: 2 * time.Second,
		RetrySchedule: o.retrySchedule, AllowHTTP: o.policy.AllowHTTP, AllowPrivate: o.policy.AllowPrivate,
		Heartbeat: 100 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.engine = eng
	a.store = subscribers.NewStore(rdb, prefix, subscribers.WithClock(a.clock.Now))
	a.health = &laggingEngine{Engine: eng}
	health := subscribers.NewHealth(a.store, a.health, 24*time.Hour, log)
	eng.OnOutcome(health.Observe)
	eng.OnOutcome(func(o notifier.Outcome) {
		n, _ := a.tries.LoadOrStore(o.EndpointID, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	})
	ctx := context.Background()
	if err := health.Start(ctx); err != nil { // before the engine, stopped after it, as in the daemon
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// As the daemon wires it (app/subscribers.go): a URL reaches the engine once verified.
	onVerified := func(ctx context.Context, id string) {
		if sub, err := a.store.Get(ctx, id); err == nil {
			if err := eng.PutEndpoint(ctx, subscribers.Endpoint(sub)); err != nil {
				t.Errorf("register verified endpoint: %v", err)
			}
		}
	}
	backoff := o.backoff
	if backoff == nil {
		backoff = []time.Duration{}
	}
	v := verifier.New(verifier.Config{Store: a.store, Policy: o.policy, Version: "test", Timeout: cmp.Or(o.verifyTimeout, 2*time.Second),
		Backoff: backoff, PollInterval: 20 * time.Millisecond, Log: log, OnVerified: onVerified})
	if !o.noVerifier {
		if err := v.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := httpx.NewRouter()
	subscribers.NewHandlers(subscribers.HandlerConfig{Store: a.store, Engine: eng, Policy: o.policy, Nudge: v.Nudge, Log: log}).Routes(r)
	eng.Routes(r) // /deliveries, as the daemon mounts it
	srv := httptest.NewServer(r)
	a.url = srv.URL
	apitest.Server(t, srv)
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = v.Stop(sctx)
		_ = eng.Stop(sctx)
		_ = health.Stop(sctx)
		out := logs.String()
		a.secrets.Range(func(k, _ any) bool {
			if strings.Contains(out, k.(string)) {
				t.Errorf("a secret or token is in the logs: %.12s...", k)
			}
			return true
		})
	})
	return a
}

// do sends a request with a JSON body (a string is sent as it is) and decodes the JSON answer.
func (a *api) do(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
	}
	if s, ok := out["secret"].(string); ok {
		a.secrets.Store(s, true)
	}
	if s, ok := out["token"].(string); ok {
		a.secrets.Store(s, true)
	}
	return resp.StatusCode, out
}

func (a *api) mustDo(want int, method, path string, body any) map[string]any {
	a.t.Helper()
	code, out := a.do(method, path, body)
	if code != want {
		a.t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, want)
	}
	return out
}

// waitStatus polls GET /subscribers/{id} until its status is want.
func (a *api) waitStatus(id, want string) map[string]any {
	a.t.Helper()
	var out map[string]any
	testutil.Eventually(a.t, 15*time.Second, "subscriber "+id+" to be "+want, func() bool {
		out = a.mustDo(200, "GET", "/subscribers/"+id, nil)
		return out["status"] == want
	})
	return out
}

func (a *api) tryCount(endpointID string) int64 {
	n, ok := a.tries.Load(endpointID)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// receiver is a subscriber endpoint that answers the handshake like the seed's Django REST view
// (403 on a wrong token, else the challenge as a JSON string) and notifications with notifyCode.
type receiver struct {
	*httptest.Server
	token      atomic.Value // string
	notifyCode atomic.Int32
	handshakes atomic.Int64
	mu         sync.Mutex
	got        []delivered
}

type delivered struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, token string) *receiver {
	rc := &receiver{}
	rc.token.Store(token)
	rc.notifyCode.Store(200)
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Token, Type, Challenge string }
		_ = json.Unmarshal(body, &p)
		if p.Type == "url_verification" {
			rc.handshakes.Add(1)
			if p.Token != rc.token.Load().(string) {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivered{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		w.WriteHeader(int(rc.notifyCode.Load()))
	}))
	t.Cleanup(rc.Close)
	return rc
}

// waitDelivery waits for the n-th notification (1-based).
func (rc *receiver) waitDelivery(t *testing.T, n int) delivered {
	t.Helper()
	var d delivered
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("notification %d", n), func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.got) < n {
			return false
		}
		d = rc.got[n-1]
		return true
	})
	return d
}

var loopback = egress.Policy{AllowHTTP: true, AllowPrivate: true}

func TestAPICreateVerifyListAndSign(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "tok-1")
	created := a.mustDo(201, "POST", "/subscribers", map[string]any{
		"url": rc.URL + "/hook", "token": "tok-1", "channel_tags": []string{"slack"}, "types": []string{"update_notification"},
		"description": "renderer", "rate_limit_per_minute": 600, "max_in_flight": 2, "ordered": true,
	})
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(id, "sub_") || created["verified"] != false || created["status"] != "pending" ||
		!strings.HasPrefix(secret, "whsec_") || created["token"] != "tok-1" || created["breaker_state"] != "closed" ||
		created["ordered"] != true || created["rate_limit_per_minute"] != 600.0 || created["description"] != "renderer" {
		t.Fatalf("created: %v", created)
	}
	if raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); len(raw) != 24 {
		t.Fatalf("generated secret holds %d bytes, want 24", len(raw))
	}
	got := a.waitStatus(id, "verified")
	if got["verified"] != true || got["last_verification_error"] != "" || got["secret"] != secret {
		t.Fatalf("verified: %v", got)
	}

	checkListHidesSecrets(t, a, id)

	// The engine signs deliveries to the subscriber with its secret.
	ctx := context.Background()
	send := func() delivered {
		t.Helper()
		rc.mu.Lock()
		n := len(rc.got) // before the enqueue: the delivery may arrive before Enqueue returns
		rc.mu.Unlock()
		if _, err := a.engine.Enqueue(ctx, notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{"type":"update_notification"}`)}); err != nil {
			t.Fatal(err)
		}
		return rc.waitDelivery(t, n+1)
	}
	d := send()
	if err := webhooksig.Verify(secret, d.header, d.body, time.Minute); err != nil {
		t.Fatalf("delivery does not verify with the subscriber's secret: %v", err)
	}

	// Rotation to a given secret, then to a generated one.
	given := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	rot := a.mustDo(200, "POST", "/subscribers/"+id+"/rotate-secret", map[string]any{"secret": given})
	if rot["secret"] != given || rot["status"] != "verified" {
		t.Fatalf("rotate: %v", rot)
	}
	if a.mustDo(200, "GET", "/subscribers/"+id, nil)["secret"] != given {
		t.Fatal("the rotated secret is not stored")
	}
	d = send()
	if err := webhooksig.Verify(given, d.header, d.body, time.Minute); err != nil {
		t.Fatalf("delivery does not verify with the rotated secret: %v", err)
	}
	rot = a.mustDo(200, "POST", "/subscribers/"+id+"/rotate-secret", nil)
	if s, _ := rot["secret"].(string); !strings.HasPrefix(s, "whsec_") || s == given || s == secret {
		t.Fatalf("generated rotation: %v", rot)
	}
	if strings.Contains(a.logs.String(), "tok-1") {
		t.Fatal("the token is in the logs")
	}
}

// checkListHidesSecrets: lists show the one subscriber id, but never its secret or its token.
func checkListHidesSecrets(t *testing.T, a *api, id string) {
	t.Helper()
	for _, page := range []string{"/subscribers", "/subscribers?limit=1"} {
		list := a.mustDo(200, "GET", page, nil)
		subs, _ := list["subscribers"].([]any)
		if len(subs) != 1 || list["next"] != nil {
			t.Fatalf("list %s: %v", page, list)
		}
		s := subs[0].(map[string]any)
		if _, ok := s["secret"]; ok {
			t.Fatalf("list shows the secret: %v", s)
		}
		if _, ok := s["token"]; ok {
			t.Fatalf("list shows the token: %v", s)
		}
		if s["id"] != id || s["status"] != "verified" || s["breaker_state"] != "closed" {
			t.Fatalf("list entry: %v", s)
		}
	}
}

func TestAPIPatch(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	first, second := newReceiver(t, "tok"), newReceiver(t, "tok")
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": first.URL, "token": "tok", "rate_limit_per_minute": 5,
		"chat_types": []string{"support"}})["id"].(string)
	before := a.waitStatus(id, "verified")

	out := a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{"description": "new", "channel_ids": []string{"c1", "c1", "c2"}})
	if out["status"] != "verified" || out["description"] != "new" || out["url"] != first.URL || out["secret"] != before["secret"] ||
		fmt.Sprint(out["channel_ids"]) != "[c1 c2]" || fmt.Sprint(out["chat_types"]) != "[support]" || out["rate_limit_per_minute"] != 5.0 {
		t.Fatalf("patch of filters: %v", out)
	}
	// null removes a field: a list becomes empty, a limit goes back to the default.
	out = a.mustDo(200, "PATCH", "/subscribers/"+id, `{"channel_ids": null, "rate_limit_per_minute": null}`)
	if fmt.Sprint(out["channel_ids"]) != "[]" || out["rate_limit_per_minute"] != nil || out["description"] != "new" {
		t.Fatalf("patch with nulls: %v", out)
	}
	// A new URL is verified again before it gets anything.
	out = a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{"url": second.URL})
	if out["status"] != "pending" || out["verified"] != false || out["url"] != second.URL {
		t.Fatalf("patch of url: %v", out)
	}
	a.waitStatus(id, "verified")
	if second.handshakes.Load() != 1 || first.handshakes.Load() != 1 {
		t.Fatalf("handshakes: first %d, second %d", first.handshakes.Load(), second.handshakes.Load())
	}
	// The engine sends to the new URL.
	if _, err := a.engine.Enqueue(context.Background(), notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	second.waitDelivery(t, 1)
	// A URL that fails its handshake never gets a delivery: deliveries already queued (retries,
	// say) keep going to the last verified URL.
	third := newReceiver(t, "another-token") // answers the handshake 403
	a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{"url": third.URL})
	a.waitStatus(id, "failed")
	if _, err := a.engine.Enqueue(context.Background(), notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	second.waitDelivery(t, 2)
	third.mu.Lock()
	n := len(third.got)
	third.mu.Unlock()
	if n != 0 {
		t.Fatalf("the unverified URL got %d deliveries", n)
	}
	a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{"url": second.URL}) // back, for what follows
	// A merge-patch content type is accepted too.
	req, _ := http.NewRequest("PATCH", a.url+"/subscribers/"+id, strings.NewReader(`{"ordered": true}`))
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("merge-patch content type: %d", resp.StatusCode)
	}
}

func TestAPIVerifyAndDelete(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "expected")
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "other"})["id"].(string)
	failed := a.waitStatus(id, "failed")
	if failed["verified"] != false || failed["last_verification_error"] != "answered 403" {
		t.Fatalf("failed: %v", failed)
	}
	// The receiver is fixed; /verify runs the handshake again.
	rc.token.Store("other")
	out := a.mustDo(202, "POST", "/subscribers/"+id+"/verify", nil)
	if out["status"] != "pending" || out["last_verification_error"] != "" {
		t.Fatalf("verify: %v", out)
	}
	a.waitStatus(id, "verified")

	del := a.mustDo(200, "DELETE", "/subscribers/"+id, nil)
	if del["id"] != id || del["deleted"] != true || len(del) != 2 {
		t.Fatalf("delete: %v", del)
	}
	a.mustDo(404, "GET", "/subscribers/"+id, nil)
	a.mustDo(404, "DELETE", "/subscribers/"+id, nil)
	if list := a.mustDo(200, "GET", "/subscribers", nil); len(list["subscribers"].([]any)) != 0 {
		t.Fatalf("list after delete: %v", list)
	}
	_, err := a.engine.Enqueue(context.Background(), notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{}`)})
	if !errors.Is(err, notifier.ErrUnknownEndpoint) {
		t.Fatalf("the engine still knows the deleted subscriber's endpoint: %v", err)
	}
}

func TestAPIGoneDisablesAndPatchReenables(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "tok")
	rc.notifyCode.Store(http.StatusGone)
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "tok"})["id"].(string)
	a.waitStatus(id, "verified")
	if _, err := a.engine.Enqueue(context.Background(), notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	out := a.waitStatus(id, "disabled")
	if out["disabled_reason"] != "endpoint answered 410 Gone" {
		t.Fatalf("disabled: %v", out)
	}
	// Fan-out reads the compact records (Targets, CountMatch), not the documents.
	fanned := func() ([]subscribers.Target, int) {
		t.Helper()
		ch := &channels.Channel{ChannelID: "c"}
		targets, _, err := a.store.Targets(context.Background(), ch, subscribers.TypeUpdateNotification, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		n, err := a.store.CountMatch(context.Background(), ch, subscribers.TypeUpdateNotification)
		if err != nil {
			t.Fatal(err)
		}
		return targets, n
	}
	if targets, n := fanned(); len(targets) != 0 || n != 0 {
		t.Fatalf("a disabled subscriber is still fanned out to: targets %v, counted %d", targets, n)
	}
	// Rotating the secret leaves it disabled; PATCH re-enables it, through a new handshake.
	if out := a.mustDo(200, "POST", "/subscribers/"+id+"/rotate-secret", nil); out["status"] != "disabled" {
		t.Fatalf("rotate-secret re-enabled a disabled subscriber: %v", out)
	}
	rc.notifyCode.Store(200)
	out = a.mustDo(200, "PATCH", "/subscribers/"+id, map[string]any{})
	if out["status"] != "pending" || out["disabled_reason"] != "" {
		t.Fatalf("re-enable: %v", out)
	}
	a.waitStatus(id, "verified")
	if targets, n := fanned(); len(targets) != 1 || targets[0].ID != id || n != 1 {
		t.Fatalf("re-enabled subscriber is not fanned out to: targets %v, counted %d", targets, n)
	}
}

// TestAPIShowsAFailedHandshakeTryAtOnce: the reason a handshake try failed shows in
// last_verification_error as soon as that try has failed, while the subscriber is still pending
// and its handshake is retried; the retry that succeeds clears it.
func TestAPIShowsAFailedHandshakeTryAtOnce(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback, backoff: []time.Duration{10 * time.Millisecond}, verifyTimeout: time.Minute})
	var tries atomic.Int64
	retried, release := make(chan struct{}), make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h struct{ Challenge string }
		_ = json.NewDecoder(r.Body).Decode(&h)
		if tries.Add(1) == 1 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		close(retried) // a third try would panic: the second one passes
		select {
		case <-release:
			_ = json.NewEncoder(w).Encode(h.Challenge)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(rc.Close)
	var once sync.Once
	answer := func() { once.Do(func() { close(release) }) }
	t.Cleanup(answer) // before rc.Close, which waits for the held try

	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "tok"})["id"].(string)
	testutil.Receive(t, retried, 10*time.Second, "the handshake to be retried")
	// The retry is held at the receiver: the first try's reason must show already.
	out := a.mustDo(200, "GET", "/subscribers/"+id, nil)
	if out["status"] != "pending" || out["verified"] != false || out["last_verification_error"] != "answered 403" {
		t.Fatalf("while the handshake is retried: %v, want pending with last_verification_error \"answered 403\"", out)
	}
	answer()
	if out = a.waitStatus(id, "verified"); out["last_verification_error"] != "" {
		t.Fatalf("verified, but still showing the failed try: %v", out)
	}
}

// TestLongestSubscriberIDReachesTheEngine: a subscriber with the longest valid id (only the Go
// API lets a caller choose one) gets an engine endpoint when verified, its deliveries are sent,
// and their outcomes reach it: a 410 disables it.
func TestLongestSubscriberIDReachesTheEngine(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "tok")
	rc.notifyCode.Store(http.StatusGone)
	id := "sub_" + strings.Repeat("l", ids.MaxLen-4)
	if _, err := a.store.Create(context.Background(), &subscribers.Subscriber{ID: id, URL: rc.URL, Token: "tok", Secret: webhooksig.NewSecret()}); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(id, "verified")
	req := notifier.Request{EndpointID: subscribers.EndpointID(id), SubscriberID: id, Body: []byte(`{}`)}
	if _, err := a.engine.Enqueue(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if out := a.waitStatus(id, "disabled"); out["disabled_reason"] != "endpoint answered 410 Gone" {
		t.Fatalf("disabled: %v", out)
	}
}

func TestAPIDisableAfterEveryDeliveryFailed(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "tok")
	rc.notifyCode.Store(http.StatusServiceUnavailable)
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "tok"})["id"].(string)
	a.waitStatus(id, "verified")
	ep := subscribers.EndpointID(id)
	ctx := context.Background()
	if _, err := a.engine.Enqueue(ctx, notifier.Request{EndpointID: ep, SubscriberID: id, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "the first try and its one retry", func() bool { return a.tryCount(ep) >= 2 })
	// Health writes in the background: wait for its failure record, then for any Disable the
	// same write would make.
	testutil.Eventually(t, 10*time.Second, "Health to record the failures", func() bool {
		return a.rdb.HExists(ctx, subscribers.FailingKey(a.store), id).Val()
	})
	testutil.Never(t, 200*time.Millisecond, "disabled too early", func() bool {
		return a.mustDo(200, "GET", "/subscribers/"+id, nil)["status"] != "verified"
	})
	a.clock.Add(24*time.Hour + time.Minute)
	if _, err := a.engine.Enqueue(ctx, notifier.Request{EndpointID: ep, SubscriberID: id, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	out := a.waitStatus(id, "disabled")
	if r, _ := out["disabled_reason"].(string); !strings.Contains(r, "every delivery failed for 24h0m0s") || !strings.Contains(r, "answered 503") {
		t.Fatalf("disabled: %v", out)
	}
}

// TestAPIBadRequests: every bad input is a 4xx naming the problem, and leaves nothing behind.
func TestAPIBadRequests(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: egress.Policy{}, noVerifier: true}) // https and public targets only
	good := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": "https://hooks.example.com/h"})
	id := good["id"].(string)
	for _, c := range badRequests(id) {
		code, out := a.do(c.method, c.path, c.body)
		e, _ := out["error"].(map[string]any)
		msg, _ := e["message"].(string)
		field, _ := e["field"].(string)
		if code != c.status || e["code"] != c.code || field != c.field || !strings.Contains(msg, c.says) {
			t.Errorf("%s %s %v: %d %v; want %d %s field %q saying %q", c.method, c.path, c.body, code, out, c.status, c.code, c.field, c.says)
		}
		for _, leak := range []string{"not-base64", "sk_live", "whsec_short", shortSecret} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s %s: the error repeats the secret: %q", c.method, c.path, msg)
			}
		}
	}
	// 415 for another content type.
	resp, err := http.Post(a.url+"/subscribers", "text/plain", strings.NewReader(`{"url": "https://example.com/"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain body: %d", resp.StatusCode)
	}
	checkNothingHalfMade(t, a, good)
}

// badRequest is a request the API refuses: the answer's status, error code, field, and a part of
// its message.
type badRequest struct {
	method, path string
	body         any
	status       int
	code, field  string
	says         string
}

// shortSecret is a well-formed secret of 10 bytes, too short to be taken.
var shortSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("only-ten-b"))

// badRequests are the requests TestAPIBadRequests makes; id is an existing subscriber's.
func badRequests(id string) []badRequest {
	return []badRequest{
		{"POST", "/subscribers", map[string]any{}, 400, "missing_field", "url", "url is required"},
		{"POST", "/subscribers", map[string]any{"url": "not a url"}, 400, "invalid_value", "url", "absolute"},
		{"POST", "/subscribers", map[string]any{"url": "ftp://example.com/x"}, 400, "invalid_value", "url", "http or https"},
		{"POST", "/subscribers", map[string]any{"url": "http://example.com/x"}, 400, "invalid_value", "url", "only https"},
		{"POST", "/subscribers", map[string]any{"url": "https://127.0.0.1:8443/x"}, 400, "invalid_value", "url", "loopback"},
		{"POST", "/subscribers", map[string]any{"url": "https://10.1.2.3/x"}, 400, "invalid_value", "url", "private"},
		{"POST", "/subscribers", map[string]any{"url": "https://169.254.169.254/latest"}, 400, "invalid_value", "url", "link-local"},
		{"POST", "/subscribers", map[string]any{"url": "https://localhost/x"}, 400, "invalid_value", "url", "loopback"},
		{"POST", "/subscribers", map[string]any{"url": 5}, 400, "invalid_value", "url", "string"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "bogus": 1}, 400, "unknown_field", "bogus", "bogus"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "types": []string{"update_notification", "nope_type"}}, 400, "invalid_value", "types", `"nope_type"`},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "secret": "whsec_not-base64!"}, 400, "invalid_value", "secret", "whsec_"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "secret": shortSecret}, 400, "invalid_value", "secret", "24 to 64"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "secret": "sk_live_abcdef"}, 400, "invalid_value", "secret", "whsec_"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "token": ""}, 400, "invalid_value", "token", "token"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "rate_limit_per_minute": 0}, 400, "invalid_value", "rate_limit_per_minute", "between 1"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "max_in_flight": 5000}, 400, "invalid_value", "max_in_flight", "between 1"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "max_in_flight": -1}, 400, "invalid_value", "max_in_flight", "between 1"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "channel_ids": []string{"bad id!"}}, 400, "invalid_value", "channel_ids", "channel_ids[0]"},
		{"POST", "/subscribers", map[string]any{"url": "https://example.com/", "channel_tags": []string{""}}, 400, "invalid_value", "channel_tags", "channel_tags[0]"},
		{"POST", "/subscribers", `{"url": "https://example.com/"`, 400, "invalid_json", "", "truncated"},
		{"POST", "/subscribers", `{"url": "https://example.com/"} {}`, 400, "invalid_json", "", "after"},
		{"GET", "/subscribers/bad!id", nil, 400, "invalid_value", "id", "id must be"},
		{"GET", "/subscribers/sub_unknown", nil, 404, "not_found", "", "sub_unknown"},
		{"PATCH", "/subscribers/sub_unknown", map[string]any{"description": "x"}, 404, "not_found", "", "sub_unknown"},
		{"DELETE", "/subscribers/sub_unknown", nil, 404, "not_found", "", "sub_unknown"},
		{"POST", "/subscribers/sub_unknown/verify", nil, 404, "not_found", "", "sub_unknown"},
		{"POST", "/subscribers/sub_unknown/rotate-secret", nil, 404, "not_found", "", "sub_unknown"},
		{"POST", "/subscribers/bad!id/verify", nil, 400, "invalid_value", "id", "id must be"},
		{"PATCH", "/subscribers/" + id, map[string]any{"status": "verified"}, 400, "invalid_value", "status", "read-only"},
		{"PATCH", "/subscribers/" + id, map[string]any{"nope": 1}, 400, "unknown_field", "nope", "nope"},
		{"PATCH", "/subscribers/" + id, `{"secret": null}`, 400, "invalid_value", "secret", "rotate-secret"},
		{"PATCH", "/subscribers/" + id, `{"url": null}`, 400, "missing_field", "url", "url is required"},
		{"PATCH", "/subscribers/" + id, map[string]any{"url": "https://192.168.1.1/"}, 400, "invalid_value", "url", "private"},
		{"PATCH", "/subscribers/" + id, map[string]any{"types": []string{"chat:message:new"}}, 400, "invalid_value", "types", "chat:message:new"},
		{"PATCH", "/subscribers/" + id, map[string]any{"channel_ids": "c1"}, 400, "invalid_value", "channel_ids", "list"},
		{"PATCH", "/subscribers/" + id, `[]`, 400, "invalid_value", "", "object"},
		{"PATCH", "/subscribers/" + id, `null`, 400, "invalid_json", "", "object"},
		{"POST", "/subscribers/" + id + "/rotate-secret", map[string]any{"secret": "whsec_short"}, 400, "invalid_value", "secret", "whsec_"},
		{"POST", "/subscribers/" + id + "/rotate-secret", map[string]any{"secrett": "x"}, 400, "unknown_field", "secrett", "secrett"},
		{"GET", "/subscribers?limit=abc", nil, 400, "invalid_value", "limit", "limit"},
		{"GET", "/subscribers?limit=0", nil, 400, "invalid_value", "limit", "limit"},
		{"GET", "/subscribers?limit=1001", nil, 400, "invalid_value", "limit", "limit"},
		{"GET", "/subscribers?after=bad!id", nil, 400, "invalid_value", "after", "cursor"},
	}
}

// checkNothingHalfMade checks that rejected requests left nothing half-made: one subscriber, good,
// unchanged, and one queued handshake.
func checkNothingHalfMade(t *testing.T, a *api, good map[string]any) {
	t.Helper()
	list := a.mustDo(200, "GET", "/subscribers", nil)
	if subs := list["subscribers"].([]any); len(subs) != 1 {
		t.Fatalf("subscribers after bad requests: %v", subs)
	}
	now := a.mustDo(200, "GET", "/subscribers/"+good["id"].(string), nil)
	for _, k := range []string{"url", "secret", "token", "updated_at", "status", "types", "channel_ids"} {
		if fmt.Sprint(now[k]) != fmt.Sprint(good[k]) {
			t.Errorf("%s changed by rejected requests: %v -> %v", k, good[k], now[k])
		}
	}
	if n, err := a.store.PendingVerifications(context.Background()); err != nil || n != 1 {
		t.Fatalf("queued handshakes: %d %v", n, err)
	}
}

// TestAPIShowsEndpointHealth: a subscriber whose endpoint keeps failing shows, on its own GET and
// in the list, the breaker the failures opened and the last error, with when it failed.
func TestAPIShowsEndpointHealth(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: loopback})
	rc := newReceiver(t, "tok")
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": rc.URL, "token": "tok"})["id"].(string)
	got := a.waitStatus(id, "verified")
	if h, _ := got["health"].(map[string]any); h["breaker"] != "closed" || h["last_failure_at"] != nil || h["last_error"] != "" {
		t.Fatalf("health of a new subscriber: %v", got["health"])
	}
	rc.notifyCode.Store(http.StatusServiceUnavailable)
	ep := subscribers.EndpointID(id)
	for range 3 { // two tries each: the fifth failure opens the breaker
		if _, err := a.engine.Enqueue(context.Background(), notifier.Request{EndpointID: ep, SubscriberID: id, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 15*time.Second, "the breaker to open", func() bool {
		return a.mustDo(200, "GET", "/subscribers/"+id, nil)["breaker_state"] == "open"
	})
	check := func(where string, s map[string]any) {
		t.Helper()
		h, _ := s["health"].(map[string]any)
		if h["breaker"] != "open" || h["last_error"] != "HTTP 503" || h["last_status_code"] != 503.0 || h["last_failure_at"] == nil {
			t.Errorf("%s: health %v; want the breaker open and the last error HTTP 503 with its time", where, h)
		}
		if bs, _ := h["breakers"].([]any); len(bs) != 1 || bs[0].(map[string]any)["state"] != "open" {
			t.Errorf("%s: breakers %v, want this process's, open", where, h["breakers"])
		}
	}
	testutil.Eventually(t, 5*time.Second, "the last error to be recorded", func() bool {
		h, _ := a.mustDo(200, "GET", "/subscribers/"+id, nil)["health"].(map[string]any)
		return h["last_error"] != ""
	})
	check("GET /subscribers/{id}", a.mustDo(200, "GET", "/subscribers/"+id, nil))
	subs, _ := a.mustDo(200, "GET", "/subscribers", nil)["subscribers"].([]any)
	if len(subs) != 1 {
		t.Fatalf("list: %v", subs)
	}
	check("GET /subscribers", subs[0].(map[string]any))
	if code, out := a.do("PATCH", "/subscribers/"+id, map[string]any{"health": nil}); code != 400 {
		t.Errorf("PATCH health: %d %v, want 400 (read-only)", code, out)
	}
}
