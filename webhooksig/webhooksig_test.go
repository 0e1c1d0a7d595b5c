package webhooksig_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

// The Standard Webhooks specification's reference vector (the official libraries' "test_sign").
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecUnix   = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var (
	secretA = "whsec_" + strings.Repeat("QUFB", 8) // 24 bytes of "A"
	secretB = "whsec_" + strings.Repeat("QkJC", 8)
)

func mustSigner(t testing.TB, secret string) *webhooksig.Signer {
	t.Helper()
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return webhooksig.NewSigner(key)
}

func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	got, err := webhooksig.Sign(vecSecret, vecID, time.Unix(vecUnix, 0), []byte(vecBody))
	if err != nil || got != vecSig {
		t.Fatalf("Sign = %s, %v; want %s", got, err, vecSig)
	}
	s := mustSigner(t, vecSecret)
	for range 3 { // pooled states are reset between uses
		if got := s.Sign(vecID, vecUnix, []byte(vecBody)); got != vecSig {
			t.Fatalf("Signer.Sign = %s, want %s", got, vecSig)
		}
	}
	h := http.Header{}
	h.Set(webhooksig.HeaderID, vecID)
	h.Set(webhooksig.HeaderTimestamp, strconv.Itoa(vecUnix))
	h.Set(webhooksig.HeaderSignature, vecSig)
	if err := s.Verify(h, []byte(vecBody), 0, time.Unix(vecUnix+60, 0)); err != nil {
		t.Fatalf("the reference vector does not verify: %v", err)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	a, b := mustSigner(t, secretA), mustSigner(t, secretB)
	body := []byte(`{"a":1}`)
	sa, sb := a.Sign("m", 7, body), b.Sign("m", 7, body)
	long := strings.Repeat("x", 300) // past the stack buffers
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"one", webhooksig.Header("m", 7, body, a), sa},
		{"rotation", webhooksig.Header("m", 7, body, b, a), sb + " " + sa},
		{"nil skipped", webhooksig.Header("m", 7, body, nil, a, nil), sa},
		{"none", webhooksig.Header("m", 7, body), ""},
		{"long id", webhooksig.Header(long, 7, body, a, b), a.Sign(long, 7, body) + " " + b.Sign(long, 7, body)},
	} {
		if c.got != c.want {
			t.Errorf("%s: Header = %q, want %q", c.name, c.got, c.want)
		}
	}
	if sa == sb || len(sa) != len("v1,")+44 {
		t.Errorf("signatures %q, %q", sa, sb)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	sig, _ := webhooksig.Sign(secretA, "msg_1", now, body)
	otherSig, _ := webhooksig.Sign(secretB, "msg_1", now, body)
	ts := strconv.FormatInt(now.Unix(), 10)
	h := func(id, ts, sig string) http.Header {
		x := http.Header{}
		x.Set(webhooksig.HeaderID, id)
		x.Set(webhooksig.HeaderTimestamp, ts)
		x.Set(webhooksig.HeaderSignature, sig)
		return x
	}
	s := mustSigner(t, secretA)
	for _, c := range []struct {
		name string
		h    http.Header
		body []byte
		at   time.Time
		ok   bool
	}{
		{"valid", h("msg_1", ts, sig), body, now, true},
		{"rotation, ours second", h("msg_1", ts, otherSig+" "+sig), body, now, true},
		{"extra spaces", h("msg_1", ts, "  "+otherSig+"   "+sig+" "), body, now, true},
		{"within tolerance", h("msg_1", ts, sig), body, now.Add(5 * time.Minute), true},
		{"other secret only", h("msg_1", ts, otherSig), body, now, false},
		{"tampered body", h("msg_1", ts, sig), []byte(`{"a":2}`), now, false},
		{"other id", h("msg_2", ts, sig), body, now, false},
		{"old timestamp", h("msg_1", ts, sig), body, now.Add(5*time.Minute + time.Second), false},
		{"future timestamp", h("msg_1", ts, sig), body, now.Add(-6 * time.Minute), false},
		{"timestamp not a number", h("msg_1", ts+"x", sig), body, now, false},
		{"missing headers", http.Header{}, body, now, false},
		{"v2 scheme", h("msg_1", ts, strings.Replace(sig, "v1,", "v2,", 1)), body, now, false},
		{"no scheme", h("msg_1", ts, strings.TrimPrefix(sig, "v1,")), body, now, false},
		{"truncated", h("msg_1", ts, sig[:len(sig)-2]), body, now, false},
	} {
		err := s.Verify(c.h, c.body, 5*time.Minute, c.at)
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v", c.name, err)
		}
		if err != nil && !errors.Is(err, webhooksig.ErrSignature) {
			t.Errorf("%s: error %v does not wrap ErrSignature", c.name, err)
		}
	}
	// The package function checks against the wall clock.
	fresh, _ := webhooksig.Sign(secretA, "msg_1", time.Now(), body)
	if err := webhooksig.Verify(secretA, h("msg_1", strconv.FormatInt(time.Now().Unix(), 10), fresh), body, 0); err != nil {
		t.Errorf("Verify now: %v", err)
	}
	if err := webhooksig.Verify("sk_abc", h("msg_1", ts, sig), body, 0); !errors.Is(err, webhooksig.ErrBadSecret) {
		t.Errorf("Verify with a bad secret: %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef\xff\xfe")
	for _, c := range []struct {
		name, secret string
		ok           bool
	}{
		{"standard", "whsec_" + base64.StdEncoding.EncodeToString(key), true},
		{"unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(key), true},
		{"url-safe", "whsec_" + base64.RawURLEncoding.EncodeToString(key), true},
		{"url-safe padded", "whsec_" + base64.URLEncoding.EncodeToString(key), true},
		{"empty key", "whsec_", false},
		{"no prefix", "sk_abc", false},
		{"not base64", "whsec_!!!!", false},
		{"short key", "whsec_c2hvcnQ=", false},
		{"15 bytes", "whsec_" + base64.StdEncoding.EncodeToString(key[:15]), false},
	} {
		got, err := webhooksig.ParseSecret(c.secret)
		if c.ok && (err != nil || string(got) != string(key)) {
			t.Errorf("%s: ParseSecret = %q, %v", c.name, got, err)
		}
		if !c.ok && !errors.Is(err, webhooksig.ErrBadSecret) {
			t.Errorf("%s: ParseSecret error %v, want ErrBadSecret", c.name, err)
		}
		if secret := strings.TrimPrefix(c.secret, "whsec_"); !c.ok && secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: ParseSecret's error repeats the secret: %v", c.name, err)
		}
		if cerr := webhooksig.CheckSecret(c.secret); (cerr == nil) != c.ok {
			t.Errorf("%s: CheckSecret = %v", c.name, cerr)
		}
	}
	if err := webhooksig.CheckSecret(""); err != nil {
		t.Errorf(`CheckSecret("") = %v; "" means unsigned`, err)
	}
	if err := webhooksig.CheckSecret("whsec_c2hvcnQ="); err == nil || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("the error repeats the secret: %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := webhooksig.NewSecret(), webhooksig.NewSecret()
	if a == b || !strings.HasPrefix(a, webhooksig.SecretPrefix) {
		t.Fatalf("NewSecret = %q, %q", a, b)
	}
	key, err := webhooksig.ParseSecret(a)
	if err != nil || len(key) != 24 {
		t.Fatalf("NewSecret's key: %d bytes, %v", len(key), err)
	}
}

func TestSignerConcurrent(t *testing.T) {
	t.Parallel()
	s := mustSigner(t, vecSecret)
	done := make(chan string)
	for range 8 {
		go func() {
			var got string
			for range 200 {
				if got = s.Sign(vecID, vecUnix, []byte(vecBody)); got != vecSig {
					break
				}
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != vecSig {
			t.Fatalf("concurrent Sign = %s", got)
		}
	}
}

func BenchmarkSignerSign(b *testing.B) {
	s := mustSigner(b, secretA)
	body := []byte(strings.Repeat(`{"type":"update_notification"}`, 30))
	b.ReportAllocs()
	for b.Loop() {
		_ = webhooksig.Header("msg_p5jXN8AQM9LWM0D4loKWxJek", vecUnix, body, s)
	}
}

func BenchmarkSignerVerify(b *testing.B) {
	s := mustSigner(b, secretA)
	body := []byte(strings.Repeat(`{"type":"update_notification"}`, 30))
	h := http.Header{}
	h.Set(webhooksig.HeaderID, vecID)
	h.Set(webhooksig.HeaderTimestamp, strconv.Itoa(vecUnix))
	h.Set(webhooksig.HeaderSignature, s.Sign(vecID, vecUnix, body))
	now := time.Unix(vecUnix, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(h, body, 0, now); err != nil {
			b.Fatal(err)
		}
	}
}
