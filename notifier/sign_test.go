package notifier

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification's reference test vectors
// (libraries' "test_sign" with this secret, id, timestamp and payload).
func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	got, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"a":1}`)
	now := time.Now()
	sig, _ := Sign(testSecret, "msg_1", now, body)
	other := "whsec_" + strings.Repeat("QUFB", 8)
	otherSig, _ := Sign(other, "msg_1", now, body)
	h := func(id, ts, sig string) http.Header {
		x := http.Header{}
		x.Set(HeaderID, id)
		x.Set(HeaderTimestamp, ts)
		x.Set(HeaderSignature, sig)
		return x
	}
	ts := itoa(now.Unix())
	for _, c := range []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"valid", h("msg_1", ts, sig), body, true},
		{"rotation, ours second", h("msg_1", ts, otherSig+" "+sig), body, true},
		{"other secret only", h("msg_1", ts, otherSig), body, false},
		{"tampered body", h("msg_1", ts, sig), []byte(`{"a":2}`), false},
		{"other id", h("msg_2", ts, sig), body, false},
		{"old timestamp", h("msg_1", itoa(now.Add(-10*time.Minute).Unix()), sig), body, false},
		{"missing headers", http.Header{}, body, false},
		{"v2 scheme", h("msg_1", ts, strings.Replace(sig, "v1,", "v2,", 1)), body, false},
	} {
		err := Verify(testSecret, c.h, c.body, 5*time.Minute)
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v", c.name, err)
		}
		if err != nil && !errors.Is(err, ErrSignature) {
			t.Errorf("%s: error %v does not wrap ErrSignature", c.name, err)
		}
	}
	if _, err := Sign("whsec_", "m", now, body); !errors.Is(err, ErrBadSecret) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := Sign("sk_abc", "m", now, body); !errors.Is(err, ErrBadSecret) {
		t.Errorf("no prefix: %v", err)
	}
	if err := CheckSecret("whsec_c2hvcnQ="); !errors.Is(err, ErrBadSecret) || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("short key: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSecretRotationSignsWithBothFor24h(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e, _ := setup(t, func(c *Config) { c.Now = func() time.Time { return time.Unix(0, clock.Load()) } })
	rc := newReceiver(t, nil)
	old := testSecret
	fresh := "whsec_" + strings.Repeat("QkJC", 8)
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: old})
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: fresh}) // rotate
	ids := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{"n":1}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	r := rc.received()[0]
	if n := len(strings.Fields(r.header.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures during rotation, want 2", n)
	}
	for _, s := range []string{old, fresh} {
		if err := verifyAt(s, r, time.Unix(0, clock.Load())); err != nil {
			t.Errorf("during rotation: %v", err)
		}
	}
	// 24 h later only the new secret signs.
	clock.Add(int64(24*time.Hour + time.Minute))
	ids = enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{"n":2}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	r = rc.received()[1]
	if n := len(strings.Fields(r.header.Get(HeaderSignature))); n != 1 {
		t.Fatalf("%d signatures after the overlap, want 1", n)
	}
	if err := verifyAt(fresh, r, time.Unix(0, clock.Load())); err != nil {
		t.Error(err)
	}
	if err := verifyAt(old, r, time.Unix(0, clock.Load())); err == nil {
		t.Error("the old secret still verifies after 24 h")
	}
	// Putting the same secret again does not restart a rotation.
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: fresh})
	ids = enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{"n":3}`)})
	waitStatus(t, e, ids[0], StatusDelivered, 5*time.Second)
	if n := len(strings.Fields(rc.received()[2].header.Get(HeaderSignature))); n != 1 {
		t.Errorf("%d signatures after re-putting the same secret", n)
	}
}

// verifyAt verifies a received request whose timestamp came from the test clock.
func verifyAt(secret string, r received, now time.Time) error {
	return Verify(secret, r.header, r.body, time.Since(now).Abs()+time.Minute)
}
