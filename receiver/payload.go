package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The type values of the bodies that carry a "type" (seed 002, slackchat).
const (
	TypeURLVerification    = "url_verification"
	TypeUpdateNotification = "update_notification"
	TypeRepublishRequest   = "republish_request"
	TypeUnpublishRequest   = "unpublish_request"
)

// The update_type values of an update_notification.
const (
	UpdateMessageCreated = "message_created"
	UpdateMessageChanged = "message_changed"
	UpdateMessageDeleted = "message_deleted"
)

// Errors of Decode.
var (
	// ErrMalformed: the body is not the JSON of a payload herald sends, or lacks a field that
	// payload always has (the error names it).
	ErrMalformed = errors.New("receiver: malformed payload")
	// ErrUnknownPayload: the body is a JSON object of no shape this package knows, such as a
	// newer herald's; the Handler passes it to Config.OnOther.
	ErrUnknownPayload = errors.New("receiver: unknown payload")
)

// URLVerification is the handshake herald sends to a subscriber's URL on create, on every change
// of url or token, and on POST /subscribers/{id}/verify. The endpoint passes by answering 2xx with
// the challenge; the Handler does that. herald sends it unsigned.
type URLVerification struct {
	Token     string `json:"token"`
	Type      string `json:"type"` // TypeURLVerification
	Challenge string `json:"challenge"`
}

// UpdateNotification tells a subscriber that a message of a channel was created, changed or
// deleted. herald always sends all six keys.
type UpdateNotification struct {
	Token string `json:"token"` // the subscriber's verification token
	Type  string `json:"type"`  // TypeUpdateNotification
	// Channel is the channel's id.
	Channel string `json:"channel"`
	// ChatType is the channel's channel_metadata.chat_type as stored (usually a string), nil when
	// the channel has none (herald sends null).
	ChatType any `json:"chat_type"`
	// UpdateType is one of the Update* constants, "" when the publisher gave none (herald sends
	// null).
	UpdateType string `json:"update_type"`
	// Message is the message as the publisher gave it, nil when it gave none (herald sends null).
	Message json.RawMessage `json:"message"`
}

// ChannelRequest asks a subscriber to republish (TypeRepublishRequest) or unpublish
// (TypeUnpublishRequest) what it built from a channel. herald always sends all five keys.
type ChannelRequest struct {
	Token   string `json:"token"`
	Type    string `json:"type"`
	Channel string `json:"channel"` // the channel's id
	// ChannelData is the stored channel document serialized as a JSON string, as sent; Doc is
	// the same document decoded.
	ChannelData string  `json:"channel_data"`
	ChatType    any     `json:"chat_type"` // as in UpdateNotification
	Doc         Channel `json:"-"`
}

// Channel is a channel document as herald stores it (seed 000's ChannelStoreObject).
type Channel struct {
	ChannelID          string         `json:"channel_id"`
	ChannelName        string         `json:"channel_name"`
	ChannelDescription string         `json:"channel_description"`
	ChannelMetadata    map[string]any `json:"channel_metadata"` // holds endpoint_url; may hold chat_type
	ChannelTags        []string       `json:"channel_tags"`
}

// RelayedMessage is what a channel server (the channel's channel_metadata.endpoint_url) receives
// for every POST /channel/message: the message, and where to send the answer (see Reply).
type RelayedMessage struct {
	SessionID string `json:"session_id"`
	// Message is the message as the backend sent it: any JSON value (the seed sends a string; see
	// Text).
	Message json.RawMessage `json:"message"`
	// ResponseURL is where the answer goes. When herald made it, it carries a per-session token:
	// treat it as a secret.
	ResponseURL string `json:"response_url"`
}

// ForwardedResponse is what the sessions server (herald's --sessions-url) receives for every
// channel server's callback.
type ForwardedResponse struct {
	SessionID    string          `json:"session_id"`
	ChannelID    string          `json:"channel_id"`
	ResponseData json.RawMessage `json:"response_data"` // as the channel server sent it
	ReceivedAt   time.Time       `json:"received_at"`   // when herald received the callback
}

// probe holds the keys that tell herald's payloads apart.
type probe struct {
	Type         json.RawMessage `json:"type"`
	SessionID    json.RawMessage `json:"session_id"`
	ResponseURL  json.RawMessage `json:"response_url"`
	ChannelID    json.RawMessage `json:"channel_id"`
	ResponseData json.RawMessage `json:"response_data"`
}

