package events

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/subscribers"
)

// bundle is the service under test with its real collaborators: Redis, the channel and subscriber
// stores, the delivery engine, and an HTTP server with the service's routes.
type bundle struct {
	rdb    redis.UniversalClient
	prefix string
	chans  *channels.Store
	subs   *subscribers.Store
	eng    *notifier.Engine
	svc    *Service
	api    *httptest.Server
}

type setupOpts struct {
	cfg         Config          // service config; Prefix is set by setup
	engine      notifier.Config // engine config; Prefix and target rules are set by setup
	startEngine bool            // run the engine's workers (deliveries are sent)
	embedded    bool            // use the embedded store (miniredis) instead of redis-server
	wrapEngine  func(Engine) Engine
}

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	ctx := context.Background()
	var rdb redis.UniversalClient
	var prefix string
	if o.embedded {
		conn, err := redisx.Open(ctx, redisx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		rdb, prefix = conn.Client, "herald"
	} else {
		rdb, prefix = redistest.Shared(t)
	}
	b := &bundle{rdb: rdb, prefix: prefix}
	b.chans = channels.NewStore(rdb, prefix, channels.WithPolicy(egress.Policy{AllowHTTP: true, AllowPrivate: true}))
	b.subs = subscribers.NewStore(rdb, prefix)
	ecfg := o.engine
	ecfg.Prefix, ecfg.AllowHTTP, ecfg.AllowPrivate = prefix, true, true
	if ecfg.RetrySchedule == nil {
		ecfg.RetrySchedule = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	}
	ecfg.RequestTimeout = cmp.Or(ecfg.RequestTimeout, 5*time.Second)
	eng, err := notifier.New(rdb, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	b.eng = eng
	if o.startEngine {
		b.startEngine(t)
	}
	cfg := o.cfg
	cfg.Prefix = prefix
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 50*time.Millisecond)
	var svcEngine Engine = eng
	if o.wrapEngine != nil {
		svcEngine = o.wrapEngine(eng)
	}
	b.svc, err = New(rdb, b.chans, b.subs, svcEngine, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	b.svc.Routes(r)
	b.api = httptest.NewServer(r)
	t.Cleanup(b.api.Close)
	apitest.Server(t, b.api)
	return b
}

// startEngine runs the engine's workers until the test ends.
func (b *bundle) startEngine(t *testing.T) { runUntilCleanup(t, b.eng.Start, b.eng.Stop, false) }

// startService runs the expansion workers until the test ends.
func (b *bundle) startService(t *testing.T) { runUntilCleanup(t, b.svc.Start, b.svc.Stop, true) }

// runUntilCleanup calls start now and stop when the test ends, reporting a stop error if
// reportStop is set.
func runUntilCleanup(t *testing.T, start, stop func(context.Context) error, reportStop bool) {
	t.Helper()
	if err := start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil && reportStop {
			t.Errorf("stop: %v", err)
		}
	})
}

func (b *bundle) channel(t *testing.T, c *channels.Channel) *channels.Channel {
	t.Helper()
	if c.ChannelMetadata == nil {
		c.ChannelMetadata = map[string]any{}
	}
	if _, ok := c.ChannelMetadata["endpoint_url"]; !ok {
		c.ChannelMetadata["endpoint_url"] = "http://127.0.0.1:5001/incoming"
	}
	got, err := b.chans.Create(context.Background(), c)
	if err != nil {
		t.Fatalf("create channel %s: %v", c.ChannelID, err)
	}
	return got
}

// subscriber creates a subscriber through the store, verifies it (unless pending is true) and
// registers its endpoint with the engine, as the subscribers component does once verified.
func (b *bundle) subscriber(t *testing.T, s subscribers.Subscriber, pending bool) *subscribers.Subscriber {
	t.Helper()
	ctx := context.Background()
	created, err := b.subs.Create(ctx, &s)
	if err != nil {
		t.Fatalf("create subscriber: %v", err)
	}
	if err := b.eng.PutEndpoint(ctx, notifier.Endpoint{ID: subscribers.EndpointID(created.ID), URL: created.URL, Secret: created.Secret,
		Ordered: created.Ordered}); err != nil {
		t.Fatalf("put endpoint: %v", err)
	}
	if !pending {
		b.verify(t, created.ID)
	}
	got, err := b.subs.Get(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// verify records a successful handshake for the given subscribers through the store's public
// verification API, and hands every other claimed handshake back.
func (b *bundle) verify(t testing.TB, ids ...string) {
	t.Helper()
	ctx := context.Background()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for len(want) > 0 {
		tasks, err := b.subs.ClaimVerifications(ctx, 1000, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) == 0 {
			t.Fatalf("no handshake queued for %d subscribers", len(want))
		}
		for _, task := range tasks {
			if !want[task.ID] {
				if err := b.subs.ReleaseVerification(ctx, task.ID); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if ok, err := b.subs.FinishVerification(ctx, task, ""); err != nil || !ok {
				t.Fatalf("finish verification of %s: applied=%v err=%v", task.ID, ok, err)
			}
			delete(want, task.ID)
		}
	}
}

// receiver is a webhook endpoint on loopback that records what it receives, by path.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]received
	n   int
	sig chan struct{} // receives a value after every request
}

type received struct {
	body   []byte
	header http.Header
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string][]received{}, sig: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got[req.URL.Path] = append(r.got[req.URL.Path], received{body: body, header: req.Header.Clone()})
		r.n++
		r.mu.Unlock()
		select {
		case r.sig <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url(path string) string { return r.srv.URL + "/" + path }

// wait waits until n requests in all have arrived.
func (r *receiver) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := r.n
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.sig:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", got, n)
		}
	}
}

func (r *receiver) bodies(path string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, g := range r.got["/"+path] {
		out = append(out, g.body)
	}
	return out
}

// call makes an API request and decodes the JSON answer.
func (b *bundle) call(t *testing.T, method, path string, body any, hdr map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.api.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d answer is not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// notify posts a notification and expects 202.
func (b *bundle) notify(t *testing.T, channelID string, body any) Accepted {
	t.Helper()
	st, out, _ := b.call(t, http.MethodPost, "/channel/"+channelID+"/notify", body, nil)
	if st != http.StatusAccepted {
		t.Fatalf("notify: %d %v", st, out)
	}
	id, _ := out["event_id"].(string)
	n, _ := out["subscribers"].(float64)
	if id == "" || len(out) != 2 {
		t.Fatalf("notify answer %v, want exactly event_id and subscribers", out)
	}
	return Accepted{EventID: id, Subscribers: int(n)}
}

// expand runs expansion in the test goroutine until no event is due.
func (b *bundle) expand(t *testing.T) {
	t.Helper()
	if _, err := b.svc.ExpandDue(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// deliveries lists every delivery of an event through the engine, page by page.
func (b *bundle) deliveries(t *testing.T, eventID string) []*notifier.Delivery {
	t.Helper()
	var all []*notifier.Delivery
	after := ""
	for {
		page, next, err := b.eng.List(context.Background(), notifier.ListQuery{EventID: eventID, Limit: 1000, After: after})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		after = next
	}
}

func keysOf(m map[string]any) string {
	return fmt.Sprint(slices.Sorted(maps.Keys(m)))
}
