package receiver_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/receiver"
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
	secretB = "whsec_" + strings.Repeat("QkJC", 8) // 24 bytes of "B"
)

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	h.Set(receiver.HeaderID, id)
	h.Set(receiver.HeaderTimestamp, ts)
	h.Set(receiver.HeaderSignature, sig)
	return h
}

func mustVerifier(t testing.TB, tolerance time.Duration, secrets ...string) *receiver.Verifier {
	t.Helper()
	v, err := receiver.NewVerifier(secrets, tolerance)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignMatchesTheSpecificationVector(t *testing.T) {
	t.Parallel()
	got, err := receiver.Sign(vecID, time.Unix(vecUnix, 0), []byte(vecBody), vecSecret)
	if err != nil || got != vecSig {
		t.Fatalf("Sign = %q, %v; want %q", got, err, vecSig)
	}
	d, err := mustVerifier(t, 0, vecSecret).VerifyAt(headers(vecID, strconv.Itoa(vecUnix), vecSig), []byte(vecBody), time.Unix(vecUnix+60, 0))
	if err != nil || d.ID != vecID || !d.Timestamp.Equal(time.Unix(vecUnix, 0)) {
		t.Fatalf("the reference vector: %+v, %v", d, err)
	}
}

// herald signs with webhooksig: the receiver computes the same signatures, for every secret
// encoding herald accepts.
func TestSignMatchesHeraldsSigner(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{vecSecret, secretA, "whsec_" + strings.Repeat("_-8", 12), "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ"} {
		for _, body := range []string{"", `{"a":1}`, "héllo\n" + strings.Repeat("x", 5000)} {
			want, err := webhooksig.Sign(secret, "evt_1.sub_2", time.Unix(1_700_000_000, 0), []byte(body))
			if err != nil {
				t.Fatalf("webhooksig.Sign(%s): %v", secret, err)
			}
			got, err := receiver.Sign("evt_1.sub_2", time.Unix(1_700_000_000, 0), []byte(body), secret)
			if err != nil || got != want {
				t.Errorf("secret %s, body %.10q: receiver signs %q, %v; herald signs %q", secret, body, got, err, want)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sigA, _ := receiver.Sign("msg_1", now, body, secretA)
	sigB, _ := receiver.Sign("msg_1", now, body, secretB)
	both, _ := receiver.Sign("msg_1", now, body, secretB, secretA)
	onlyA := mustVerifier(t, 5*time.Minute, secretA)
	aOrB := mustVerifier(t, 5*time.Minute, secretB, secretA)
	for _, c := range []struct {
		name string
		v    *receiver.Verifier
		h    http.Header
		body []byte
		at   time.Time
		want error // nil: verifies
	}{
		{"valid", onlyA, headers("msg_1", ts, sigA), body, now, nil},
		{"rotation header, ours second", onlyA, headers("msg_1", ts, sigB+" "+sigA), body, now, nil},
		{"rotation header from Sign", onlyA, headers("msg_1", ts, both), body, now, nil},
		{"extra spaces", onlyA, headers("msg_1", ts, "  "+sigB+"   "+sigA+" "), body, now, nil},
		{"two secrets, the second matches", aOrB, headers("msg_1", ts, sigA), body, now, nil},
		{"at the tolerance, past", onlyA, headers("msg_1", ts, sigA), body, now.Add(5 * time.Minute), nil},
		{"at the tolerance, future", onlyA, headers("msg_1", ts, sigA), body, now.Add(-5 * time.Minute), nil},
		{"other secret only", onlyA, headers("msg_1", ts, sigB), body, now, receiver.ErrNoMatch},
		{"tampered body", onlyA, headers("msg_1", ts, sigA), []byte(`{"a":2}`), now, receiver.ErrNoMatch},
		{"other id", onlyA, headers("msg_2", ts, sigA), body, now, receiver.ErrNoMatch},
		{"other timestamp", onlyA, headers("msg_1", strconv.FormatInt(now.Unix()+1, 10), sigA), body, now, receiver.ErrNoMatch},
		{"v2 scheme", onlyA, headers("msg_1", ts, strings.Replace(sigA, "v1,", "v2,", 1)), body, now, receiver.ErrNoMatch},
		{"no scheme", onlyA, headers("msg_1", ts, strings.TrimPrefix(sigA, "v1,")), body, now, receiver.ErrNoMatch},
		{"truncated", onlyA, headers("msg_1", ts, sigA[:len(sigA)-2]), body, now, receiver.ErrNoMatch},
		{"old timestamp", onlyA, headers("msg_1", ts, sigA), body, now.Add(5*time.Minute + time.Second), receiver.ErrTooOld},
		{"future timestamp", onlyA, headers("msg_1", ts, sigA), body, now.Add(-5*time.Minute - time.Second), receiver.ErrTooNew},
		{"longer tolerance", mustVerifier(t, time.Hour, secretA), headers("msg_1", ts, sigA), body, now.Add(59 * time.Minute), nil},
		{"timestamp in ms", onlyA, headers("msg_1", ts+"000", sigA), body, now, receiver.ErrTooNew},
		{"timestamp not a number", onlyA, headers("msg_1", ts+"x", sigA), body, now, receiver.ErrBadTimestamp},
		{"no headers", onlyA, http.Header{}, body, now, receiver.ErrMissingHeader},
		{"no id", onlyA, headers("", ts, sigA), body, now, receiver.ErrMissingHeader},
		{"no signature", onlyA, headers("msg_1", ts, ""), body, now, receiver.ErrMissingHeader},
	} {
		d, err := c.v.VerifyAt(c.h, c.body, c.at)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v, want it to verify", c.name, err)
		case c.want == nil && (d.ID != "msg_1" || !d.Timestamp.Equal(now)):
			t.Errorf("%s: delivery %+v, want msg_1 at %s", c.name, d, now)
		case c.want != nil && (!errors.Is(err, c.want) || !errors.Is(err, receiver.ErrSignature)):
			t.Errorf("%s: err = %v, want %v (an ErrSignature)", c.name, err, c.want)
		}
	}
}

// The errors name the problem: the missing header, how old the timestamp is.
func TestVerifyErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	v := mustVerifier(t, 0, secretA)
	now := time.Unix(1_700_000_000, 0)
	sig, _ := receiver.Sign("m", now, nil, secretA)
	for _, c := range []struct {
		h    http.Header
		at   time.Time
		want string
	}{
		{headers("m", "1700000000", ""), now, "missing header: webhook-signature"},
		{headers("", "1700000000", sig), now, "missing header: webhook-id"},
		{headers("m", "", sig), now, "missing header: webhook-timestamp"},
		{headers("m", "1700000000", sig), now.Add(time.Hour), "timestamp too old: signed 1h0m0s ago, the tolerance is 5m0s"},
		{headers("m", "1700000000", sig), now.Add(-10 * time.Minute), "timestamp too new: signed 10m0s in the future"},
	} {
		if _, err := v.VerifyAt(c.h, nil, c.at); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want it to say %q", err, c.want)
		}
	}
}

// A malformed secret is refused up front, by position; no error ever repeats a secret.
func TestSecrets(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		secrets []string
		ok      bool
	}{
		{"standard base64", []string{vecSecret}, true},
		{"unpadded", []string{"whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ"}, true},
		{"URL-safe", []string{"whsec_" + strings.Repeat("_-8", 12)}, true},
		{"several", []string{secretA, secretB}, true},
		{"none", nil, false},
		{"empty", []string{""}, false},
		{"no prefix", []string{strings.TrimPrefix(vecSecret, "whsec_")}, false},
		{"prefix only", []string{"whsec_"}, false},
		{"not base64", []string{"whsec_not*base64*at*all*sorry"}, false},
		{"15 bytes", []string{"whsec_QUFBQUFBQUFBQUFBQUFB"}, false},
		{"second one bad", []string{secretA, "whsec_s3cr3t!!"}, false},
	} {
		_, err := receiver.NewVerifier(c.secrets, 0)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, receiver.ErrBadSecret) {
			t.Errorf("%s: %v is not ErrBadSecret", c.name, err)
		}
		for _, s := range c.secrets {
			if b64 := strings.TrimPrefix(s, "whsec_"); len(b64) > 3 && strings.Contains(err.Error(), b64) {
				t.Errorf("%s: the error %q repeats a secret", c.name, err)
			}
		}
	}
	if _, err := receiver.NewVerifier([]string{secretA, "whsec_x"}, 0); err == nil || !strings.Contains(err.Error(), "secret 2 of 2") {
		t.Errorf("the error %v does not say which secret is bad", err)
	}
	if _, err := receiver.Sign("m", time.Now(), nil); !errors.Is(err, receiver.ErrBadSecret) {
		t.Errorf("Sign with no secret: %v", err)
	}
}

func TestVerifyOneOff(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	body := []byte(`{}`)
	if err := receiver.SetHeaders(h, "m1", time.Now(), body, secretA); err != nil {
		t.Fatal(err)
	}
	if d, err := receiver.Verify(secretA, h, body); err != nil || d.ID != "m1" {
		t.Fatalf("Verify: %+v %v", d, err)
	}
	if _, err := receiver.Verify(secretB, h, body); !errors.Is(err, receiver.ErrNoMatch) {
		t.Fatalf("Verify with another secret: %v", err)
	}
	if _, err := receiver.Verify("nope", h, body); !errors.Is(err, receiver.ErrBadSecret) {
		t.Fatalf("Verify with a bad secret: %v", err)
	}
}
