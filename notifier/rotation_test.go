package notifier

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

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
	if n := len(strings.Fields(r.header.Get(webhooksig.HeaderSignature))); n != 2 {
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
	if n := len(strings.Fields(r.header.Get(webhooksig.HeaderSignature))); n != 1 {
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
	if n := len(strings.Fields(rc.received()[2].header.Get(webhooksig.HeaderSignature))); n != 1 {
		t.Errorf("%d signatures after re-putting the same secret", n)
	}
}

// verifyAt verifies a received request whose timestamp came from the test clock.
func verifyAt(secret string, r received, now time.Time) error {
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		return err
	}
	return webhooksig.NewSigner(key).Verify(r.header, r.body, time.Minute, now)
}
