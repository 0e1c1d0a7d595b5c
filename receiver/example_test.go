package receiver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/heraldhq/herald/receiver"
)

// A subscriber endpoint: the Handler verifies each request with the subscriber's secret, answers
// the handshake, and calls OnUpdate with the decoded notification.
func Example() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the subscriber's "secret"
	h, err := receiver.NewHandler(receiver.Config{
		Secrets: []string{secret},
		Token:   "your-webhook-verification-token",
		OnUpdate: func(ctx context.Context, d receiver.Delivery, n *receiver.UpdateNotification) error {
			// Deliveries come at least once: de-duplicate on d.ID.
			fmt.Printf("%s: %s in %s (%s): %s\n", d.ID, n.UpdateType, n.Channel, n.ChatTypeName(), n.Message)
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	// In a program: http.Handle("/hooks/herald", h).

	// The handshake herald sends when the subscriber is created (unsigned).
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/hooks/herald", strings.NewReader(
		`{"token": "your-webhook-verification-token", "type": "url_verification", "challenge": "c-123"}`)))
	fmt.Print(rec.Code, " ", rec.Body.String())

	// A notification, signed as herald signs it.
	body := []byte(`{"token":"your-webhook-verification-token","type":"update_notification","channel":"slack-sim",` +
		`"chat_type":"slack","update_type":"message_created","message":{"user":"U1","content":"A new message."}}`)
	req := httptest.NewRequest("POST", "/hooks/herald", strings.NewReader(string(body)))
	if err := receiver.SetHeaders(req.Header, "evt_1.sub_1", time.Now(), body, secret); err != nil {
		panic(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	// The same request with a changed body is refused.
	req = httptest.NewRequest("POST", "/hooks/herald", strings.NewReader(strings.Replace(string(body), "U1", "U2", 1)))
	_ = receiver.SetHeaders(req.Header, "evt_1.sub_1", time.Now(), body, secret)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// 200 {"challenge":"c-123"}
	// evt_1.sub_1: message_created in slack-sim (slack): {"user":"U1","content":"A new message."}
	// 204
	// 401 webhooksig: webhook signature does not verify: no v1 signature matches
}
