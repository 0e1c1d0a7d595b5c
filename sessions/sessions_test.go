package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/sessions"
	"github.com/heraldhq/herald/sink"
	"github.com/heraldhq/herald/webhooksig"
)

// bundle is the relay under test with its real collaborators: Redis, the channel store, the
// delivery engine, and herald's API served on loopback.
type bundle struct {
	svc      *sessions.Service
	engine   *notifier.Engine
	channels *channels.Store
	rdb      redis.UniversalClient
	prefix   string
	api      string // base URL of the API (also the public URL)
}

type options struct {
	sessionsURL string
	ttl         time.Duration
	miniredis   bool
	maxBacklog  int64
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	var rdb redis.UniversalClient
	prefix := "herald"
	if o.miniredis {
		m := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { c.Close() })
		rdb = c
	} else {
		rdb, prefix = redistest.Shared(t)
	}
	policy := egress.Policy{AllowHTTP: true, AllowPrivate: true}
	chans := channels.NewStore(rdb, prefix, channels.WithPolicy(policy))
	eng, err := notifier.New(rdb, notifier.Config{
		Prefix:          prefix,
		AllowHTTP:       true,
		AllowPrivate:    true,
		RequestTimeout:  5 * time.Second,
		RetrySchedule:   slices.Repeat([]time.Duration{50 * time.Millisecond}, 40),
		Jitter:          -1,
		BreakerCooldown: 100 * time.Millisecond,
		Heartbeat:       100 * time.Millisecond,
		Workers:         16,
		MaxBacklog:      o.maxBacklog,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(sctx); err != nil {
			t.Errorf("engine stop: %v", err)
		}
	})
	router := httpx.NewRouter()
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	apitest.Server(t, srv)
	svc, err := sessions.New(ctx, rdb, chans, eng, sessions.Config{
		Prefix: prefix, PublicURL: srv.URL, SessionsURL: o.sessionsURL, TTL: o.ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(router)
	return &bundle{svc: svc, engine: eng, channels: chans, rdb: rdb, prefix: prefix, api: srv.URL}
}

// addChannel registers a channel whose server is at endpoint.
func (b *bundle) addChannel(t *testing.T, id, endpoint string) {
	t.Helper()
	_, err := b.channels.Create(context.Background(), &channels.Channel{
		ChannelID: id, ChannelName: id, ChannelMetadata: map[string]any{"endpoint_url": endpoint},
	})
	if err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, method, u, body string, header ...string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func (a answer) errField() string {
	e, _ := a.body["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// recorder is an HTTP receiver that keeps what it received. fail, while it returns true, makes it
// answer 500 (and not keep the request).
type recorder struct {
	mu    sync.Mutex
	reqs  []received
	fails int
	fail  func() bool
	srv   *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
}

func newRecorder(t *testing.T, fail func() bool) *recorder {
	rec := &recorder{fail: fail}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.fail != nil && rec.fail() {
			rec.fails++
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		rec.reqs = append(rec.reqs, received{r.Header.Clone(), b})
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func (r *recorder) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fails
}

// channelServer runs the sink as seed 000's channel server, keeping a copy of each request it got.
func channelServer(t *testing.T, secret string) (*httptest.Server, *recorder) {
	t.Helper()
	s := sink.New(sink.Config{Secret: secret})
	seen := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.mu.Lock()
		seen.reqs = append(seen.reqs, received{r.Header.Clone(), b})
		seen.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return srv, seen
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func getSession(t *testing.T, b *bundle, id string) map[string]any {
	t.Helper()
	a := do(t, http.MethodGet, b.api+"/sessions/"+id, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /sessions/%s = %d %s", id, a.status, a.raw)
	}
	return a.body
}

// TestRoundTrip is seed 000's whole story in-process: a message in, the channel server (the sink)
// gets it signed and calls back the response_url herald made, and herald forwards the response to
// the sessions server.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	sessionsSrv := newRecorder(t, nil)
	b := setup(t, options{sessionsURL: sessionsSrv.srv.URL + "/sessions"})
	chSrv, chSeen := channelServer(t, b.svc.SigningSecret())
	b.addChannel(t, "slack-sim", chSrv.URL+"/incoming")

	a := do(t, http.MethodPost, b.api+"/channel/message",
		`{"channel_id": "slack-sim", "session_id": "abc123", "message": "Hello, Slack!"}`)
	if a.status != http.StatusAccepted {
		t.Fatalf("POST /channel/message = %d %s", a.status, a.raw)
	}
	if got := keysOf(a.body); !slices.Equal(got, []string{"delivery_id", "session_id", "status"}) ||
		a.body["session_id"] != "abc123" || a.body["status"] != "queued" {
		t.Fatalf("answer %v", a.body)
	}
	deliveryID := a.body["delivery_id"].(string)

	testutil.Eventually(t, 20*time.Second, "the forwarded response", func() bool { return len(sessionsSrv.got()) == 1 })
	in := chSeen.got()
	if len(in) != 1 {
		t.Fatalf("channel server got %d requests, want 1", len(in))
	}
	token := checkRelayed(t, b, in[0], deliveryID)
	fwd := checkForwarded(t, b, sessionsSrv.got()[0])
	checkRoundTripSession(t, b, deliveryID, fwd, token)
}

// checkRelayed checks what the channel server got: exactly three keys, a response_url that points
// at herald and carries a token, signed with the relay secret as delivery deliveryID. It returns
// the token.
func checkRelayed(t *testing.T, b *bundle, in received, deliveryID string) (token string) {
	t.Helper()
	var relayed map[string]any
	if err := json.Unmarshal(in.body, &relayed); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(relayed); !slices.Equal(got, []string{"message", "response_url", "session_id"}) {
		t.Fatalf("relayed keys %v", got)
	}
	if relayed["message"] != "Hello, Slack!" || relayed["session_id"] != "abc123" {
		t.Fatalf("relayed %v", relayed)
	}
	ru, err := url.Parse(relayed["response_url"].(string))
	if err != nil || ru.Path != "/webhook-response" || len(ru.Query().Get("token")) < 32 ||
		!strings.HasPrefix(relayed["response_url"].(string), b.api+"/webhook-response?token=") {
		t.Fatalf("response_url %v, want %s/webhook-response?token=...", relayed["response_url"], b.api)
	}
	if in.header.Get("webhook-id") != deliveryID {
		t.Fatalf("webhook-id %q, want the delivery id %q", in.header.Get("webhook-id"), deliveryID)
	}
	if err := webhooksig.Verify(b.svc.SigningSecret(), in.header, in.body, time.Minute); err != nil {
		t.Fatalf("relayed message does not verify with the signing secret: %v", err)
	}
	return ru.Query().Get("token")
}

// checkForwarded checks what the sessions server got: exactly four keys, the channel server's
// response_data, a recent received_at in UTC, signed too. It returns the decoded body.
func checkForwarded(t *testing.T, b *bundle, out received) (fwd map[string]any) {
	t.Helper()
	if err := json.Unmarshal(out.body, &fwd); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(fwd); !slices.Equal(got, []string{"channel_id", "received_at", "response_data", "session_id"}) {
		t.Fatalf("forwarded keys %v", got)
	}
	if fwd["session_id"] != "abc123" || fwd["channel_id"] != "slack-sim" {
		t.Fatalf("forwarded %v", fwd)
	}
	rd, _ := fwd["response_data"].(map[string]any)
	if rd["text"] != "Received message: 'Hello, Slack!'" || rd["platform"] != "Slack (simulated)" {
		t.Fatalf("response_data %v", rd)
	}
	ra, _ := fwd["received_at"].(string)
	if ts, err := time.Parse(time.RFC3339, ra); err != nil || !strings.HasSuffix(ra, "Z") || time.Since(ts) > time.Minute {
		t.Fatalf("received_at %q, want a recent RFC 3339 UTC time", ra)
	}
	if err := webhooksig.Verify(b.svc.SigningSecret(), out.header, out.body, time.Minute); err != nil {
		t.Fatalf("forwarded response does not verify: %v", err)
	}
	return fwd
}

// checkRoundTripSession checks the session as GET /sessions/{id} shows it once the engine has
// recorded both deliveries: the message with its delivery, the response as forwarded (fwd), and
// nowhere the callback token.
func checkRoundTripSession(t *testing.T, b *bundle, deliveryID string, fwd map[string]any, token string) {
	t.Helper()
	var s map[string]any
	testutil.Eventually(t, 10*time.Second, "both deliveries delivered", func() bool {
		s = getSession(t, b, "abc123")
		msgs := s["messages"].([]any)
		resps := s["responses"].([]any)
		if len(msgs) != 1 || len(resps) != 1 {
			return false
		}
		m := msgs[0].(map[string]any)
		f, _ := resps[0].(map[string]any)["forward"].(map[string]any)
		return m["status"] == "delivered" && f != nil && f["status"] == "delivered"
	})
	if s["channel_id"] != "slack-sim" || s["session_id"] != "abc123" {
		t.Fatalf("session %v", s)
	}
	for _, k := range []string{"created_at", "updated_at", "expires_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(s[k])); err != nil {
			t.Fatalf("%s = %v: %v", k, s[k], err)
		}
	}
	m := s["messages"].([]any)[0].(map[string]any)
	if m["delivery_id"] != deliveryID || m["message"] != "Hello, Slack!" || m["attempts"] != 1.0 || m["sent_at"] == nil {
		t.Fatalf("message %v", m)
	}
	r := s["responses"].([]any)[0].(map[string]any)
	if r["received_at"] != fwd["received_at"] || mustJSON(r["response_data"]) != mustJSON(fwd["response_data"]) {
		t.Fatalf("response %v", r)
	}
	if strings.Contains(mustJSON(s), token) {
		t.Fatal("GET /sessions shows the callback token")
	}
}

func TestMessageValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.addChannel(t, "ch", "http://127.0.0.1:9/incoming")
	big := strings.Repeat("x", sessions.DefaultMaxMessageBytes)
	cases := []struct {
		name, body string
		status     int
		field      string
	}{
		{"missing channel_id", `{"session_id":"s","message":"m"}`, 400, "channel_id"},
		{"empty channel_id", `{"channel_id":"","session_id":"s","message":"m"}`, 400, "channel_id"},
		{"bad channel_id", `{"channel_id":"a b","session_id":"s","message":"m"}`, 400, "channel_id"},
		{"missing session_id", `{"channel_id":"ch","message":"m"}`, 400, "session_id"},
		{"empty session_id", `{"channel_id":"ch","session_id":"","message":"m"}`, 400, "session_id"},
		{"bad session_id", `{"channel_id":"ch","session_id":"s/../x","message":"m"}`, 400, "session_id"},
		{"missing message", `{"channel_id":"ch","session_id":"s"}`, 400, "message"},
		{"null message", `{"channel_id":"ch","session_id":"s","message":null}`, 400, "message"},
		{"empty message", `{"channel_id":"ch","session_id":"s","message":""}`, 400, "message"},
		{"huge message", `{"channel_id":"ch","session_id":"s","message":"` + big + `"}`, 400, "message"},
		{"relative response_url", `{"channel_id":"ch","session_id":"s","message":"m","response_url":"/cb"}`, 400, "response_url"},
		{"ftp response_url", `{"channel_id":"ch","session_id":"s","message":"m","response_url":"ftp://x/cb"}`, 400, "response_url"},
		{"session_id not a string", `{"channel_id":"ch","session_id":5,"message":"m"}`, 400, "session_id"},
		{"unknown field", `{"channel_id":"ch","session_id":"s","message":"m","extra":1}`, 400, "extra"},
		{"not JSON", `channel_id=ch`, 400, ""},
		{"unknown channel", `{"channel_id":"nope","session_id":"s","message":"m"}`, 404, "channel_id"},
	}
	for _, c := range cases {
		a := do(t, http.MethodPost, b.api+"/channel/message", c.body)
		if a.status != c.status || a.errField() != c.field {
			t.Errorf("%s: %d field %q (%s), want %d field %q", c.name, a.status, a.errField(), a.raw, c.status, c.field)
		}
	}
	// Nothing was half-written: no session exists for any of these.
	if a := do(t, http.MethodGet, b.api+"/sessions/s", ""); a.status != 404 {
		t.Fatalf("GET /sessions/s after refused messages = %d %s", a.status, a.raw)
	}
	// Any non-null JSON value is a message.
	for _, msg := range []string{`{"text":"hi","blocks":[1,2]}`, `[1,2]`, `42`, `true`} {
		a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"any","message":`+msg+`}`)
		if a.status != 202 {
			t.Errorf("message %s: %d %s", msg, a.status, a.raw)
		}
	}
}

// TestCallbackRules covers what /webhook-response refuses: a session never relayed or expired
// (404), a wrong or missing token (403), bad bodies (400); and that a caller's own response_url
// needs no token.
func TestCallbackRules(t *testing.T) {
	t.Parallel()
	b := setup(t, options{ttl: 2 * time.Second})
	chRec := newRecorder(t, nil)
	b.addChannel(t, "ch", chRec.srv.URL+"/incoming")

	if a := do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"never","response_data":{"x":1}}`); a.status != 404 {
		t.Fatalf("unknown session: %d %s", a.status, a.raw)
	}

	if a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"s1","message":"m"}`); a.status != 202 {
		t.Fatalf("send: %d %s", a.status, a.raw)
	}
	testutil.Eventually(t, 10*time.Second, "the relayed message", func() bool { return len(chRec.got()) == 1 })
	var relayed struct {
		ResponseURL string `json:"response_url"`
	}
	_ = json.Unmarshal(chRec.got()[0].body, &relayed)
	u, _ := url.Parse(relayed.ResponseURL)
	token := u.Query().Get("token")
	cb := b.api + "/webhook-response"

	cases := []struct {
		name, url, body string
		status          int
		field           string
	}{
		{"missing token", cb, `{"session_id":"s1","response_data":{"x":1}}`, 403, "token"},
		{"wrong token", cb + "?token=" + strings.Repeat("A", len(token)), `{"session_id":"s1","response_data":{"x":1}}`, 403, "token"},
		{"other session's token", cb + "?token=" + token, `{"session_id":"s2","response_data":{"x":1}}`, 404, "session_id"},
		{"body not JSON", relayed.ResponseURL, `session_id=s1`, 400, ""},
		{"body a JSON list", relayed.ResponseURL, `[1]`, 400, ""},
		{"empty body", relayed.ResponseURL, ``, 400, ""},
		{"missing session_id", relayed.ResponseURL, `{"response_data":{"x":1}}`, 400, "session_id"},
		{"missing response_data", relayed.ResponseURL, `{"session_id":"s1"}`, 400, "response_data"},
		{"null response_data", relayed.ResponseURL, `{"session_id":"s1","response_data":null}`, 400, "response_data"},
		{"response_data wrong type is fine, session_id is not", relayed.ResponseURL, `{"session_id":1,"response_data":"x"}`, 400, "session_id"},
	}
	for _, c := range cases {
		a := do(t, http.MethodPost, c.url, c.body)
		if a.status != c.status || a.errField() != c.field {
			t.Errorf("%s: %d field %q (%s), want %d field %q", c.name, a.status, a.errField(), a.raw, c.status, c.field)
		}
		if strings.Contains(a.raw, token) {
			t.Errorf("%s: the answer shows the token", c.name)
		}
	}
	// The right token, with an extra key a channel server may add: accepted.
	if a := do(t, http.MethodPost, relayed.ResponseURL, `{"session_id":"s1","response_data":{"ok":true},"status":"done"}`); a.status != 200 || a.body["success"] != true {
		t.Fatalf("right token: %d %s", a.status, a.raw)
	}

	// Channel servers are written by others: a JSON body under another Content-Type is taken, a
	// body that is not JSON is not.
	if a := do(t, http.MethodPost, relayed.ResponseURL, `{"session_id":"s1","response_data":2}`, "Content-Type", "application/x-www-form-urlencoded"); a.status != 200 {
		t.Fatalf("JSON under a form Content-Type: %d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodPost, relayed.ResponseURL, `session_id=s1&response_data=2`, "Content-Type", "application/x-www-form-urlencoded"); a.status != 400 {
		t.Fatalf("a form body: %d %s", a.status, a.raw)
	}

	// A caller that gives its own response_url (the seed's curl does) needs no token.
	a := do(t, http.MethodPost, b.api+"/channel/message",
		`{"channel_id":"ch","session_id":"own","message":"m","response_url":"`+b.api+`/webhook-response"}`)
	if a.status != 202 {
		t.Fatalf("send with response_url: %d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodPost, cb, `{"session_id":"own","response_data":"done"}`); a.status != 200 {
		t.Fatalf("callback without token for a caller's response_url: %d %s", a.status, a.raw)
	}

	// A session expires after the TTL without activity: then its callback is 404, and so is GET.
	testutil.Eventually(t, 10*time.Second, "session s1 to expire", func() bool {
		return do(t, http.MethodGet, b.api+"/sessions/s1", "").status == 404
	})
	if a := do(t, http.MethodPost, relayed.ResponseURL, `{"session_id":"s1","response_data":{"late":true}}`); a.status != 404 {
		t.Fatalf("callback after expiry: %d %s", a.status, a.raw)
	}
}

// TestTTLRefreshedByActivity: a session that keeps getting responses outlives its TTL.
func TestTTLRefreshedByActivity(t *testing.T) {
	t.Parallel()
	b := setup(t, options{ttl: 1500 * time.Millisecond})
	b.addChannel(t, "ch", "http://127.0.0.1:9/incoming")
	a := do(t, http.MethodPost, b.api+"/channel/message",
		`{"channel_id":"ch","session_id":"live","message":"m","response_url":"http://127.0.0.1:9/cb"}`)
	if a.status != 202 {
		t.Fatalf("send: %d %s", a.status, a.raw)
	}
	// Real time has to pass the TTL: Redis expires the session by its own clock. Responses every
	// 300 ms for twice the TTL keep it alive; no signal can stand in for the time passing.
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		time.Sleep(300 * time.Millisecond)
		if a := do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"live","response_data":1}`); a.status != 200 {
			t.Fatalf("callback %s after start: %d %s", time.Since(start), a.status, a.raw)
		}
	}
	s := getSession(t, b, "live")
	exp, err := time.Parse(time.RFC3339, s["expires_at"].(string))
	if err != nil || time.Until(exp) < 500*time.Millisecond {
		t.Fatalf("expires_at %v, want about 1.5 s ahead", s["expires_at"])
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	sessionsSrv := newRecorder(t, nil)
	b := setup(t, options{sessionsURL: sessionsSrv.srv.URL})
	b.addChannel(t, "ch", "http://127.0.0.1:9/incoming")
	a := do(t, http.MethodPost, b.api+"/channel/message",
		`{"channel_id":"ch","session_id":"idem","message":"m","response_url":"http://127.0.0.1:9/cb"}`)
	if a.status != 202 {
		t.Fatalf("send: %d %s", a.status, a.raw)
	}
	cb := b.api + "/webhook-response"
	first := do(t, http.MethodPost, cb, `{"session_id":"idem","response_data":{"n":1}}`, "Idempotency-Key", "key-1")
	again := do(t, http.MethodPost, cb, `{"session_id":"idem","response_data":{"n":1}}`, "Idempotency-Key", "key-1")
	if first.status != 200 || again.status != 200 || again.body["success"] != true || again.body["duplicate"] != true {
		t.Fatalf("first %d %s, repeat %d %s", first.status, first.raw, again.status, again.raw)
	}
	// The same key on another session is another callback.
	if a := do(t, http.MethodPost, b.api+"/channel/message",
		`{"channel_id":"ch","session_id":"idem2","message":"m","response_url":"http://127.0.0.1:9/cb"}`); a.status != 202 {
		t.Fatalf("send: %d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodPost, cb, `{"session_id":"idem2","response_data":{"n":1}}`, "Idempotency-Key", "key-1"); a.status != 200 || a.body["duplicate"] != nil {
		t.Fatalf("same key, other session: %d %s", a.status, a.raw)
	}
	// A later callback of the first session travels the same ordered line: once it has arrived,
	// a second copy of the first would have arrived before it.
	if a := do(t, http.MethodPost, cb, `{"session_id":"idem","response_data":{"n":2}}`, "Idempotency-Key", "key-2"); a.status != 200 {
		t.Fatalf("second callback: %d %s", a.status, a.raw)
	}
	testutil.Eventually(t, 10*time.Second, "three forwards", func() bool { return len(sessionsSrv.got()) == 3 })
	var n1 int
	for _, r := range sessionsSrv.got() {
		var f map[string]any
		_ = json.Unmarshal(r.body, &f)
		if f["session_id"] == "idem" && mustJSON(f["response_data"]) == `{"n":1}` {
			n1++
		}
	}
	if n1 != 1 {
		t.Fatalf("the repeated callback was forwarded %d times, want 1", n1)
	}
	if got := len(getSession(t, b, "idem")["responses"].([]any)); got != 2 {
		t.Fatalf("session idem has %d responses, want 2", got)
	}
}

// TestSessionsServerRecovers: the sessions server answers 500 for a while, then recovers. Every
// response arrives, none lost, and those of one session in the order herald received them.
func TestSessionsServerRecovers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	down := true
	sessionsSrv := newRecorder(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return down
	})
	b := setup(t, options{sessionsURL: sessionsSrv.srv.URL})
	b.addChannel(t, "ch", "http://127.0.0.1:9/incoming")
	const nSessions, perSession = 3, 8
	for s := range nSessions {
		a := do(t, http.MethodPost, b.api+"/channel/message",
			fmt.Sprintf(`{"channel_id":"ch","session_id":"rec-%d","message":"m","response_url":"http://127.0.0.1:9/cb"}`, s))
		if a.status != 202 {
			t.Fatalf("send: %d %s", a.status, a.raw)
		}
	}
	// Interleave the sessions' callbacks, as concurrent conversations would.
	for i := range perSession {
		for s := range nSessions {
			a := do(t, http.MethodPost, b.api+"/webhook-response",
				fmt.Sprintf(`{"session_id":"rec-%d","response_data":{"seq":%d}}`, s, i))
			if a.status != 200 {
				t.Fatalf("callback: %d %s", a.status, a.raw)
			}
		}
		if i == perSession/2 {
			testutil.Eventually(t, 10*time.Second, "the sessions server to refuse some", func() bool { return sessionsSrv.failures() >= 3 })
		}
	}
	testutil.Eventually(t, 10*time.Second, "a few more refusals", func() bool { return sessionsSrv.failures() >= 6 })
	mu.Lock()
	down = false
	mu.Unlock()

	testutil.Eventually(t, 30*time.Second, "every response", func() bool { return len(sessionsSrv.got()) >= nSessions*perSession })
	seqs := map[string][]int{}
	for _, r := range sessionsSrv.got() {
		var f struct {
			SessionID    string            `json:"session_id"`
			ResponseData struct{ Seq int } `json:"response_data"`
		}
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatal(err)
		}
		seqs[f.SessionID] = append(seqs[f.SessionID], f.ResponseData.Seq)
	}
	for s := range nSessions {
		got := seqs[fmt.Sprintf("rec-%d", s)]
		want := make([]int, perSession)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(got, want) {
			t.Errorf("session rec-%d got responses %v, want %v in order, each once", s, got, want)
		}
	}
}

