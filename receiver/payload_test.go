package receiver_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/receiver"
)

// Every body herald sends decodes into its typed struct, field by field, in the shapes the
// contract gives (notifications exactly as slackchat renderers parse them).
func TestDecode(t *testing.T) {
	t.Parallel()
	doc := `{"channel_id":"slack-sim","channel_name":"Slack Simulated Channel","channel_description":"Sends to Slack",` +
		`"channel_metadata":{"endpoint_url":"http://127.0.0.1:5001/incoming","chat_type":"slack"},"channel_tags":["slack","test"]}`
	docJSON, _ := json.Marshal(doc)
	wantDoc := receiver.Channel{ChannelID: "slack-sim", ChannelName: "Slack Simulated Channel", ChannelDescription: "Sends to Slack",
		ChannelMetadata: map[string]any{"endpoint_url": "http://127.0.0.1:5001/incoming", "chat_type": "slack"},
		ChannelTags:     []string{"slack", "test"}}
	for _, c := range []struct {
		name string
		body string
		want any
	}{
		{"url_verification", `{"token":"tok","type":"url_verification","challenge":"c-1"}`,
			&receiver.URLVerification{Token: "tok", Type: "url_verification", Challenge: "c-1"}},
		{"update_notification", `{"token":"tok","type":"update_notification","channel":"slack-sim","chat_type":"slack",` +
			`"update_type":"message_created","message":{"timestamp":"2018-10-16T17:23:49.000100Z","user":"USERID","content":"A new message."}}`,
			&receiver.UpdateNotification{Token: "tok", Type: "update_notification", Channel: "slack-sim", ChatType: "slack",
				UpdateType: receiver.UpdateMessageCreated,
				Message:    json.RawMessage(`{"timestamp":"2018-10-16T17:23:49.000100Z","user":"USERID","content":"A new message."}`)}},
		{"update_notification, nulls", `{"token":"tok","type":"update_notification","channel":"c","chat_type":null,"update_type":null,"message":null}`,
			&receiver.UpdateNotification{Token: "tok", Type: "update_notification", Channel: "c"}},
		{"update_notification, chat_type a number", `{"token":"","type":"update_notification","channel":"c","chat_type":7,"update_type":"message_deleted","message":null}`,
			&receiver.UpdateNotification{Type: "update_notification", Channel: "c", ChatType: 7.0, UpdateType: receiver.UpdateMessageDeleted}},
		{"republish_request", `{"token":"tok","type":"republish_request","channel":"slack-sim","channel_data":` + string(docJSON) + `,"chat_type":"slack"}`,
			&receiver.ChannelRequest{Token: "tok", Type: "republish_request", Channel: "slack-sim", ChannelData: doc, ChatType: "slack", Doc: wantDoc}},
		{"unpublish_request", `{"token":"tok","type":"unpublish_request","channel":"slack-sim","channel_data":` + string(docJSON) + `,"chat_type":null}`,
			&receiver.ChannelRequest{Token: "tok", Type: "unpublish_request", Channel: "slack-sim", ChannelData: doc, Doc: wantDoc}},
		{"relayed message", `{"session_id":"abc123","message":"Hello, Slack!","response_url":"http://h/webhook-response?token=t"}`,
			&receiver.RelayedMessage{SessionID: "abc123", Message: json.RawMessage(`"Hello, Slack!"`), ResponseURL: "http://h/webhook-response?token=t"}},
		{"relayed message, an object", `{"session_id":"s","message":{"text":"hi","n":[1,2]},"response_url":"https://x/cb"}`,
			&receiver.RelayedMessage{SessionID: "s", Message: json.RawMessage(`{"text":"hi","n":[1,2]}`), ResponseURL: "https://x/cb"}},
		{"forwarded response", `{"session_id":"abc123","channel_id":"slack-sim","response_data":{"reply":"ok"},"received_at":"2024-07-01T14:33:46.794Z"}`,
			&receiver.ForwardedResponse{SessionID: "abc123", ChannelID: "slack-sim", ResponseData: json.RawMessage(`{"reply":"ok"}`),
				ReceivedAt: time.Date(2024, 7, 1, 14, 33, 46, 794_000_000, time.UTC)}},
		{"a key herald may add later", `{"token":"t","type":"url_verification","challenge":"c","new":1}`,
			&receiver.URLVerification{Token: "t", Type: "url_verification", Challenge: "c"}},
	} {
		got, err := receiver.Decode([]byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, got, c.want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		want       error
		says       string
	}{
		{"empty", ``, receiver.ErrMalformed, "not a JSON object"},
		{"not JSON", `hello`, receiver.ErrMalformed, "not a JSON object"},
		{"an array", `[{"type":"url_verification"}]`, receiver.ErrMalformed, "not a JSON object"},
		{"cut short", `{"type":"update_notification","channel":"c"`, receiver.ErrMalformed, "not valid JSON"},
		{"no challenge", `{"token":"t","type":"url_verification"}`, receiver.ErrMalformed, "challenge is missing"},
		{"no channel", `{"token":"t","type":"update_notification","message":null}`, receiver.ErrMalformed, "channel is missing"},
		{"message a string where an update_type goes", `{"type":"update_notification","channel":"c","update_type":5}`, receiver.ErrMalformed, "update_type is a JSON number"},
		{"channel_data not JSON", `{"type":"republish_request","channel":"c","channel_data":"{oops","chat_type":null}`, receiver.ErrMalformed, "channel_data is not a channel document: channel_data is not valid JSON"},
		{"channel_data an object", `{"type":"republish_request","channel":"c","channel_data":{"channel_id":"c"}}`, receiver.ErrMalformed, "channel_data is a JSON object"},
		{"relay without session", `{"session_id":"","message":"m","response_url":"http://x"}`, receiver.ErrMalformed, "session_id is missing"},
		{"relay without response_url", `{"session_id":"s","message":"m","response_url":""}`, receiver.ErrMalformed, "response_url is missing"},
		{"forward without channel", `{"session_id":"s","channel_id":"","response_data":1,"received_at":"2024-07-01T14:33:46.794Z"}`, receiver.ErrMalformed, "channel_id is missing"},
		{"received_at not a time", `{"session_id":"s","channel_id":"c","response_data":1,"received_at":"yesterday"}`, receiver.ErrMalformed, "a value in the body does not decode (parsing time"},
		{"another type", `{"type":"chat:message:new","id":"x","data":{}}`, receiver.ErrUnknownPayload, `type "chat:message:new"`},
		{"type not a string", `{"type":{"a":1}}`, receiver.ErrUnknownPayload, "type is not a string"},
		{"another shape", `{"conversation_id":"c","data":{},"timestamp":"2024-03-21T10:00:00.000Z"}`, receiver.ErrUnknownPayload, "neither type nor session_id"},
	} {
		got, err := receiver.Decode([]byte(c.body))
		if got != nil || !errors.Is(err, c.want) || !contains(err, c.says) {
			t.Errorf("%s: %v, %v; want %v saying %q", c.name, got, err, c.want, c.says)
		}
	}
}

func contains(err error, s string) bool {
	return err != nil && len(s) > 0 && strings.Contains(err.Error(), s)
}

func TestRelayedMessageText(t *testing.T) {
	t.Parallel()
	if s, ok := (&receiver.RelayedMessage{Message: json.RawMessage(`"hi"`)}).Text(); !ok || s != "hi" {
		t.Errorf("a string message: %q %v", s, ok)
	}
	if _, ok := (&receiver.RelayedMessage{Message: json.RawMessage(`{"a":1}`)}).Text(); ok {
		t.Error("an object message is not text")
	}
}
