package events

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/channels"
)

// The bodies herald sends, exactly as slackchat renderers parse them (seed 002). They are structs,
// not maps, so the keys always come out in this order and always all of them: a missing value is
// JSON null, never an absent key.

// updateNotification is the body of an update_notification.
type updateNotification struct {
	Token      string          `json:"token"`
	Type       string          `json:"type"`
	Channel    string          `json:"channel"`
	ChatType   json.RawMessage `json:"chat_type"`   // channel_metadata.chat_type; nil → null
	UpdateType *string         `json:"update_type"` // nil → null
	Message    json.RawMessage `json:"message"`     // nil → null
}

// channelRequest is the body of a republish_request or an unpublish_request.
type channelRequest struct {
	Token       string          `json:"token"`
	Type        string          `json:"type"`
	Channel     string          `json:"channel"`
	ChannelData string          `json:"channel_data"` // the stored channel document, as a JSON string
	ChatType    json.RawMessage `json:"chat_type"`
}

// tokenHead is how every body starts when marshalled with an empty token: the token is the first
// key, which is what lets one template serve every subscriber of an event.
const tokenHead = `{"token":""`

// bodyTail builds the part of an event's body that follows the token: the same for every
// subscriber. message is compact JSON (an object) or nil. The tail is computed once per event so
// that a fan-out to many subscribers does not re-encode a large message for each of them.
// doc is the channel as stored, already encoded (it is also kept on the event record).
func bodyTail(typ string, ch *channels.Channel, doc []byte, updateType string, message json.RawMessage) ([]byte, error) {
	chatType, err := json.Marshal(ch.ChatType())
	if err != nil {
		return nil, fmt.Errorf("encode chat_type: %w", err)
	}
	var v any
	switch typ {
	case TypeUpdate:
		b := updateNotification{Type: typ, Channel: ch.ChannelID, ChatType: chatType, Message: message}
		if updateType != "" {
			b.UpdateType = &updateType
		}
		v = b
	case TypeRepublish, TypeUnpublish:
		v = channelRequest{Type: typ, Channel: ch.ChannelID, ChannelData: string(doc), ChatType: chatType}
	default:
		return nil, fmt.Errorf("unknown event type %q", typ)
	}
	full, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	tail, ok := bytes.CutPrefix(full, []byte(tokenHead))
	if !ok {
		return nil, fmt.Errorf("body template does not start with the token: %.40s", full)
	}
	return tail, nil
}

// body is one subscriber's body: the token, then the event's tail.
func body(tail []byte, token string) []byte {
	tok, _ := json.Marshal(token) // a string always encodes
	b := make([]byte, 0, len(`{"token":`)+len(tok)+len(tail))
	b = append(b, `{"token":`...)
	b = append(b, tok...)
	return append(b, tail...)
}