// TestNoSessionsServer: with no sessions URL, responses are kept and shown by GET /sessions/{id}.
func TestNoSessionsServer(t *testing.T) {
	t.Parallel()
	for _, mini := range []bool{false, true} {
		t.Run(fmt.Sprintf("miniredis=%v", mini), func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{miniredis: mini})
			chSrv, _ := channelServer(t, "")
			b.addChannel(t, "ch", chSrv.URL+"/incoming")
			for i, msg := range []string{"first", "second"} {
				a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"keep","message":"`+msg+`"}`)
				if a.status != 202 {
					t.Fatalf("send %d: %d %s", i, a.status, a.raw)
				}
			}
			var s map[string]any
			testutil.Eventually(t, 15*time.Second, "two responses", func() bool {
				s = getSession(t, b, "keep")
				return len(s["responses"].([]any)) == 2
			})
			texts := map[string]bool{}
			for _, r := range s["responses"].([]any) {
				r := r.(map[string]any)
				if r["forward"] != nil {
					t.Fatalf("forward %v, want null without a sessions server", r["forward"])
				}
				texts[r["response_data"].(map[string]any)["text"].(string)] = true
			}
			if !texts["Received message: 'first'"] || !texts["Received message: 'second'"] {
				t.Fatalf("responses %v", s["responses"])
			}
			msgs := s["messages"].([]any)
			if len(msgs) != 2 || msgs[0].(map[string]any)["message"] != "first" || msgs[1].(map[string]any)["message"] != "second" {
				t.Fatalf("messages %v", msgs)
			}
			// A repeated callback with the same Idempotency-Key is acknowledged, not stored twice.
			do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"k2","message":"x","response_url":"http://127.0.0.1:9/"}`)
			for range 2 {
				if a := do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"k2","response_data":1}`, "Idempotency-Key", "same"); a.status != 200 {
					t.Fatalf("callback: %d %s", a.status, a.raw)
				}
			}
			if n := len(getSession(t, b, "k2")["responses"].([]any)); n != 1 {
				t.Fatalf("k2 has %d responses, want 1", n)
			}
		})
	}
}

func TestSessionOfAnotherChannel(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.addChannel(t, "a", "http://127.0.0.1:9/incoming")
	b.addChannel(t, "b", "http://127.0.0.1:9/incoming")
	if a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"a","session_id":"s","message":"m"}`); a.status != 202 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"b","session_id":"s","message":"m"}`); a.status != 409 || a.errField() != "session_id" {
		t.Fatalf("same session on another channel: %d %s, want 409", a.status, a.raw)
	}
}

func TestGetSessionErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	if a := do(t, http.MethodGet, b.api+"/sessions/unknown", ""); a.status != 404 {
		t.Fatalf("unknown: %d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodGet, b.api+"/sessions/"+strings.Repeat("x", 200), ""); a.status != 400 {
		t.Fatalf("too long: %d %s", a.status, a.raw)
	}
}

// TestRefusedTarget: a channel whose endpoint the engine's target rules refuse is a 422 naming
// the reason, and leaves no session behind.
func TestRefusedTarget(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	chans := channels.NewStore(rdb, prefix, channels.WithPolicy(egress.Policy{AllowHTTP: true, AllowPrivate: true}))
	strict, err := notifier.New(rdb, notifier.Config{Prefix: prefix}) // https only, no private targets
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sessions.New(context.Background(), rdb, chans, strict, sessions.Config{Prefix: prefix, PublicURL: "http://127.0.0.1:8000"})
	if err != nil {
		t.Fatal(err)
	}
	router := httpx.NewRouter()
	svc.Routes(router)
	srv := httptest.NewServer(router)
	defer srv.Close()
	apitest.Server(t, srv)
	if _, err := chans.Create(context.Background(), &channels.Channel{ChannelID: "local", ChannelMetadata: map[string]any{"endpoint_url": "http://127.0.0.1:5001/incoming"}}); err != nil {
		t.Fatal(err)
	}
	a := do(t, http.MethodPost, srv.URL+"/channel/message", `{"channel_id":"local","session_id":"s","message":"m"}`)
	if a.status != 422 || a.errField() != "channel_metadata.endpoint_url" || !strings.Contains(a.raw, "http") {
		t.Fatalf("%d %s, want 422 naming the endpoint_url", a.status, a.raw)
	}
	if a := do(t, http.MethodGet, srv.URL+"/sessions/s", ""); a.status != 404 {
		t.Fatalf("session left behind: %d %s", a.status, a.raw)
	}
}

// TestSigningSecret: with none configured, processes sharing a Redis generate one secret between
// them; a configured one wins.
func TestSigningSecret(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	chans := channels.NewStore(rdb, prefix)
	eng, err := notifier.New(rdb, notifier.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	secrets := make([]string, 4)
	for i := range secrets {
		wg.Go(func() {
			svc, err := sessions.New(context.Background(), rdb, chans, eng, sessions.Config{Prefix: prefix, PublicURL: "http://x"})
			if err != nil {
				t.Error(err)
				return
			}
			secrets[i] = svc.SigningSecret()
		})
	}
	wg.Wait()
	if !strings.HasPrefix(secrets[0], "whsec_") || webhooksig.CheckSecret(secrets[0]) != nil {
		t.Fatalf("generated secret is not a whsec_ secret")
	}
	for _, s := range secrets[1:] {
		if s != secrets[0] {
			t.Fatal("processes generated different secrets")
		}
	}
	mine := webhooksig.NewSecret()
	svc, err := sessions.New(context.Background(), rdb, chans, eng, sessions.Config{Prefix: prefix, PublicURL: "http://x", SigningSecret: mine})
	if err != nil {
		t.Fatal(err)
	}
	if svc.SigningSecret() != mine {
		t.Fatal("the configured secret was not used")
	}
}

// TestBacklogFull: when the engine refuses new work, a message is 503 with Retry-After and leaves
// no session behind, and a callback is 503 and not kept, so the channel server's retry counts.
func TestBacklogFull(t *testing.T) {
	t.Parallel()
	for _, mini := range []bool{false, true} {
		t.Run(fmt.Sprintf("miniredis=%v", mini), func(t *testing.T) {
			t.Parallel()
			testBacklogFull(t, mini)
		})
	}
}

func testBacklogFull(t *testing.T, mini bool) {
	// Nothing listens on port 9: deliveries stay pending, retrying, and fill the backlog of 2.
	b := setup(t, options{maxBacklog: 2, sessionsURL: "http://127.0.0.1:9/sessions", miniredis: mini})
	b.addChannel(t, "ch", "http://127.0.0.1:9/incoming")
	if a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"s1","message":"m","response_url":"http://127.0.0.1:9/cb"}`); a.status != 202 {
		t.Fatalf("first message: %d %s", a.status, a.raw)
	}
	if a := do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"s1","response_data":1}`); a.status != 200 {
		t.Fatalf("first callback: %d %s", a.status, a.raw)
	}
	a := do(t, http.MethodPost, b.api+"/channel/message", `{"channel_id":"ch","session_id":"s2","message":"m"}`)
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Fatalf("message past the backlog: %d %s (Retry-After %q), want 503 with Retry-After", a.status, a.raw, a.header.Get("Retry-After"))
	}
	if a := do(t, http.MethodGet, b.api+"/sessions/s2", ""); a.status != 404 {
		t.Fatalf("refused first message left its session behind: %d %s", a.status, a.raw)
	}
	a = do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"s1","response_data":2}`, "Idempotency-Key", "k")
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Fatalf("callback past the backlog: %d %s, want 503 with Retry-After", a.status, a.raw)
	}
	s := getSession(t, b, "s1")
	if n := len(s["responses"].([]any)); n != 1 {
		t.Fatalf("session s1 has %d responses, want 1: the refused callback must not be kept", n)
	}
	// Its Idempotency-Key was not burnt: the same callback retried is not taken for a duplicate.
	a = do(t, http.MethodPost, b.api+"/webhook-response", `{"session_id":"s1","response_data":2}`, "Idempotency-Key", "k")
	if a.status != 503 || a.body["duplicate"] != nil {
		t.Fatalf("retried callback: %d %s, want 503 again (not a duplicate)", a.status, a.raw)
	}
}

