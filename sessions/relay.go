package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
)

// Errors of the relay. The HTTP handlers answer them with the statuses in parentheses.
var (
	// ErrSessionNotFound: the session was never relayed or has expired (404).
	ErrSessionNotFound = errors.New("sessions: session not found")
	// ErrBadToken: a callback for a session whose response_url herald made lacks the right token (403).
	ErrBadToken = errors.New("sessions: callback token is missing or wrong")
)

// Message is a message to relay (the body of POST /channel/message).
type Message struct {
	ChannelID string `json:"channel_id"`
	SessionID string `json:"session_id"`
	// Message is any JSON value but null (the seed sends a string), at most MaxMessageBytes.
	Message json.RawMessage `json:"message"`
	// ResponseURL is where the channel server calls back. Optional: herald makes one that points at
	// its own /webhook-response and carries the session's token.
	ResponseURL string `json:"response_url,omitempty"`
}

// Queued is the answer to a relayed message.
type Queued struct {
	SessionID  string `json:"session_id"`
	DeliveryID string `json:"delivery_id"`
	Status     string `json:"status"` // "queued"
}

// relayBody is what a channel server receives: exactly these three keys.
type relayBody struct {
	SessionID   string          `json:"session_id"`
	Message     json.RawMessage `json:"message"`
	ResponseURL string          `json:"response_url"`
}

// messageRecord is a message as the session stores it.
type messageRecord struct {
	DeliveryID  string          `json:"delivery_id"`
	Message     json.RawMessage `json:"message"`
	QueuedAt    string          `json:"queued_at"`
	ResponseURL string          `json:"response_url_by"` // "herald" or "caller"; never the URL (it may hold the token)
}

// Callback is a channel server's callback (the body of POST /webhook-response plus what the
// request carries besides).
type Callback struct {
	SessionID    string          `json:"session_id"`
	ResponseData json.RawMessage `json:"response_data"`
	// Token is the token query parameter of the response_url herald made.
	Token string `json:"-"`
	// IdempotencyKey is the Idempotency-Key header: a repeat for the same session is
	// acknowledged and not forwarded again.
	IdempotencyKey string `json:"-"`
}

// Ack is the answer to a callback.
type Ack struct {
	// Duplicate says the Idempotency-Key was already seen for the session: nothing was stored or
	// forwarded.
	Duplicate bool
	// ForwardID is the delivery id of the forward to the sessions server ("" when none is configured
	// or for a duplicate).
	ForwardID string
}

// forwardBody is what the sessions server receives: exactly these four keys.
type forwardBody struct {
	SessionID    string          `json:"session_id"`
	ChannelID    string          `json:"channel_id"`
	ResponseData json.RawMessage `json:"response_data"`
	ReceivedAt   string          `json:"received_at"`
}

// responseRecord is a response as the session stores it.
type responseRecord struct {
	ResponseData json.RawMessage `json:"response_data"`
	ReceivedAt   string          `json:"received_at"`
	ForwardID    string          `json:"forward_id,omitempty"`
}

