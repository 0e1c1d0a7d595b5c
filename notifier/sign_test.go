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

// The signing itself is tested in package webhooksig; these check that the engine's names for it
// reach it: the reference vector through the forwards, and the engine's signer and header.
func TestSignForwardsToWebhooksig(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		unix   = 1614265330
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	if got, err := Sign(secret, id, time.Unix(unix, 0), []byte(body)); got != want || err != nil {
		t.Errorf("Sign = %s, %v; want %s", got, err, want)
	}
	key, err := secretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := secretKey(testSecret)
	cur, prev := newSigner(key), newSigner(other)
	if got := signatureHeader(id, unix, []byte(body), cur, nil); got != want {
		t.Errorf("signatureHeader = %s, want %s", got, want)
	}
	if got := signatureHeader(id, unix, []byte(body), cur, prev); !strings.HasPrefix(got, want+" v1,") {
		t.Errorf("signatureHeader during rotation = %s", got)
	}
	now := time.Now()
	h := http.Header{}
	h.Set(HeaderID, "msg_1")
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, signatureHeader("msg_1", now.Unix(), []byte("{}"), prev, cur))
	if err := Verify(secret, h, []byte("{}"), time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify(secret, h, []byte("{ }"), time.Minute); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify of a tampered body: %v", err)
	}
	if _, err := secretKey("sk_abc"); !errors.Is(err, ErrBadSecret) || CheckSecret("sk_abc") == nil {
		t.Errorf("secretKey(sk_abc): %v", err)
	}
	if s := NewSecret(); CheckSecret(s) != nil || !strings.HasPrefix(s, SecretPrefix) {
		t.Errorf("NewSecret = %q", s)
	}
}

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
