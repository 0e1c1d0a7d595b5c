package receiver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/receiver"
)

// Reply POSTs {"session_id", "response_data"} with the Idempotency-Key; its errors name herald's
// answer and never the response_url's token.
func TestReply(t *testing.T) {
	t.Parallel()
	type got struct {
		body []byte
		key  string
		ct   string
	}
	calls := make(chan got, 2)
	var status atomic.Int64
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- got{b, r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")}
		if s := int(status.Load()); s != 200 {
			http.Error(w, `{"error":{"code":"forbidden","message":"callback token is missing or wrong"}}`, s)
		}
	}))
	defer srv.Close()
	m := &receiver.RelayedMessage{SessionID: "s1", ResponseURL: srv.URL + "/webhook-response?token=SECRET-TOKEN"}

	if err := m.Reply(context.Background(), nil, "dlv_1", map[string]string{"text": "hi back"}); err != nil {
		t.Fatal(err)
	}
	g := <-calls
	var body map[string]any
	if err := json.Unmarshal(g.body, &body); err != nil || len(body) != 2 || body["session_id"] != "s1" ||
		body["response_data"].(map[string]any)["text"] != "hi back" || g.key != "dlv_1" || g.ct != "application/json" {
		t.Fatalf("herald got %s (Idempotency-Key %q, Content-Type %q)", g.body, g.key, g.ct)
	}

	status.Store(http.StatusForbidden)
	err := m.Reply(context.Background(), srv.Client(), "dlv_1", "x")
	<-calls
	if !errors.Is(err, receiver.ErrReply) || !strings.Contains(err.Error(), "herald answered 403") || strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Fatalf("a refused reply: %v", err)
	}
	srv.Close()
	err = m.Reply(context.Background(), nil, "", "x")
	if !errors.Is(err, receiver.ErrReply) || strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Fatalf("herald down: %v", err)
	}
	bad := &receiver.RelayedMessage{SessionID: "s1", ResponseURL: "http://h/\x7f?token=SECRET-TOKEN"}
	if err := bad.Reply(context.Background(), nil, "", "x"); !errors.Is(err, receiver.ErrReply) || strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Fatalf("a bad URL: %v", err)
	}
	if err := m.Reply(context.Background(), nil, "", func() {}); !errors.Is(err, receiver.ErrReply) {
		t.Fatalf("response_data that does not encode: %v", err)
	}
}
