package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/sink"
	"github.com/heraldhq/herald/webhooksig"
)

// syncBuffer is an io.Writer the test can read while the sink writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setup starts a sink on loopback and returns its URL and printout.
func setup(t *testing.T, cfg sink.Config) (string, *syncBuffer, *sink.Sink) {
	t.Helper()
	out := &syncBuffer{}
	cfg.Out = out
	s := sink.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv.URL, out, s
}

func post(t *testing.T, url string, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not a JSON object: %q", b)
	}
	return resp.StatusCode, out
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	url, out, _ := setup(t, sink.Config{})
	code, body := post(t, url+"/hooks", `{"token":"tok","type":"url_verification","challenge":"ch-123"}`, nil)
	if code != 200 || body["challenge"] != "ch-123" || len(body) != 1 {
		t.Fatalf("handshake answer = %d %v, want 200 {\"challenge\": \"ch-123\"}", code, body)
	}
	if !strings.Contains(out.String(), "POST /hooks") || !strings.Contains(out.String(), `"challenge": "ch-123"`) {
		t.Fatalf("printout misses the request:\n%s", out)
	}
}

func TestHandshakeToken(t *testing.T) {
	t.Parallel()
	url, _, _ := setup(t, sink.Config{Token: "expected"})
	if code, _ := post(t, url, `{"token":"other","type":"url_verification","challenge":"c"}`, nil); code != 403 {
		t.Fatalf("wrong token: status %d, want 403", code)
	}
	if code, _ := post(t, url, `{"type":"url_verification","challenge":"c"}`, nil); code != 403 {
		t.Fatalf("missing token: status %d, want 403", code)
	}
	if code, _ := post(t, url, `{"token":"other","type":"update_notification"}`, nil); code != 403 {
		t.Fatalf("notification with the wrong token: status %d, want 403", code)
	}
	code, body := post(t, url, `{"token":"expected","type":"url_verification","challenge":"c"}`, nil)
	if code != 200 || body["challenge"] != "c" {
		t.Fatalf("right token: %d %v", code, body)
	}
	// Payloads without a token (relayed messages, callbacks) are not subject to it.
	if code, _ := post(t, url+"/sessions", `{"session_id":"s"}`, nil); code != 200 {
		t.Fatalf("payload without token: status %d, want 200", code)
	}
}

func TestSignatureCheck(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	url, out, _ := setup(t, sink.Config{Secret: secret})
	body := `{"session_id":"s1"}`
	sig, err := webhooksig.Sign(secret, "msg_1", time.Now(), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconvTime(time.Now()))
	h.Set("webhook-signature", sig)
	if code, _ := post(t, url+"/a", body, h); code != 200 {
		t.Fatalf("status %d", code)
	}
	testutil.Eventually(t, 10*time.Second, "valid signature printed", func() bool { return strings.Contains(out.String(), "signature: valid") })

	other, _ := webhooksig.Sign("whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_2", time.Now(), []byte(body))
	h.Set("webhook-id", "msg_2")
	h.Set("webhook-signature", other)
	post(t, url+"/b", body, h)
	testutil.Eventually(t, 10*time.Second, "invalid signature printed", func() bool { return strings.Contains(out.String(), "signature: INVALID") })
	post(t, url+"/c", body, nil)
	testutil.Eventually(t, 10*time.Second, "unsigned request printed", func() bool { return strings.Contains(out.String(), "signature: none") })
	if !strings.Contains(out.String(), "webhook-id: msg_2") {
		t.Fatalf("headers of interest not printed:\n%s", out)
	}
}

func strconvTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestFailureInjection(t *testing.T) {
	t.Parallel()
	url, out, _ := setup(t, sink.Config{FailRate: 1, Status: 503})
	code, body := post(t, url+"/incoming", `{"session_id":"s","message":"m","response_url":"http://127.0.0.1:1/x"}`, nil)
	if code != 503 || body["success"] != false {
		t.Fatalf("injected failure: %d %v, want 503", code, body)
	}
	if !strings.Contains(out.String(), "-> 503") {
		t.Fatalf("printout misses the injected answer:\n%s", out)
	}

	// A rate of one half with a known sequence of draws fails exactly the draws under 0.5.
	draws := []float64{0.1, 0.9, 0.4, 0.6}
	var mu sync.Mutex
	url2, _, _ := setup(t, sink.Config{FailRate: 0.5, Rand: func() float64 {
		mu.Lock()
		defer mu.Unlock()
		d := draws[0]
		draws = draws[1:]
		return d
	}})
	var got []int
	for range 4 {
		code, _ := post(t, url2+"/x", `{}`, nil)
		got = append(got, code)
	}
	if want := []int{500, 200, 500, 200}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	url, _, _ := setup(t, sink.Config{Delay: 300 * time.Millisecond})
	start := time.Now()
	if code, _ := post(t, url+"/x", `{}`, nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("answered after %s, want at least the 300ms delay", d)
	}
}

