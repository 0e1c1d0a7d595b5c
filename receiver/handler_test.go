package receiver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/receiver"
)

// calls records what a Handler's callbacks were given.
type calls struct {
	mu   sync.Mutex
	got  []string // "<callback> <delivery id>"
	last any
	errs []string // "<status> <error>" told to OnError
}

func (c *calls) add(name string, d receiver.Delivery, v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, name+" "+d.ID)
	c.last = v
	if s, ok := v.(*receiver.UpdateNotification); ok && s.Channel == "fail" {
		return errors.New("the database is down at db.internal:5432")
	}
	return nil
}

func newTestHandler(t *testing.T, mutate func(*receiver.Config)) (*receiver.Handler, *calls) {
	t.Helper()
	c := &calls{}
	cfg := receiver.Config{
		Secrets: []string{secretA},
		Token:   "tok",
		OnUpdate: func(_ context.Context, d receiver.Delivery, n *receiver.UpdateNotification) error {
			return c.add("update", d, n)
		},
		OnRepublish: func(_ context.Context, d receiver.Delivery, r *receiver.ChannelRequest) error {
			return c.add("republish", d, r)
		},
		OnUnpublish: func(_ context.Context, d receiver.Delivery, r *receiver.ChannelRequest) error {
			return c.add("unpublish", d, r)
		},
		OnMessage: func(_ context.Context, d receiver.Delivery, m *receiver.RelayedMessage) error {
			return c.add("message", d, m)
		},
		OnResponse: func(_ context.Context, d receiver.Delivery, r *receiver.ForwardedResponse) error {
			return c.add("response", d, r)
		},
		OnOther: func(_ context.Context, d receiver.Delivery, b []byte) error { return c.add("other", d, string(b)) },
		OnError: func(_ *http.Request, status int, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, http.StatusText(status)+": "+err.Error())
			c.mu.Unlock()
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := receiver.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

// request is a POST of body, signed with secret at ts unless secret is "".
func request(t *testing.T, body, secret string, ts time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest("POST", "/hook", strings.NewReader(body))
	if secret != "" {
		if err := receiver.SetHeaders(r.Header, "dlv_1", ts, []byte(body), secret); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

const (
	handshake = `{"token":"tok","type":"url_verification","challenge":"c-42"}`
	update    = `{"token":"tok","type":"update_notification","channel":"c1","chat_type":null,"update_type":"message_changed","message":{"a":1}}`
	republish = `{"token":"tok","type":"republish_request","channel":"c1","channel_data":"{\"channel_id\":\"c1\"}","chat_type":"slack"}`
	unpublish = `{"token":"tok","type":"unpublish_request","channel":"c1","channel_data":"{\"channel_id\":\"c1\"}","chat_type":"slack"}`
	message   = `{"session_id":"s1","message":"hi","response_url":"http://herald/webhook-response?token=x"}`
	response  = `{"session_id":"s1","channel_id":"c1","response_data":"ok","received_at":"2024-07-01T14:33:46.794Z"}`
)

// One rule per answer: each request gets the status the package documents, and exactly the
// callback its payload names (or none).
func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, c := range []struct {
		name     string
		mutate   func(*receiver.Config)
		req      func(t *testing.T) *http.Request
		status   int
		body     string // a part of the answer
		callback string // "" none
	}{
		{"unsigned handshake", nil, func(t *testing.T) *http.Request { return request(t, handshake, "", now) }, 200, `{"challenge":"c-42"}`, ""},
		{"signed handshake", nil, func(t *testing.T) *http.Request { return request(t, handshake, secretA, now) }, 200, `{"challenge":"c-42"}`, ""},
		{"handshake with a bad signature", nil, func(t *testing.T) *http.Request { return request(t, handshake, secretB, now) }, 401, "no v1 signature matches", ""},
		{"handshake with some of the signature headers", nil, func(t *testing.T) *http.Request {
			r := request(t, handshake, secretA, now)
			r.Header.Del(receiver.HeaderSignature)
			return r
		}, 401, "missing header", ""},
		{"handshake with another token", nil, func(t *testing.T) *http.Request {
			return request(t, strings.Replace(handshake, `"tok"`, `"other"`, 1), "", now)
		}, 403, "not this endpoint's verification token", ""},
		{"handshake, no token configured", func(c *receiver.Config) { c.Token = "" }, func(t *testing.T) *http.Request {
			return request(t, strings.Replace(handshake, `"tok"`, `"other"`, 1), "", now)
		}, 200, `{"challenge":"c-42"}`, ""},
		{"update_notification", nil, func(t *testing.T) *http.Request { return request(t, update, secretA, now) }, 204, "", "update dlv_1"},
		{"republish_request", nil, func(t *testing.T) *http.Request { return request(t, republish, secretA, now) }, 204, "", "republish dlv_1"},
		{"unpublish_request", nil, func(t *testing.T) *http.Request { return request(t, unpublish, secretA, now) }, 204, "", "unpublish dlv_1"},
		{"relayed message", nil, func(t *testing.T) *http.Request { return request(t, message, secretA, now) }, 204, "", "message dlv_1"},
		{"forwarded response", nil, func(t *testing.T) *http.Request { return request(t, response, secretA, now) }, 204, "", "response dlv_1"},
		{"another shape", nil, func(t *testing.T) *http.Request { return request(t, `{"type":"chat:channel:created"}`, secretA, now) }, 204, "", "other dlv_1"},
		{"another shape, no OnOther", func(c *receiver.Config) { c.OnOther = nil }, func(t *testing.T) *http.Request {
			return request(t, `{"type":"chat:channel:created"}`, secretA, now)
		}, 204, "", ""},
		{"no callback for it", func(c *receiver.Config) { c.OnUnpublish = nil }, func(t *testing.T) *http.Request { return request(t, unpublish, secretA, now) }, 204, "", ""},
		{"unsigned notification", nil, func(t *testing.T) *http.Request { return request(t, update, "", now) }, 401, "missing header: webhook-id", ""},
		{"wrong secret", nil, func(t *testing.T) *http.Request { return request(t, update, secretB, now) }, 401, "no v1 signature matches", ""},
		{"tampered body", nil, func(t *testing.T) *http.Request {
			tampered := httptest.NewRequest("POST", "/hook", strings.NewReader(strings.Replace(update, `"a":1`, `"a":2`, 1)))
			tampered.Header = request(t, update, secretA, now).Header
			return tampered
		}, 401, "no v1 signature matches", ""},
		{"old timestamp", nil, func(t *testing.T) *http.Request { return request(t, update, secretA, now.Add(-6*time.Minute)) }, 401, "timestamp too old", ""},
		{"old timestamp, longer tolerance", func(c *receiver.Config) { c.Tolerance = 10 * time.Minute }, func(t *testing.T) *http.Request {
			return request(t, update, secretA, now.Add(-6*time.Minute))
		}, 204, "", "update dlv_1"},
		{"the clock moved past the tolerance", func(c *receiver.Config) { c.Now = func() time.Time { return now.Add(time.Hour) } }, func(t *testing.T) *http.Request {
			return request(t, update, secretA, now)
		}, 401, "timestamp too old", ""},
		{"rotation: the old secret still accepted", func(c *receiver.Config) { c.Secrets = []string{secretB, secretA} }, func(t *testing.T) *http.Request {
			return request(t, update, secretA, now)
		}, 204, "", "update dlv_1"},
		{"notification with another token", nil, func(t *testing.T) *http.Request {
			return request(t, strings.Replace(update, `"tok"`, `"other"`, 1), secretA, now)
		}, 403, "verification token", ""},
		{"signed, not a payload", nil, func(t *testing.T) *http.Request { return request(t, `{"type":"update_notification"}`, secretA, now) }, 400, "channel is missing", ""},
		{"signed, not JSON", nil, func(t *testing.T) *http.Request { return request(t, `hello`, secretA, now) }, 400, "not a JSON object", ""},
		{"callback fails", nil, func(t *testing.T) *http.Request {
			return request(t, strings.Replace(update, `"c1"`, `"fail"`, 1), secretA, now)
		}, 500, "the callback failed", "update dlv_1"},
		{"GET", nil, func(t *testing.T) *http.Request { return httptest.NewRequest("GET", "/hook", nil) }, 405, "herald sends POST", ""},
		{"too large", func(c *receiver.Config) { c.MaxBodyBytes = 64 }, func(t *testing.T) *http.Request { return request(t, update, secretA, now) }, 413, "over the limit of 64 bytes", ""},
		{"at the size limit", func(c *receiver.Config) { c.MaxBodyBytes = int64(len(update)) }, func(t *testing.T) *http.Request {
			return request(t, update, secretA, now)
		}, 204, "", "update dlv_1"},
	} {
		h, calls := newTestHandler(t, c.mutate)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, c.req(t))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, rec.Code, rec.Body.String(), c.status, c.body)
		}
		want := []string{c.callback}
		if c.callback == "" {
			want = nil
		}
		if strings.Join(calls.got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: callbacks %q, want %q", c.name, calls.got, want)
		}
		if (c.status >= 400) != (len(calls.errs) == 1) {
			t.Errorf("%s: OnError heard %q", c.name, calls.errs)
		}
		if c.status == 405 && rec.Header().Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", c.name, rec.Header().Get("Allow"))
		}
	}
}

