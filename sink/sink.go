package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/webhooksig"
)

// DefaultAddr is where the sink listens by default: the address of seed 000's channel server.
const DefaultAddr = "127.0.0.1:5001"

// Config configures a Sink. Zero values take the defaults noted.
type Config struct {
	// Secret, a whsec_ secret, makes the sink check each request's Standard Webhooks signature and
	// print the result.
	Secret string
	// Token, when set, is the verification token every payload carrying a "token" (and every
	// url_verification handshake) must have; a mismatch is answered 403 like the seed's Django view.
	Token string
	// ReplyDelay is how long the sink waits before calling back a message's response_url.
	ReplyDelay time.Duration
	// FailRate is the probability (0..1) of answering a request with Status instead of handling it.
	FailRate float64
	// Status is the status of injected failures (default 500).
	Status int
	// Delay is slept before answering every request.
	Delay time.Duration
	// Out receives the printout (default io.Discard).
	Out io.Writer
	// MaxCallbacks bounds the callbacks in flight (default 256); past it /incoming answers 503.
	MaxCallbacks int
	// CallbackTimeout bounds one callback request (default 5 s, as in the seed).
	CallbackTimeout time.Duration
	// MaxBody bounds a request body read (default 4 MiB).
	MaxBody int64
	// Client makes the callbacks (default: a plain client with CallbackTimeout).
	Client *http.Client
	// Rand returns a number in [0, 1) for failure injection (default math/rand/v2).
	Rand func() float64
}

// Sink is the local receiver. It is an http.Handler; Close waits for the callbacks it started.
type Sink struct {
	cfg Config

	outMu sync.Mutex // one request's printout is written in one piece

	ctx    context.Context // cancelled by Close after the callbacks had their chance
	cancel context.CancelFunc
	wg     sync.WaitGroup // callbacks in flight
	slots  chan struct{}  // bounds callbacks in flight
	mu     sync.Mutex
	closed bool
}

// New returns a Sink.
func New(cfg Config) *Sink {
	if cfg.Status == 0 {
		cfg.Status = http.StatusInternalServerError
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.MaxCallbacks <= 0 {
		cfg.MaxCallbacks = 256
	}
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 5 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 4 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.CallbackTimeout}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sink{cfg: cfg, ctx: ctx, cancel: cancel, slots: make(chan struct{}, cfg.MaxCallbacks)}
}

// Close stops taking new callbacks, waits for those in flight until ctx ends, then cancels the rest
// and waits for them to return. Safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("callbacks still in flight at shutdown were cancelled: %w", ctx.Err())
	}
	s.cancel()
	<-done
	return err
}

// Run serves on ln until ctx ends, then shuts down gracefully: it stops accepting, lets the
// requests and callbacks in flight finish (up to 10 s), and returns.
func (s *Sink) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	closeErr := s.Close(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return errors.Join(shutErr, closeErr)
}