// TestIncomingCallsBack plays seed 000's story from the channel server's side: a message comes in
// on /incoming, the sink answers, then calls back response_url with the seed's payload.
func TestIncomingCallsBack(t *testing.T) {
	t.Parallel()
	type cb struct {
		header http.Header
		query  string
		body   map[string]any
	}
	got := make(chan cb, 1)
	herald := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		got <- cb{r.Header, r.URL.RawQuery, m}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success": true}`))
	}))
	defer herald.Close()

	url, out, _ := setup(t, sink.Config{ReplyDelay: 50 * time.Millisecond})
	h := http.Header{}
	h.Set("webhook-id", "rly_abc")
	msg := `{"session_id":"abc123","message":"Hello, Slack!","response_url":"` + herald.URL + `/webhook-response?token=SECRET-TOKEN"}`
	code, body := post(t, url+"/incoming", msg, h)
	if code != 200 || body["success"] != true || body["message"] != "Response sent" {
		t.Fatalf("answer %d %v, want 200 success/Response sent", code, body)
	}
	c := testutil.Receive(t, got, 10*time.Second, "the callback")
	if c.query != "token=SECRET-TOKEN" {
		t.Fatalf("callback query %q, want the response_url's", c.query)
	}
	if c.header.Get("Idempotency-Key") != "rly_abc" {
		t.Fatalf("Idempotency-Key %q, want the webhook-id", c.header.Get("Idempotency-Key"))
	}
	if len(c.body) != 2 || c.body["session_id"] != "abc123" {
		t.Fatalf("callback body %v, want exactly session_id and response_data", c.body)
	}
	rd, _ := c.body["response_data"].(map[string]any)
	if rd["text"] != "Received message: 'Hello, Slack!'" || rd["platform"] != "Slack (simulated)" {
		t.Fatalf("response_data %v", rd)
	}
	if ts, _ := rd["timestamp"].(string); !strings.HasSuffix(ts, "Z") {
		t.Fatalf("timestamp %q, want UTC RFC 3339", rd["timestamp"])
	} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Fatalf("timestamp %q: %v", ts, err)
	}
	testutil.Eventually(t, 10*time.Second, "callback printed", func() bool { return strings.Contains(out.String(), "callback for session abc123") })
	if strings.Contains(out.String(), "SECRET-TOKEN") {
		t.Fatalf("the callback token was printed:\n%s", out)
	}
}

func TestIncomingMissingFields(t *testing.T) {
	t.Parallel()
	url, _, _ := setup(t, sink.Config{})
	for _, body := range []string{
		`{"message":"m","response_url":"http://127.0.0.1:1/"}`,
		`{"session_id":"s","response_url":"http://127.0.0.1:1/"}`,
		`{"session_id":"s","message":"","response_url":"http://127.0.0.1:1/"}`,
		`{"session_id":"s","message":"m"}`,
		`{"session_id":"s","message":"m","response_url":"not a url"}`,
		`not json`,
	} {
		code, out := post(t, url+"/incoming", body, nil)
		if code != 400 || out["success"] != false {
			t.Errorf("%s: %d %v, want 400", body, code, out)
		}
	}
}

// TestRunShutdown runs the sink on a real listener, cancels it while a callback waits, and checks
// that Run returns once the callback is done.
func TestRunShutdown(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	herald := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
	}))
	defer herald.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s := sink.New(sink.Config{Out: out, ReplyDelay: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	code, _ := post(t, "http://"+ln.Addr().String()+"/incoming",
		`{"session_id":"s","message":"m","response_url":"`+herald.URL+`/cb"}`, nil)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	cancel()
	if err := testutil.Receive(t, done, 15*time.Second, "Run to return after cancel"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-arrived:
	default:
		t.Fatal("the pending callback was dropped at shutdown instead of finished")
	}
}
