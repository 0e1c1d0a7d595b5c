package notifier

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func checkAttemptJSON(t *testing.T, a Attempt) {
	t.Helper()
	b := appendAttempt(nil, a)
	if strings.ContainsAny(string(b), "\n\r") {
		t.Fatalf("attempt line holds a raw line break: %q", b)
	}
	var got Attempt
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	// What json.Marshal would have stored (it also replaces each invalid byte with U+FFFD).
	var want Attempt
	std, _ := json.Marshal(a)
	if err := json.Unmarshal(std, &want); err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(want.At) || got.DurationMS != want.DurationMS || got.StatusCode != want.StatusCode ||
		got.Error != want.Error || got.Response != want.Response {
		t.Fatalf("round trip of %+v gave %+v", want, got)
	}
}

func TestAppendAttempt(t *testing.T) {
	at := time.Date(2026, 11, 21, 18, 30, 41, 123456789, time.UTC)
	for _, a := range []Attempt{
		{At: at, DurationMS: 12, StatusCode: 204},
		{At: at, DurationMS: 0, StatusCode: 500, Error: "HTTP 500", Response: `{"error":"boom"}` + "\n\ttrace\r\n"},
		{At: at, Error: `POST https://x/y: dial tcp: "quoted" \ back`, Response: "\x00\x01\x1f\x7f <>&\u2028 ünïcødé 😀"},
		{At: at, Response: "cut in the middle of \xe2\x82"},
	} {
		checkAttemptJSON(t, a)
	}
	// Written as json.Marshal writes it for ordinary text.
	a := Attempt{At: at, DurationMS: 5, StatusCode: 503, Error: "HTTP 503", Response: "busy"}
	if want, _ := json.Marshal(a); string(appendAttempt(nil, a)) != string(want) {
		t.Errorf("got %s, want %s", appendAttempt(nil, a), want)
	}
}

func FuzzAppendAttempt(f *testing.F) {
	f.Add("HTTP 500", "oops\n")
	f.Add("\"\\", "\xff\xfe")
	f.Fuzz(func(t *testing.T, e, r string) {
		checkAttemptJSON(t, Attempt{At: time.Unix(1, 0).UTC(), Error: e, Response: r})
	})
}
