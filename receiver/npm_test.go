package receiver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/receiver"
)

// npmDir holds the pinned official Standard Webhooks library (package.json, package-lock.json;
// scripts/test.sh and .ci/run install it with npm ci) and swh.js, which drives it.
const npmDir = "testdata/npm"

// requireToolsEnv, when set (.ci/run sets it), turns a missing node or npm package into a failure
// instead of a skip.
const requireToolsEnv = "HERALD_TEST_REQUIRE_TOOLS"

// node runs swh.js with mode and stdin, and returns what it printed. Without node, or without the
// library installed, the test fails when requireToolsEnv is set and is skipped (saying why)
// otherwise.
func node(t *testing.T, mode string, stdin []byte) []byte {
	t.Helper()
	bin, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed (apt-get install nodejs npm)"
	default:
		if _, err := os.Stat(filepath.Join(npmDir, "node_modules", "standardwebhooks")); err != nil {
			missing = "the standardwebhooks npm package is not installed: run (cd receiver/" + npmDir + " && npm ci), as scripts/test.sh does"
		}
	}
	if missing != "" {
		if os.Getenv(requireToolsEnv) != "" {
			t.Fatalf("cannot check against the official library: %s", missing)
		}
		t.Skipf("SKIPPED, not checked against the official library: %s (set %s=1 to make this a failure)", missing, requireToolsEnv)
	}
	cmd := exec.Command(bin, "swh.js", mode)
	cmd.Dir = npmDir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node swh.js %s: %v\n%s", mode, err, stderr.Bytes())
	}
	return out
}

// What the official library signs, the receiver verifies, and signs alike: fixed payloads (the
// specification's vector, a notification, unicode, empty, 100 kB) with keys of 16 to 64 bytes,
// and a rotation header carrying two secrets' signatures.
func TestVerifiesTheOfficialLibrarysSignatures(t *testing.T) {
	t.Parallel()
	var cases []struct {
		Name, Secret, ID, Body, Signature string
		Timestamp                         int64
	}
	if err := json.Unmarshal(node(t, "sign", nil), &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("the library signed %d cases, want the 27 swh.js makes", len(cases))
	}
	other := "whsec_" + "b3RoZXIgc2VjcmV0IG9mIDI0IGJ5dGVz" // "other secret of 24 bytes"
	for _, c := range cases {
		ts := time.Unix(c.Timestamp, 0)
		h := headers(c.ID, strconv.FormatInt(c.Timestamp, 10), c.Signature)
		if _, err := mustVerifier(t, 0, c.Secret).VerifyAt(h, []byte(c.Body), ts.Add(30*time.Second)); err != nil {
			t.Errorf("%s, secret %.12s…: the library's signature does not verify: %v", c.Name, c.Secret, err)
		}
		if _, err := mustVerifier(t, 0, other).VerifyAt(h, []byte(c.Body), ts); !errors.Is(err, receiver.ErrNoMatch) {
			t.Errorf("%s: verifies with another secret: %v", c.Name, err)
		}
		if _, err := mustVerifier(t, 0, c.Secret).VerifyAt(h, []byte(c.Body+" "), ts); !errors.Is(err, receiver.ErrNoMatch) {
			t.Errorf("%s: verifies a changed body: %v", c.Name, err)
		}
		if c.Name == "rotation" {
			continue
		}
		if sig, err := receiver.Sign(c.ID, ts, []byte(c.Body), c.Secret); err != nil || sig != c.Signature {
			t.Errorf("%s, secret %.12s…: receiver signs %q, %v; the library %q", c.Name, c.Secret, sig, err, c.Signature)
		}
	}
}

// What the receiver signs, the official library verifies, and refuses what it must: another
// secret, a changed body, a timestamp outside its 5 minutes either way.
func TestOfficialLibraryVerifiesTheReceiversSignatures(t *testing.T) {
	t.Parallel()
	type check struct {
		Name    string            `json:"name"`
		Secret  string            `json:"secret"`
		Body    string            `json:"body"`
		Headers map[string]string `json:"headers"`
		want    bool
	}
	now := time.Now()
	sign := func(name, verifyWith, body string, ts time.Time, want bool, secrets ...string) check {
		h := http.Header{}
		if err := receiver.SetHeaders(h, "msg_"+name, ts, []byte(body), secrets...); err != nil {
			t.Fatal(err)
		}
		hs := map[string]string{}
		for _, k := range []string{receiver.HeaderID, receiver.HeaderTimestamp, receiver.HeaderSignature} {
			hs[k] = h.Get(k)
		}
		return check{Name: name, Secret: verifyWith, Body: body, Headers: hs, want: want}
	}
	body := `{"token":"tok","type":"republish_request","channel":"c","channel_data":"{\"channel_id\":\"c\"}","chat_type":null}`
	key16 := "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	key64 := "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ=="
	checks := []check{
		sign("spec secret", vecSecret, body, now, true, vecSecret),
		sign("16-byte key", key16, body, now, true, key16),
		sign("64-byte key", key64, body, now, true, key64),
		sign("secret A", secretA, body, now, true, secretA),
		sign("unicode", secretA, `{"m":"héllo ✓ 你好"}`, now, true, secretA),
		sign("empty body", secretA, "", now, true, secretA),
		sign("rotation, new secret", secretB, body, now, true, secretA, secretB),
		sign("rotation, old secret", secretA, body, now, true, secretA, secretB),
		sign("another secret", secretB, body, now, false, secretA),
		sign("4 minutes old", secretA, body, now.Add(-4*time.Minute), true, secretA),
		sign("6 minutes old", secretA, body, now.Add(-6*time.Minute), false, secretA),
		sign("6 minutes ahead", secretA, body, now.Add(6*time.Minute), false, secretA),
	}
	tampered := sign("changed body", secretA, body, now, false, secretA)
	tampered.Body = body[:len(body)-1] + ` }`
	checks = append(checks, tampered)

	in, err := json.Marshal(checks)
	if err != nil {
		t.Fatal(err)
	}
	var results []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(node(t, "verify", in), &results); err != nil {
		t.Fatal(err)
	}
	if len(results) != len(checks) {
		t.Fatalf("the library answered %d checks of %d", len(results), len(checks))
	}
	for i, r := range results {
		if r.Name != checks[i].Name || r.OK != checks[i].want {
			t.Errorf("%s: the library says ok=%v (%s), want ok=%v", checks[i].Name, r.OK, r.Error, checks[i].want)
		}
	}
}
