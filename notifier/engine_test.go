package notifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/webhooksig"
)

func TestDeliverSignedOnce(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "sub:a", URL: rc.URL + "/hook?token=s3cret", Secret: testSecret})
	body := []byte(`{"type":"update_notification"}`)
	ids := enqueue(t, e, Request{EndpointID: "sub:a", Body: body, EventID: "evt_1", SubscriberID: "a", Kind: "notification"})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)

	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	h := got[0].header
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "herald/test" {
		t.Errorf("headers: %v", h)
	}
	if h.Get(webhooksig.HeaderID) != ids[0] {
		t.Errorf("webhook-id %q, want %q", h.Get(webhooksig.HeaderID), ids[0])
	}
	if err := webhooksig.Verify(testSecret, h, got[0].body, time.Minute); err != nil {
		t.Errorf("signature: %v", err)
	}
	if string(got[0].body) != string(body) {
		t.Errorf("body %q", got[0].body)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 204 || d.Attempts[0].Error != "" {
		t.Errorf("attempts: %+v", d.Attempts)
	}
	if d.NextAttemptAt != nil || d.EventID != "evt_1" || d.SubscriberID != "a" || d.Kind != "notification" {
		t.Errorf("record: %+v", d)
	}
	if strings.Contains(d.Target, "s3cret") || !strings.HasSuffix(d.Target, "/hook") {
		t.Errorf("target %q must be redacted", d.Target)
	}
	testutil.Eventually(t, time.Second, "an outcome", func() bool { return len(b.outcomes()) == 1 })
	if o := b.outcomes()[0]; !o.Delivered || !o.Tried || o.StatusCode != 204 || o.EventID != "evt_1" || o.SubscriberID != "a" {
		t.Errorf("outcome: %+v", o)
	}
	// The record expires after the retention; the backlog is back to zero.
	if ttl := b.rdb.TTL(context.Background(), e.base().k.record(ids[0])).Val(); ttl <= 0 {
		t.Errorf("finished record has no expiry (ttl %v)", ttl)
	}
	if n, _ := b.rdb.Get(context.Background(), e.base().k.backlog()).Int(); n != 0 {
		t.Errorf("backlog %d after delivery, want 0", n)
	}
}

// Credentials in an endpoint URL are sent as HTTP Basic auth, as any HTTP client would, and kept
// out of the record.
func TestURLCredentialsSentAsBasicAuth(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: strings.Replace(rc.URL, "http://", "http://hook:pa55@", 1) + "/in"})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	req := &http.Request{Header: got[0].header}
	if u, p, ok := req.BasicAuth(); !ok || u != "hook" || p != "pa55" {
		t.Errorf("basic auth %q %q %v, want hook pa55", u, p, ok)
	}
	if strings.Contains(d.Target, "pa55") {
		t.Errorf("target %q shows the password", d.Target)
	}
}

func TestRetry500ThenSuccess(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "boom")
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: testSecret})
	ids := enqueue(t, e, Request{ID: "dlv-500", EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 3 {
		t.Fatalf("attempts %+v, want 3", d.Attempts)
	}
	if d.Attempts[0].StatusCode != 500 || d.Attempts[0].Response != "boom" || d.Attempts[0].Error == "" {
		t.Errorf("first attempt %+v", d.Attempts[0])
	}
	got := rc.received()
	for i, r := range got {
		if r.header.Get(webhooksig.HeaderID) != "dlv-500" {
			t.Errorf("try %d webhook-id %q: must be stable", i, r.header.Get(webhooksig.HeaderID))
		}
		if err := webhooksig.Verify(testSecret, r.header, r.body, time.Minute); err != nil {
			t.Errorf("try %d: %v", i, err)
		}
	}
	// The waits follow the schedule (50ms, 100ms with ±10% jitter).
	if gap := got[1].at.Sub(got[0].at); gap < 40*time.Millisecond {
		t.Errorf("first retry after %s, want about 50ms", gap)
	}
	if gap := got[2].at.Sub(got[1].at); gap < 85*time.Millisecond {
		t.Errorf("second retry after %s, want about 100ms", gap)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	got := rc.received()
	if gap := got[1].at.Sub(got[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want >= 1s", gap)
	}
	if d.Attempts[0].StatusCode != 429 {
		t.Errorf("attempts %+v", d.Attempts)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.MaxRetryAfter = 200 * time.Millisecond })
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 3*time.Second)
	got := rc.received()
	if gap := got[1].at.Sub(got[0].at); gap < 180*time.Millisecond || gap > 2*time.Second {
		t.Errorf("retried %s after Retry-After: 3600 capped at 200ms", gap)
	}
}

func TestTimeoutThenSuccess(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.RequestTimeout = 200 * time.Millisecond })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc := newReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // never answers in time
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 2 || d.Attempts[0].StatusCode != 0 || !strings.Contains(d.Attempts[0].Error, "no answer within") {
		t.Fatalf("attempts %+v", d.Attempts)
	}
	if d.Attempts[0].DurationMS < 150 || d.Attempts[0].DurationMS > 1500 {
		t.Errorf("timed-out try took %dms, want about 200", d.Attempts[0].DurationMS)
	}
}