// Decode decodes a body herald sends into its typed struct: *URLVerification,
// *UpdateNotification, *ChannelRequest (republish or unpublish), *RelayedMessage or
// *ForwardedResponse. It tells them apart by their keys: "type" for the slackchat bodies;
// session_id with response_url for a relayed message; session_id with channel_id and response_data
// for a forwarded response. It does not verify anything: verify the signature first (Handler
// does). A JSON object of another shape gets an error wrapping ErrUnknownPayload; anything else
// (not JSON, not an object, a field of the wrong type, a required field missing) ErrMalformed.
// Keys it does not know are ignored, so a newer herald adding one breaks nothing.
func Decode(body []byte) (any, error) {
	var p probe
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return nil, fmt.Errorf("%w: the body is not a JSON object", ErrMalformed)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem("the body", err))
	}
	switch {
	case p.Type != nil:
		var typ string
		if err := json.Unmarshal(p.Type, &typ); err != nil {
			return nil, fmt.Errorf("%w: type is not a string", ErrUnknownPayload)
		}
		return decodeTyped(typ, body)
	case p.SessionID != nil && p.ResponseURL != nil:
		return decodeRelayedMessage(body)
	case p.SessionID != nil && p.ChannelID != nil && p.ResponseData != nil:
		return decodeForwardedResponse(body)
	}
	return nil, fmt.Errorf("%w: a JSON object with neither type nor session_id", ErrUnknownPayload)
}

// decodeTyped decodes the slackchat body of type typ.
func decodeTyped(typ string, body []byte) (any, error) {
	switch typ {
	case TypeURLVerification:
		var v URLVerification
		if err := decodeInto(body, &v); err != nil {
			return nil, err
		}
		return checked(&v, require("challenge", v.Challenge))
	case TypeUpdateNotification:
		return decodeUpdate(body)
	case TypeRepublishRequest, TypeUnpublishRequest:
		return decodeChannelRequest(body)
	}
	return nil, fmt.Errorf("%w: type %q", ErrUnknownPayload, truncate(typ, 64))
}

func decodeUpdate(body []byte) (any, error) {
	var raw struct {
		UpdateNotification
		UpdateType *string `json:"update_type"` // null is allowed
	}
	if err := decodeInto(body, &raw); err != nil {
		return nil, err
	}
	n := raw.UpdateNotification
	if raw.UpdateType != nil {
		n.UpdateType = *raw.UpdateType
	}
	if bytes.Equal(n.Message, []byte("null")) {
		n.Message = nil
	}
	return checked(&n, require("channel", n.Channel))
}

func decodeChannelRequest(body []byte) (any, error) {
	var r ChannelRequest
	if err := decodeInto(body, &r); err != nil {
		return nil, err
	}
	if err := require("channel", r.Channel); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(r.ChannelData), &r.Doc); err != nil {
		return nil, fmt.Errorf("%w: channel_data is not a channel document: %s", ErrMalformed, jsonProblem("channel_data", err))
	}
	return &r, nil
}

func decodeRelayedMessage(body []byte) (any, error) {
	var m RelayedMessage
	if err := decodeInto(body, &m); err != nil {
		return nil, err
	}
	if err := require("session_id", m.SessionID); err != nil {
		return nil, err
	}
	return checked(&m, require("response_url", m.ResponseURL))
}

func decodeForwardedResponse(body []byte) (any, error) {
	var f ForwardedResponse
	if err := decodeInto(body, &f); err != nil {
		return nil, err
	}
	if err := require("session_id", f.SessionID); err != nil {
		return nil, err
	}
	return checked(&f, require("channel_id", f.ChannelID))
}

// decodeInto decodes body into v, naming the problem in an ErrMalformed.
func decodeInto(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, jsonProblem("the body", err))
	}
	return nil
}

// checked returns v, or no value when err is set.
func checked(v any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// require refuses an empty required field.
func require(field, value string) error {
	if value == "" {
		return fmt.Errorf("%w: %s is missing or empty", ErrMalformed, field)
	}
	return nil
}

// jsonProblem names what is wrong with the JSON of what (the body, a field) in a few words.
func jsonProblem(what string, err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%s is a JSON %s, not the %s expected", te.Field, te.Value, te.Type)
	case errors.As(err, &se):
		return what + " is not valid JSON (" + truncate(err.Error(), 100) + ")"
	}
	return "a value in " + what + " does not decode (" + truncate(err.Error(), 100) + ")"
}

// truncate cuts s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Text returns the message when it is a JSON string (what the seed sends), and false otherwise.
func (m *RelayedMessage) Text() (string, bool) {
	var s string
	if json.Unmarshal(m.Message, &s) != nil {
		return "", false
	}
	return s, true
}

// ChatTypeName returns chat_type when it is a string, and "" otherwise (null, or another JSON value).
func (n *UpdateNotification) ChatTypeName() string { s, _ := n.ChatType.(string); return s }

// ChatTypeName returns chat_type when it is a string, and "" otherwise (null, or another JSON value).
func (r *ChannelRequest) ChatTypeName() string { s, _ := r.ChatType.(string); return s }