// Send records the message in its session and enqueues it for the channel's server. It returns
// once the delivery is durable. Errors are *httpx.Error for bad input (400), an unknown channel
// (404), a session that belongs to another channel (409), a channel URL the target rules refuse
// (422) and a full backlog (503); anything else is a store failure.
func (s *Service) Send(ctx context.Context, m Message) (*Queued, error) {
	if err := s.checkMessage(&m); err != nil {
		return nil, err
	}
	ch, err := s.channels.Get(ctx, m.ChannelID)
	if errors.Is(err, channels.ErrNotFound) {
		s.messages.WithLabelValues("unknown_channel").Inc()
		e := httpx.NotFound("channel %q not found", m.ChannelID)
		e.Field = "channel_id"
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("read channel: %w", err)
	}
	ep := s.channelEndpoint(ch)
	if ep.URL == "" {
		s.messages.WithLabelValues("refused").Inc()
		return nil, &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_target", Field: "channel_metadata.endpoint_url",
			Message: fmt.Sprintf("channel %q has no channel_metadata.endpoint_url to send to", ch.ChannelID)}
	}
	if err := s.ensureEndpoint(ctx, ep); err != nil {
		s.messages.WithLabelValues("refused").Inc()
		return nil, engineError(err, "channel_metadata.endpoint_url")
	}

	mu := s.lock(m.SessionID)
	mu.Lock()
	defer mu.Unlock()

	now := s.now().Format(timeFormat)
	open := "0"
	if m.ResponseURL != "" {
		open = "1"
	}
	sk := s.keys.session(m.SessionID)
	res, err := ensureSession.Run(ctx, s.rdb, sk, m.ChannelID, now, randomNonce(), ttlMS(s.cfg.TTL), open).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("record session: %w", err)
	}
	if res[0] == "conflict" {
		return nil, &httpx.Error{Status: http.StatusConflict, Code: "session_conflict", Field: "session_id",
			Message: fmt.Sprintf("session %q belongs to channel %q; use a new session_id for channel %q", m.SessionID, res[1], m.ChannelID)}
	}
	nonce, created := res[1], res[2] == "1"

	responseURL, by := m.ResponseURL, "caller"
	if responseURL == "" {
		responseURL = s.cfg.PublicURL + "/webhook-response?token=" + tokenFor(s.tokenKey, m.SessionID, nonce)
		by = "herald"
	}
	body, err := json.Marshal(relayBody{SessionID: m.SessionID, Message: m.Message, ResponseURL: responseURL})
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	id := ids.New("rly")
	err = s.enqueue(ctx, ep, notifier.Request{
		ID: id, EndpointID: ep.ID, Body: body, Kind: "relay",
		OrderingKey: "relay:" + m.SessionID, // one session's messages reach the channel server in order
	})
	if err != nil {
		if created {
			// Leave nothing half-written: a session whose first message failed does not exist.
			if derr := dropNewSession.Run(context.WithoutCancel(ctx), s.rdb, sk, nonce).Err(); derr != nil {
				s.log.Warn("could not remove the session of a message that failed", "session_id", m.SessionID, "err", derr)
			}
		}
		s.messages.WithLabelValues("refused").Inc()
		return nil, engineError(err, "channel_metadata.endpoint_url")
	}

	rec, _ := json.Marshal(messageRecord{DeliveryID: id, Message: m.Message, QueuedAt: now, ResponseURL: by})
	n, err := appendMessage.Run(ctx, s.rdb, sk, rec, now, ttlMS(s.cfg.TTL), s.cfg.MaxMessages, m.ChannelID, nonce, open).Int()
	if err != nil {
		// The message is enqueued and will be delivered; only its record in the session is missing.
		s.log.Warn("message enqueued but not recorded in its session", "session_id", m.SessionID, "delivery_id", id, "err", err)
	} else if n == 2 {
		s.log.Warn("session was recreated while a message was being sent; its callback token changed",
			"session_id", m.SessionID, "delivery_id", id)
	}
	s.messages.WithLabelValues("queued").Inc()
	return &Queued{SessionID: m.SessionID, DeliveryID: id, Status: "queued"}, nil
}

// checkMessage validates a message, with errors that name the field.
func (s *Service) checkMessage(m *Message) error {
	fail := func(err error) error {
		s.messages.WithLabelValues("invalid").Inc()
		return err
	}
	if err := httpx.CheckID("channel_id", m.ChannelID); err != nil {
		return fail(err)
	}
	if err := httpx.CheckID("session_id", m.SessionID); err != nil {
		return fail(err)
	}
	if err := s.checkValue("message", m.Message); err != nil {
		return fail(err)
	}
	if m.ResponseURL != "" {
		if err := checkResponseURL(m.ResponseURL); err != nil {
			return fail(err)
		}
	}
	return nil
}

// checkValue checks a required JSON value: present, not null, not an empty string, bounded.
func (s *Service) checkValue(field string, v json.RawMessage) error {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte(`""`)) {
		return httpx.Missing(field)
	}
	if len(t) > s.cfg.MaxMessageBytes {
		return httpx.Invalid(field, "%s is %d bytes of JSON; the limit is %d", field, len(t), s.cfg.MaxMessageBytes)
	}
	return nil
}