// resetListener accepts connections and resets them at once for the first n, then serves.
func TestConnectionResetThenSuccess(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var resets atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if resets.Add(1) <= 2 {
			// Hijack and reset the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://" + ln.Addr().String() + "/x"})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})
	d := waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 3 || d.Attempts[0].StatusCode != 0 || d.Attempts[0].Error == "" {
		t.Fatalf("attempts %+v", d.Attempts)
	}
	var reasons []string
	for _, o := range b.outcomes() {
		reasons = append(reasons, o.Reason)
	}
	if reasons[0] != ReasonNetwork {
		t.Errorf("reasons %v, want network first", reasons)
	}
}

func TestDeadLetterThenReplay(t *testing.T) {
	t.Parallel()
	e, b := setup(t, func(c *Config) { c.BreakerFailures = 100 })
	rc, fail := failingReceiver(t, http.StatusBadGateway, true)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL})
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`), SubscriberID: "s1", EventID: "e1"})
	d := waitStatus(t, e, ids[0], StatusFailed, 5*time.Second)
	if len(d.Attempts) != 4 || d.DeadReason != ReasonMaxTries || d.NextAttemptAt != nil {
		t.Fatalf("dead delivery %+v", d)
	}
	// The record turns failed just before the outcome reaches the listeners.
	var last Outcome
	testutil.Eventually(t, 5*time.Second, "the dead-letter outcome", func() bool {
		os := b.outcomes()
		last = os[len(os)-1]
		return last.Dead
	})
	if last.Reason != ReasonHTTP5xx {
		t.Errorf("last outcome %+v", last)
	}
	// Listed as failed.
	ds, _, err := e.List(context.Background(), ListQuery{Status: StatusFailed, SubscriberID: "s1"})
	if err != nil || len(ds) != 1 || ds[0].ID != ids[0] {
		t.Fatalf("list failed: %v %+v", err, ds)
	}
	// Replay: fresh tries, delivered.
	fail.Store(false)
	if err := e.Retry(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	// The replay may be delivered before the second call: then that call replays it again.
	want := 5
	if err := e.Retry(context.Background(), ids[0]); err == nil {
		want = 6
	} else if !errors.Is(err, ErrPending) {
		t.Errorf("second retry while pending: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "the replays to be delivered", func() bool {
		d, _ = e.Get(context.Background(), ids[0])
		return d != nil && d.Status == StatusDelivered && len(d.Attempts) >= want
	})
	if len(d.Attempts) != want || d.DeadReason != "" {
		t.Errorf("after replay %+v", d)
	}
	if err := e.Retry(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry unknown: %v", err)
	}
}

func TestPutEndpointRefusesBadTargets(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, func(c *Config) { c.AllowPrivate = false; c.AllowHTTP = false })
	ctx := context.Background()
	for _, u := range []string{"http://example.com/", "https://127.0.0.1/", "https://169.254.169.254/latest", "ftp://x/", "", "https://localhost/"} {
		if err := e.PutEndpoint(ctx, Endpoint{ID: "ep", URL: u}); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("%q: %v, want ErrInvalidTarget", u, err)
		}
	}
	if err := e.PutEndpoint(ctx, Endpoint{ID: "ep", URL: "https://example.com/", Secret: "whsec_!!"}); !errors.Is(err, webhooksig.ErrBadSecret) {
		t.Errorf("bad secret: %v", err)
	} else if strings.Contains(err.Error(), "!!") {
		t.Errorf("error repeats the secret: %v", err)
	}
	if err := e.PutEndpoint(ctx, Endpoint{ID: "bad id", URL: "https://example.com/"}); err == nil {
		t.Error("bad endpoint id accepted")
	}
	if err := e.PutEndpoint(ctx, Endpoint{ID: "ep", URL: "https://example.com/", MaxInFlight: -1}); err == nil {
		t.Error("negative max in flight accepted")
	}
	if _, err := e.Enqueue(ctx, Request{EndpointID: "never", Body: []byte("{}")}); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("unknown endpoint: %v", err)
	}
}