// ServeHTTP prints the request and answers it: a url_verification handshake with its challenge,
// POST /incoming as seed 000's channel server, anything else with 200.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	p := &printout{}
	p.head(start, r, len(body))
	switch {
	case s.cfg.Secret != "" && r.Header.Get(webhooksig.HeaderSignature) == "":
		p.line("signature: none (the request is not signed)")
	case s.cfg.Secret != "":
		if err := webhooksig.Verify(s.cfg.Secret, r.Header, body, 5*time.Minute); err != nil {
			p.line("signature: INVALID (%v)", err)
		} else {
			p.line("signature: valid")
		}
	case r.Header.Get(webhooksig.HeaderSignature) != "":
		p.line("signature: not checked (start the sink with --secret whsec_... to check it)")
	}
	p.body(redactToken(body))

	status, answer, after := s.handle(r, body, readErr)
	if s.cfg.Delay > 0 {
		t := time.NewTimer(s.cfg.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	p.answer(status, answer)
	s.print(p)
	writeJSON(w, status, answer)
	if after != nil {
		after()
	}
}

// handle decides the answer. after, when not nil, starts the work that follows the answer (a
// callback), already accounted for in the WaitGroup.
func (s *Sink) handle(r *http.Request, body []byte, readErr error) (status int, answer any, after func()) {
	if readErr != nil {
		return http.StatusRequestEntityTooLarge, map[string]any{"success": false, "error": "body too large or unreadable"}, nil
	}
	if s.cfg.FailRate > 0 && s.cfg.Rand() < s.cfg.FailRate {
		return s.cfg.Status, map[string]any{"success": false, "error": "injected failure (--fail-rate)"}, nil
	}
	if r.Method != http.MethodPost {
		return http.StatusOK, map[string]any{"sink": "herald sink", "hint": "POST something here"}, nil
	}
	var obj map[string]any
	_ = json.Unmarshal(body, &obj)
	if s.cfg.Token != "" {
		tok, has := obj["token"]
		ts, _ := tok.(string)
		if (has || obj["type"] == "url_verification") && !hmac.Equal([]byte(ts), []byte(s.cfg.Token)) {
			return http.StatusForbidden, map[string]any{"success": false, "error": "verification token does not match --token"}, nil
		}
	}
	if obj["type"] == "url_verification" {
		return http.StatusOK, map[string]any{"challenge": obj["challenge"]}, nil
	}
	if r.URL.Path == "/incoming" {
		return s.incoming(r, obj)
	}
	return http.StatusOK, map[string]any{"success": true}, nil
}

// incoming is seed 000's channel server: it checks session_id, message and response_url, answers,
// then calls back response_url with the simulated platform's response.
func (s *Sink) incoming(r *http.Request, obj map[string]any) (int, any, func()) {
	sessionID, _ := obj["session_id"].(string)
	responseURL, _ := obj["response_url"].(string)
	message, hasMsg := obj["message"]
	if sessionID == "" || !hasMsg || message == nil || message == "" || responseURL == "" {
		return http.StatusBadRequest, map[string]any{"success": false, "error": "Missing required fields"}, nil
	}
	if u, err := url.Parse(responseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return http.StatusBadRequest, map[string]any{"success": false, "error": "response_url is not an absolute http(s) URL"}, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return http.StatusServiceUnavailable, map[string]any{"success": false, "error": "sink is shutting down"}, nil
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.mu.Unlock()
		return http.StatusServiceUnavailable, map[string]any{"success": false, "error": "too many callbacks in flight"}, nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// The webhook-id is stable across herald's retries of one message: sent as the callback's
	// Idempotency-Key, it keeps a re-delivered message from producing its response twice.
	idemKey := r.Header.Get("webhook-id")
	text := fmt.Sprint(message)
	if _, ok := message.(string); !ok {
		b, _ := json.Marshal(message)
		text = string(b)
	}
	payload := map[string]any{
		"session_id": sessionID,
		"response_data": map[string]any{
			"text":      fmt.Sprintf("Received message: '%s'", text),
			"platform":  "Slack (simulated)",
			"timestamp": time.Now().UTC().Format(time.RFC3339),
		},
	}
	after := func() {
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.callback(sessionID, responseURL, idemKey, payload)
		}()
	}
	return http.StatusOK, map[string]any{"success": true, "message": "Response sent"}, after
}

// callback POSTs payload to responseURL after ReplyDelay and prints the outcome. The URL is
// printed without its query: it carries the session's token.
func (s *Sink) callback(sessionID, responseURL, idemKey string, payload any) {
	if s.cfg.ReplyDelay > 0 {
		t := time.NewTimer(s.cfg.ReplyDelay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.printf("   callback for session %s cancelled: the sink is shutting down\n", sessionID)
			return
		}
	}
	b, _ := json.Marshal(payload)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(b))
	if err != nil {
		s.printf("   callback for session %s: cannot build the request: %v\n", sessionID, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald-sink")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	start := time.Now()
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		s.printf("   callback for session %s to %s failed: %v\n", sessionID, egress.Redact(responseURL), redactErr(err, responseURL))
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	s.printf("   callback for session %s to %s -> %d in %s %s\n", sessionID, egress.Redact(responseURL), resp.StatusCode,
		time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(rb)))
}

// redactToken hides the token query parameter of a response_url in a body before it is printed:
// it is the session's callback secret.
func redactToken(body []byte) []byte {
	var m struct {
		ResponseURL string `json:"response_url"`
	}
	if json.Unmarshal(body, &m) != nil || m.ResponseURL == "" {
		return body
	}
	u, err := url.Parse(m.ResponseURL)
	if err != nil {
		return body
	}
	for _, tok := range u.Query()["token"] {
		if len(tok) >= 8 {
			body = bytes.ReplaceAll(body, []byte(tok), []byte("REDACTED"))
		}
	}
	return body
}

// redactErr removes the URL with its token from a client error.
func redactErr(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + egress.Redact(raw) + ": " + ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), raw, egress.Redact(raw))
}

func (s *Sink) print(p *printout) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.cfg.Out.Write(p.buf.Bytes())
}

func (s *Sink) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.cfg.Out, format, args...)
}