func checkResponseURL(raw string) error {
	if len(raw) > maxURLLen {
		return httpx.Invalid("response_url", "response_url is longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return httpx.Invalid("response_url", "response_url must be an absolute http(s) URL such as https://example.com/webhook-response")
	}
	return nil
}

// Respond takes a channel server's callback: it checks the session and its token, stores the
// response and, when a sessions server is configured, enqueues it for forwarding (one session's
// responses in the order received). Errors: *httpx.Error for bad input (400) and a full backlog
// (503); ErrSessionNotFound; ErrBadToken; else a store failure.
func (s *Service) Respond(ctx context.Context, c Callback) (*Ack, error) {
	if err := httpx.CheckID("session_id", c.SessionID); err != nil {
		s.callbacks.WithLabelValues("invalid").Inc()
		return nil, err
	}
	if err := s.checkValue("response_data", c.ResponseData); err != nil {
		s.callbacks.WithLabelValues("invalid").Inc()
		return nil, err
	}
	if len(c.IdempotencyKey) > maxIdempotencyKeyLen {
		s.callbacks.WithLabelValues("invalid").Inc()
		return nil, httpx.Invalid("Idempotency-Key", "the Idempotency-Key header is longer than %d characters", maxIdempotencyKeyLen)
	}
	sk := s.keys.session(c.SessionID)
	meta, err := s.rdb.HMGet(ctx, sk[0], "channel_id", "nonce", "open").Result()
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	channelID, _ := meta[0].(string)
	nonce, _ := meta[1].(string)
	open, _ := meta[2].(string)
	if channelID == "" {
		s.callbacks.WithLabelValues("unknown_session").Inc()
		return nil, ErrSessionNotFound
	}
	if open != "1" && !tokenMatches(s.tokenKey, c.SessionID, nonce, c.Token) {
		s.callbacks.WithLabelValues("forbidden").Inc()
		return nil, ErrBadToken
	}

	mu := s.lock(c.SessionID)
	mu.Lock()
	defer mu.Unlock()

	now := s.now()
	receivedAt := now.Format(timeFormat)
	idem := hashKey(c.IdempotencyKey)
	forwardID := ""
	if s.cfg.SessionsURL != "" {
		forwardID = ids.New("fwd")
		if idem != "" {
			// The same callback repeated gets the same delivery id, which the engine enqueues once,
			// even after the session has forgotten the key.
			forwardID = "fwd_" + hashKey(c.SessionID + "\x00" + c.IdempotencyKey)[:40]
		}
	}
	data := json.RawMessage(compactJSON(c.ResponseData))
	rec, _ := json.Marshal(responseRecord{ResponseData: data, ReceivedAt: receivedAt, ForwardID: forwardID})
	n, err := recordResponse.Run(ctx, s.rdb, sk, rec, idem, receivedAt, now.UnixMilli(), ttlMS(s.cfg.TTL),
		s.cfg.MaxResponses, s.cfg.MaxIdempotencyKeys).Int()
	if err != nil {
		return nil, fmt.Errorf("record response: %w", err)
	}
	switch n {
	case -1:
		s.callbacks.WithLabelValues("unknown_session").Inc()
		return nil, ErrSessionNotFound
	case 0:
		s.callbacks.WithLabelValues("duplicate").Inc()
		return &Ack{Duplicate: true}, nil
	}
	if forwardID == "" {
		s.callbacks.WithLabelValues("accepted").Inc()
		return &Ack{}, nil
	}
	body, err := json.Marshal(forwardBody{SessionID: c.SessionID, ChannelID: channelID, ResponseData: data, ReceivedAt: receivedAt})
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	ep := notifier.Endpoint{ID: SessionsEndpointID, URL: s.cfg.SessionsURL, Secret: s.secret}
	err = s.enqueue(ctx, ep, notifier.Request{
		ID: forwardID, EndpointID: ep.ID, Body: body, Kind: "callback",
		OrderingKey: "callback:" + c.SessionID, // one session's responses reach the sessions server in order
	})
	if err != nil {
		// Undo the record so the channel server's retry is taken (and forwarded) again.
		if uerr := unrecordResponse.Run(context.WithoutCancel(ctx), s.rdb, sk, rec, idem).Err(); uerr != nil {
			s.log.Warn("could not undo a response that was not forwarded", "session_id", c.SessionID, "err", uerr)
		}
		s.callbacks.WithLabelValues("refused").Inc()
		return nil, engineError(err, "")
	}
	s.callbacks.WithLabelValues("accepted").Inc()
	return &Ack{ForwardID: forwardID}, nil
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// Session is a session as GET /sessions/{id} shows it.
type Session struct {
	SessionID string         `json:"session_id"`
	ChannelID string         `json:"channel_id"`
	CreatedAt string         `json:"created_at"`
	UpdatedAt string         `json:"updated_at"`
	ExpiresAt string         `json:"expires_at"`
	Messages  []MessageView  `json:"messages"`
	Responses []ResponseView `json:"responses"`
}

// MessageView is one relayed message with its delivery's state.
type MessageView struct {
	DeliveryID string          `json:"delivery_id"`
	Message    json.RawMessage `json:"message"`
	// ResponseURLBy says who made the response_url sent with it: "herald" or "caller".
	ResponseURLBy string `json:"response_url_by"`
	QueuedAt      string `json:"queued_at"`
	// Status is the delivery's: pending, delivered, failed, or unknown once the engine has
	// forgotten it (past --delivery-retention).
	Status        string  `json:"status"`
	Attempts      int     `json:"attempts"`
	SentAt        *string `json:"sent_at"` // when the channel server took it (null until then)
	LastError     string  `json:"last_error,omitempty"`
	NextAttemptAt *string `json:"next_attempt_at,omitempty"`
}

// ResponseView is one callback's response with its forward's state.
type ResponseView struct {
	ResponseData json.RawMessage `json:"response_data"`
	ReceivedAt   string          `json:"received_at"`
	Forward      *ForwardView    `json:"forward"` // null when no sessions server was configured
}

// ForwardView is the state of a response's forward to the sessions server.
type ForwardView struct {
	DeliveryID string `json:"delivery_id"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
}

// Get returns the session with its messages, their delivery status and its responses, or
// ErrSessionNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Session, error) {
	if err := httpx.CheckID("session_id", id); err != nil {
		return nil, err
	}
	sk := s.keys.session(id)
	var meta *redis.MapStringStringCmd
	var msgs, resps *redis.StringSliceCmd
	var pttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGetAll(ctx, sk[0])
		msgs = p.LRange(ctx, sk[1], 0, -1)
		resps = p.LRange(ctx, sk[2], 0, -1)
		pttl = p.PTTL(ctx, sk[0])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	m := meta.Val()
	if m["channel_id"] == "" {
		return nil, ErrSessionNotFound
	}
	out := &Session{SessionID: id, ChannelID: m["channel_id"], CreatedAt: m["created_at"], UpdatedAt: m["updated_at"],
		Messages: []MessageView{}, Responses: []ResponseView{}}
	if ttl := pttl.Val(); ttl > 0 {
		out.ExpiresAt = s.now().Add(ttl).Format(timeFormat)
	}

	var ids []string
	for _, raw := range msgs.Val() {
		var r messageRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			s.log.Warn("skipping an unreadable message record", "session_id", id, "err", err)
			continue
		}
		out.Messages = append(out.Messages, MessageView{DeliveryID: r.DeliveryID, Message: r.Message,
			ResponseURLBy: r.ResponseURL, QueuedAt: r.QueuedAt, Status: "unknown"})
		ids = append(ids, r.DeliveryID)
	}
	for _, raw := range resps.Val() {
		var r responseRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			s.log.Warn("skipping an unreadable response record", "session_id", id, "err", err)
			continue
		}
		v := ResponseView{ResponseData: r.ResponseData, ReceivedAt: r.ReceivedAt}
		if r.ForwardID != "" {
			v.Forward = &ForwardView{DeliveryID: r.ForwardID, Status: "unknown"}
			ids = append(ids, r.ForwardID)
		}
		out.Responses = append(out.Responses, v)
	}
	if len(ids) == 0 {
		return out, nil
	}
	ds, err := s.engine.GetMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	// ds is in the order of ids (nil for unknown ones): the messages' deliveries, then the
	// forwarded responses'.
	for i := range out.Messages {
		mv := &out.Messages[i]
		d := ds[i]
		if d == nil {
			continue
		}
		mv.Status, mv.Attempts = string(d.Status), len(d.Attempts)
		if n := len(d.Attempts); n > 0 {
			last := d.Attempts[n-1]
			if d.Status == notifier.StatusDelivered {
				t := last.At.UTC().Format(timeFormat)
				mv.SentAt = &t
			} else {
				mv.LastError = lastError(last)
			}
		}
		if d.NextAttemptAt != nil && d.Status == notifier.StatusPending {
			t := d.NextAttemptAt.UTC().Format(timeFormat)
			mv.NextAttemptAt = &t
		}
	}
	next := len(out.Messages)
	for i := range out.Responses {
		f := out.Responses[i].Forward
		if f == nil {
			continue
		}
		if d := ds[next]; d != nil {
			f.Status, f.Attempts = string(d.Status), len(d.Attempts)
		}
		next++
	}
	return out, nil
}

func lastError(a notifier.Attempt) string {
	if a.Error != "" {
		return a.Error
	}
	if a.StatusCode != 0 {
		return "HTTP " + strconv.Itoa(a.StatusCode)
	}
	return ""
}
