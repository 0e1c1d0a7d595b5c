package receiver_test

// These tests run a whole herald in-process (package app, on the shared test Redis with a key
// prefix of their own) and point it at receiver.Handlers: what they check is what herald really
// sends. app does not import receiver, so this external test package may import app.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/daemontest"
	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/receiver"
)

const (
	subSecret   = "whsec_c3Vic2NyaWJlciBzZWNyZXQgMjQgYnl0ZXM=" // "subscriber secret 24 bytes"
	relaySecret = "whsec_cmVsYXkgc2lnbmluZyBzZWNyZXQgMjQgYnk=" // "relay signing secret 24 by"
	wait        = 15 * time.Second
)

// startHerald runs a herald on a free port against the shared test Redis, with a key prefix of
// its own, and stops it when the test ends (daemontest; TestMain checks its API against the
// OpenAPI document).
func startHerald(t *testing.T, mutate func(*app.Config)) string {
	t.Helper()
	cfg := daemontest.Config(t)
	mutate(&cfg)
	ln := daemontest.Listen(t)
	cfg.PublicURL = "http://" + ln.Addr().String()
	base, _, _ := daemontest.ServeOn(t, cfg, ln, nil)
	return base
}

func TestMain(m *testing.M) { os.Exit(apitest.Run(m)) }

// api calls herald's API and decodes its JSON answer, failing t unless the status is want.
func api(t *testing.T, method, url, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	return m
}

// raw is a request as it reached an endpoint, with the Handler's answer.
type raw struct {
	header http.Header
	body   []byte
	status int
}

// got is one callback of an endpoint's Handler.
type got struct {
	d receiver.Delivery
	v any
}

// endpoint is an httptest server whose handler is a receiver.Handler. It keeps every request with
// its answer, and hands each callback's payload to the channel of its kind.
type endpoint struct {
	*httptest.Server
	handler *receiver.Handler
	calls   map[string]chan got // by callback: update, republish, unpublish, message, response

	mu   sync.Mutex
	reqs []raw
}

func newEndpoint(t *testing.T, cfg receiver.Config) *endpoint {
	t.Helper()
	e := &endpoint{calls: map[string]chan got{}}
	for _, k := range []string{"update", "republish", "unpublish", "message", "response"} {
		e.calls[k] = make(chan got, 16)
	}
	cfg.OnUpdate = func(_ context.Context, d receiver.Delivery, n *receiver.UpdateNotification) error {
		return e.put("update", d, n)
	}
	cfg.OnRepublish = func(_ context.Context, d receiver.Delivery, r *receiver.ChannelRequest) error {
		return e.put("republish", d, r)
	}
	cfg.OnUnpublish = func(_ context.Context, d receiver.Delivery, r *receiver.ChannelRequest) error {
		return e.put("unpublish", d, r)
	}
	cfg.OnMessage = func(_ context.Context, d receiver.Delivery, m *receiver.RelayedMessage) error {
		return e.put("message", d, m)
	}
	cfg.OnResponse = func(_ context.Context, d receiver.Delivery, r *receiver.ForwardedResponse) error {
		return e.put("response", d, r)
	}
	h, err := receiver.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.handler = h
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) put(kind string, d receiver.Delivery, v any) error {
	e.calls[kind] <- got{d, v}
	return nil
}

// serve records the request and the Handler's answer to it.
func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, r)
	e.mu.Lock()
	e.reqs = append(e.reqs, raw{r.Header.Clone(), body, rec.Code})
	e.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// requests returns the requests whose body contains s.
func (e *endpoint) requests(s string) []raw {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []raw
	for _, r := range e.reqs {
		if bytes.Contains(r.body, []byte(s)) {
			out = append(out, r)
		}
	}
	return out
}

// call waits for the next callback of kind.
func (e *endpoint) call(t *testing.T, kind string) got {
	t.Helper()
	return testutil.Receive(t, e.calls[kind], wait, "a "+kind+" callback")
}

// replay sends a recorded request to h, with its body changed by edit, and returns the status.
func replay(h http.Handler, r raw, edit func([]byte) []byte) int {
	req := httptest.NewRequest("POST", "/hook", bytes.NewReader(edit(bytes.Clone(r.body))))
	req.Header = r.header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func same(b []byte) []byte { return b }

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// within reports whether d's timestamp is between from and to, to the second.
func within(d receiver.Delivery, from, to time.Time) bool {
	return !d.Timestamp.Before(from.Truncate(time.Second)) && !d.Timestamp.After(to)
}
