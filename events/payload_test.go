package events

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// The payload tests check the bodies subscribers receive, byte for byte where the shape is fixed
// and key by key, type by type, as a slackchat renderer decodes them.

// payloads is the world of a payload test: chan-1 (with a chat_type) and chan-2 (without), and two
// subscribers every event reaches, "a" with token tok-a and "c" with a token that needs escaping.
type payloads struct {
	b     *bundle
	rcv   *receiver
	total int // bodies received so far
}

func setupPayloads(t *testing.T) *payloads {
	t.Helper()
	p := &payloads{b: setup(t, setupOpts{startEngine: true}), rcv: newReceiver(t)}
	p.b.startService(t)
	p.b.channel(t, &channels.Channel{ChannelID: "chan-1", ChannelName: "One", ChannelDescription: "the first",
		ChannelMetadata: map[string]any{"chat_type": "live-chat", "title": "Channel Title"}, ChannelTags: []string{"slack"}})
	p.b.channel(t, &channels.Channel{ChannelID: "chan-2", ChannelName: "Two"})
	p.b.subscriber(t, subscribers.Subscriber{URL: p.rcv.url("a"), Token: "tok-a"}, false)
	p.b.subscriber(t, subscribers.Subscriber{URL: p.rcv.url("c"), Token: `tok "c" <&>`}, false)
	return p
}

// next notifies channelID with body, waits until both subscribers have it, and returns the body
// subscriber path received, decoded and raw.
func (p *payloads) next(t *testing.T, path string, body any, channelID string) (map[string]any, []byte) {
	t.Helper()
	acc := p.b.notify(t, channelID, body)
	if acc.Subscribers != 2 {
		t.Fatalf("subscribers = %d, want 2", acc.Subscribers)
	}
	p.total += 2
	p.rcv.wait(t, p.total, 20*time.Second)
	bodies := p.rcv.bodies(path)
	raw := bodies[len(bodies)-1]
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return m, raw
}

func TestUpdateNotificationPayloads(t *testing.T) {
	t.Parallel()
	p := setupPayloads(t)

	t.Run("bytes", func(t *testing.T) {
		_, raw := p.next(t, "a", map[string]any{"type": "update_notification", "update_type": "message_created",
			"message": json.RawMessage(`{"timestamp": "2018-10-16T17:23:49.000100Z", "user": "USERID", "content": "A new message."}`)}, "chan-1")
		want := `{"token":"tok-a","type":"update_notification","channel":"chan-1","chat_type":"live-chat","update_type":"message_created","message":{"timestamp":"2018-10-16T17:23:49.000100Z","user":"USERID","content":"A new message."}}`
		if string(raw) != want {
			t.Errorf("body\n got %s\nwant %s", raw, want)
		}
		// The other subscriber got the same event with its own token, escaped as JSON.
		other := p.rcv.bodies("c")
		var m map[string]any
		if err := json.Unmarshal(other[len(other)-1], &m); err != nil || m["token"] != `tok "c" <&>` {
			t.Errorf("second subscriber's body %s (err %v): token %v", other[len(other)-1], err, m["token"])
		}
	})

	for _, ut := range []string{UpdateCreated, UpdateChanged, UpdateDeleted} {
		t.Run(ut, func(t *testing.T) {
			m, _ := p.next(t, "c", map[string]any{"type": "update_notification", "update_type": ut, "message": map[string]any{"n": 1.5, "nested": map[string]any{"x": []any{true, nil}}}}, "chan-1")
			if got := keysOf(m); got != "[channel chat_type message token type update_type]" {
				t.Fatalf("keys %s", got)
			}
			if m["token"] != `tok "c" <&>` || m["type"] != "update_notification" || m["channel"] != "chan-1" || m["chat_type"] != "live-chat" || m["update_type"] != ut {
				t.Errorf("body %v", m)
			}
			msg, ok := m["message"].(map[string]any)
			if !ok || msg["n"] != 1.5 {
				t.Errorf("message %#v is not the object sent", m["message"])
			}
		})
	}

	t.Run("with nulls", func(t *testing.T) {
		// No update_type, message null, and a channel without chat_type: all three keys are
		// present and null.
		m, raw := p.next(t, "a", map[string]any{"type": "update_notification", "message": nil}, "chan-2")
		want := `{"token":"tok-a","type":"update_notification","channel":"chan-2","chat_type":null,"update_type":null,"message":null}`
		if string(raw) != want {
			t.Errorf("body\n got %s\nwant %s", raw, want)
		}
		if got := keysOf(m); got != "[channel chat_type message token type update_type]" {
			t.Errorf("keys %s", got)
		}
	})
}

func TestChannelDataPayloads(t *testing.T) {
	t.Parallel()
	p := setupPayloads(t)
	stored, err := p.b.chans.Get(context.Background(), "chan-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{TypeRepublish, TypeUnpublish} {
		t.Run(typ, func(t *testing.T) {
			m, raw := p.next(t, "a", map[string]any{"type": typ}, "chan-1")
			if got := keysOf(m); got != "[channel channel_data chat_type token type]" {
				t.Fatalf("keys %s in %s", got, raw)
			}
			if m["token"] != "tok-a" || m["type"] != typ || m["channel"] != "chan-1" || m["chat_type"] != "live-chat" {
				t.Errorf("body %v", m)
			}
			checkChannelData(t, m["channel_data"], stored)
			// Key order on the wire is the seed's.
			wantPrefix := `{"token":"tok-a","type":"` + typ + `","channel":"chan-1","channel_data":`
			if len(raw) < len(wantPrefix) || string(raw[:len(wantPrefix)]) != wantPrefix {
				t.Errorf("body starts %.80s, want %s", raw, wantPrefix)
			}
		})
	}
}

// checkChannelData checks that a body's channel_data is a JSON string holding the channel document
// as stored, with exactly the document's keys.
func checkChannelData(t *testing.T, v any, stored *channels.Channel) {
	t.Helper()
	data, ok := v.(string)
	if !ok {
		t.Fatalf("channel_data is %T, want a JSON string", v)
	}
	var doc channels.Channel
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatalf("channel_data %q does not decode: %v", data, err)
	}
	wantDoc, _ := json.Marshal(stored)
	gotDoc, _ := json.Marshal(&doc)
	if string(gotDoc) != string(wantDoc) {
		t.Errorf("channel_data\n got %s\nwant %s", gotDoc, wantDoc)
	}
	var generic map[string]any
	_ = json.Unmarshal([]byte(data), &generic)
	if got := keysOf(generic); got != "[channel_description channel_id channel_metadata channel_name channel_tags]" {
		t.Errorf("channel_data keys %s", got)
	}
}

// TestBodyTemplate checks the token splice against a plain encoding of the same struct.
func TestBodyTemplate(t *testing.T) {
	t.Parallel()
	ch := &channels.Channel{ChannelID: "c", ChannelMetadata: map[string]any{"chat_type": map[string]any{"odd": true}}}
	tail, err := bodyTail(TypeUpdate, ch, nil, "", json.RawMessage(`{"a":"<b>"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "plain", "quote\"back\\slash", "uni ☃ \u2028", "<html>&"} {
		got := body(tail, tok)
		want, _ := json.Marshal(updateNotification{Token: tok, Type: TypeUpdate, Channel: "c",
			ChatType: json.RawMessage(`{"odd":true}`), Message: json.RawMessage(`{"a":"<b>"}`)})
		if string(got) != string(want) {
			t.Errorf("token %q:\n got %s\nwant %s", tok, got, want)
		}
	}
}