// TestMessagesInOrder: one session's messages reach a flaky channel server in the order sent.
func TestMessagesInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	chRec := newRecorder(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return calls%3 != 0 // two of every three tries fail
	})
	b := setup(t, options{})
	b.addChannel(t, "ch", chRec.srv.URL+"/incoming")
	const n = 6
	for i := range n {
		if a := do(t, http.MethodPost, b.api+"/channel/message", fmt.Sprintf(`{"channel_id":"ch","session_id":"ord","message":{"seq":%d}}`, i)); a.status != 202 {
			t.Fatalf("send %d: %d %s", i, a.status, a.raw)
		}
	}
	testutil.Eventually(t, 30*time.Second, "every message", func() bool { return len(chRec.got()) >= n })
	for i, r := range chRec.got() {
		var m struct {
			Message struct{ Seq int } `json:"message"`
		}
		_ = json.Unmarshal(r.body, &m)
		if m.Message.Seq != i {
			t.Fatalf("message %d arrived as number %d: out of order", m.Message.Seq, i)
		}
	}
}

// TestChannelURLChange: after a channel's endpoint_url changes, its next message goes to the new
// server.
func TestChannelURLChange(t *testing.T) {
	t.Parallel()
	oldSrv, newSrv := newRecorder(t, nil), newRecorder(t, nil)
	b := setup(t, options{})
	b.addChannel(t, "ch", oldSrv.srv.URL+"/incoming")
	send := func(i int) {
		if a := do(t, http.MethodPost, b.api+"/channel/message", fmt.Sprintf(`{"channel_id":"ch","session_id":"u%d","message":"m"}`, i)); a.status != 202 {
			t.Fatalf("send: %d %s", a.status, a.raw)
		}
	}
	send(1)
	testutil.Eventually(t, 10*time.Second, "the first message at the old server", func() bool { return len(oldSrv.got()) == 1 })
	if _, err := b.channels.Update(context.Background(), "ch", channels.Patch{Metadata: map[string]any{"endpoint_url": newSrv.srv.URL + "/incoming"}}); err != nil {
		t.Fatal(err)
	}
	send(2)
	testutil.Eventually(t, 10*time.Second, "the second message at the new server", func() bool { return len(newSrv.got()) == 1 })
	if n := len(oldSrv.got()); n != 1 {
		t.Fatalf("old server got %d messages, want 1", n)
	}
}