// The callback's error goes to OnError, not to herald; no answer or error holds a secret.
func TestHandlerKeepsErrorsAndSecretsIn(t *testing.T) {
	t.Parallel()
	h, calls := newTestHandler(t, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(t, strings.Replace(update, `"c1"`, `"fail"`, 1), secretA, time.Now()))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "db.internal") {
		t.Fatalf("callback error: %d %q; want 500 without the callback's error", rec.Code, rec.Body.String())
	}
	if len(calls.errs) != 1 || !strings.Contains(calls.errs[0], "db.internal:5432") {
		t.Fatalf("OnError heard %q, want the callback's error", calls.errs)
	}
	for _, body := range []string{update, handshake, `{"token":"x","type":"url_verification","challenge":"c"}`} {
		for _, secret := range []string{"", secretB} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(t, body, secret, time.Now().Add(-time.Hour)))
			if s := rec.Body.String(); strings.Contains(s, strings.TrimPrefix(secretA, "whsec_")) || strings.Contains(s, "tok\"") {
				t.Errorf("an answer holds a secret: %q", s)
			}
		}
	}
	for _, e := range calls.errs {
		if strings.Contains(e, strings.TrimPrefix(secretA, "whsec_")) {
			t.Errorf("an error holds the secret: %q", e)
		}
	}
}

func TestHandlerDecodesWhatItPasses(t *testing.T) {
	t.Parallel()
	h, calls := newTestHandler(t, nil)
	h.ServeHTTP(httptest.NewRecorder(), request(t, republish, secretA, time.Now()))
	r, ok := calls.last.(*receiver.ChannelRequest)
	if !ok || r.Type != receiver.TypeRepublishRequest || r.Channel != "c1" || r.Doc.ChannelID != "c1" || r.ChatTypeName() != "slack" {
		t.Fatalf("OnRepublish got %#v", calls.last)
	}
}

func TestNewHandlerNeedsASecret(t *testing.T) {
	t.Parallel()
	for _, secrets := range [][]string{nil, {"whsec_short"}, {"plain-text-secret-xxxxxxxx"}} {
		if _, err := receiver.NewHandler(receiver.Config{Secrets: secrets}); !errors.Is(err, receiver.ErrBadSecret) {
			t.Errorf("secrets %q: %v, want ErrBadSecret", secrets, err)
		}
	}
}
