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
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
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
	ep, err := s.relayEndpoint(ctx, m.ChannelID)
	if err != nil {
		return nil, err
	}

	mu := s.lock(m.SessionID)
	mu.Lock()
	defer mu.Unlock()

	now := s.now().Format(timeFormat)
	sess, err := s.openSession(ctx, m, now)
	if err != nil {
		return nil, err
	}
	body, by, err := s.encodeRelay(m, sess.nonce)
	if err != nil {
		return nil, err
	}
	id, err := s.enqueueRelay(ctx, ep, m, sess, body)
	if err != nil {
		return nil, err
	}
	s.recordMessage(ctx, m, sess, messageRecord{DeliveryID: id, Message: m.Message, QueuedAt: now, ResponseURL: by})
	s.messages.WithLabelValues("queued").Inc()
	return &Queued{SessionID: m.SessionID, DeliveryID: id, Status: "queued"}, nil
}

// relayEndpoint returns the engine endpoint of the channel's server, registered with the engine.
// Errors are *httpx.Error for an unknown channel (404) and a channel with no URL or one the target
// rules refuse (422); anything else is a store failure.
func (s *Service) relayEndpoint(ctx context.Context, channelID string) (notifier.Endpoint, error) {
	ch, err := s.channels.Get(ctx, channelID)
	if errors.Is(err, channels.ErrNotFound) {
		s.messages.WithLabelValues("unknown_channel").Inc()
		e := httpx.NotFound("channel %q not found", channelID)
		e.Field = "channel_id"
		return notifier.Endpoint{}, e
	}
	if err != nil {
		return notifier.Endpoint{}, fmt.Errorf("read channel: %w", err)
	}
	ep := s.channelEndpoint(ch)
	if ep.URL == "" {
		s.messages.WithLabelValues("refused").Inc()
		return notifier.Endpoint{}, &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_target", Field: "channel_metadata.endpoint_url",
			Message: fmt.Sprintf("channel %q has no channel_metadata.endpoint_url to send to", ch.ChannelID)}
	}
	if err := s.ensureEndpoint(ctx, ep); err != nil {
		s.messages.WithLabelValues("refused").Inc()
		return notifier.Endpoint{}, engineError(err, "channel_metadata.endpoint_url")
	}
	return ep, nil
}

// openedSession is the session a message is sent in, as openSession found or created it.
type openedSession struct {
	keys    []string // keys.session
	nonce   string   // the random part of its callback token
	created bool     // this message created it
	open    string   // "1" when the caller gave its own response_url (callbacks need no token), else "0"
}

// openSession creates the message's session, or checks that the existing one belongs to the
// message's channel, before the message is enqueued. A session of another channel is an
// *httpx.Error (409).
func (s *Service) openSession(ctx context.Context, m Message, now string) (openedSession, error) {
	sess := openedSession{keys: s.keys.session(m.SessionID), open: "0"}
	if m.ResponseURL != "" {
		sess.open = "1"
	}
	res, err := ensureSession.Run(ctx, s.rdb, sess.keys, m.ChannelID, now, randomNonce(), ttlMS(s.cfg.TTL), sess.open).StringSlice()
	if err != nil {
		return openedSession{}, fmt.Errorf("record session: %w", err)
	}
	if res[0] == "conflict" {
		return openedSession{}, &httpx.Error{Status: http.StatusConflict, Code: "session_conflict", Field: "session_id",
			Message: fmt.Sprintf("session %q belongs to channel %q; use a new session_id for channel %q", m.SessionID, res[1], m.ChannelID)}
	}
	sess.nonce, sess.created = res[1], res[2] == "1"
	return sess, nil
}

// encodeRelay encodes what the channel server receives. Without a response_url from the caller it
// makes one that points at herald's /webhook-response with the session's token. by says who made
// the response_url: "herald" or "caller".
func (s *Service) encodeRelay(m Message, nonce string) (body []byte, by string, err error) {
	responseURL, by := m.ResponseURL, "caller"
	if responseURL == "" {
		responseURL = s.cfg.PublicURL + "/webhook-response?token=" + tokenFor(s.tokenKey, m.SessionID, nonce)
		by = "herald"
	}
	body, err = json.Marshal(relayBody{SessionID: m.SessionID, Message: m.Message, ResponseURL: responseURL})
	if err != nil {
		return nil, "", fmt.Errorf("encode message: %w", err)
	}
	return body, by, nil
}

// enqueueRelay enqueues the message for the channel's server and returns its delivery id. When
// the engine refuses it, a session the message created is removed again and the error is the
// engine's as an *httpx.Error (see engineError).
func (s *Service) enqueueRelay(ctx context.Context, ep notifier.Endpoint, m Message, sess openedSession, body []byte) (string, error) {
	id := ids.New("rly")
	err := s.enqueue(ctx, ep, notifier.Request{
		ID: id, EndpointID: ep.ID, Body: body, Kind: "relay",
		OrderingKey: "relay:" + m.SessionID, // one session's messages reach the channel server in order
	})
	if err == nil {
		return id, nil
	}
	if sess.created && !errors.Is(err, redisx.ErrNotReplicated) {
		// Leave nothing half-written: a session whose first message failed does not exist. (A
		// message written but not yet replicated stands, and will be sent: its session stays.)
		if derr := dropNewSession.Run(context.WithoutCancel(ctx), s.rdb, sess.keys, sess.nonce).Err(); derr != nil {
			s.log.Warn("could not remove the session of a message that failed", "session_id", m.SessionID, "err", derr)
		}
	}
	s.messages.WithLabelValues("refused").Inc()
	return "", engineError(err, "channel_metadata.endpoint_url")
}

// recordMessage appends an enqueued message to its session. A failure is only logged: the message
// will be delivered, only its record in the session is missing.
func (s *Service) recordMessage(ctx context.Context, m Message, sess openedSession, r messageRecord) {
	rec, _ := json.Marshal(r)
	n, err := appendMessage.Run(ctx, s.rdb, sess.keys, rec, r.QueuedAt, ttlMS(s.cfg.TTL), s.cfg.MaxMessages,
		m.ChannelID, sess.nonce, sess.open).Int()
	if err != nil {
		s.log.Warn("message enqueued but not recorded in its session", "session_id", m.SessionID, "delivery_id", r.DeliveryID, "err", err)
	} else if n == 2 {
		s.log.Warn("session was recreated while a message was being sent; its callback token changed",
			"session_id", m.SessionID, "delivery_id", r.DeliveryID)
	}
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
	if err := s.checkCallback(c); err != nil {
		return nil, err
	}
	channelID, err := s.authorize(ctx, c)
	if err != nil {
		return nil, err
	}

	mu := s.lock(c.SessionID)
	mu.Lock()
	defer mu.Unlock()

	r := s.newResponse(c)
	n, err := recordResponse.Run(ctx, s.rdb, s.keys.session(c.SessionID), r.record, r.idem, r.receivedAt, r.at.UnixMilli(),
		ttlMS(s.cfg.TTL), s.cfg.MaxResponses, s.cfg.MaxIdempotencyKeys).Int()
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
	if r.forwardID == "" {
		s.callbacks.WithLabelValues("accepted").Inc()
		return &Ack{}, nil
	}
	if err := s.forward(ctx, c, channelID, r); err != nil {
		return nil, err
	}
	s.callbacks.WithLabelValues("accepted").Inc()
	return &Ack{ForwardID: r.forwardID}, nil
}

// checkCallback validates a callback, with errors that name the field or header.
func (s *Service) checkCallback(c Callback) error {
	fail := func(err error) error {
		s.callbacks.WithLabelValues("invalid").Inc()
		return err
	}
	if err := httpx.CheckID("session_id", c.SessionID); err != nil {
		return fail(err)
	}
	if err := s.checkValue("response_data", c.ResponseData); err != nil {
		return fail(err)
	}
	if len(c.IdempotencyKey) > maxIdempotencyKeyLen {
		return fail(httpx.Invalid("Idempotency-Key", "the Idempotency-Key header is longer than %d characters", maxIdempotencyKeyLen))
	}
	return nil
}

// authorize reads the callback's session and checks its token (none is needed once a caller gave
// its own response_url). It returns the session's channel id, ErrSessionNotFound or ErrBadToken.
func (s *Service) authorize(ctx context.Context, c Callback) (channelID string, err error) {
	meta, err := s.rdb.HMGet(ctx, s.keys.meta(c.SessionID), "channel_id", "nonce", "open").Result()
	if err != nil {
		return "", fmt.Errorf("read session: %w", err)
	}
	channelID, _ = meta[0].(string)
	nonce, _ := meta[1].(string)
	open, _ := meta[2].(string)
	if channelID == "" {
		s.callbacks.WithLabelValues("unknown_session").Inc()
		return "", ErrSessionNotFound
	}
	if open != "1" && !tokenMatches(s.tokenKey, c.SessionID, nonce, c.Token) {
		s.callbacks.WithLabelValues("forbidden").Inc()
		return "", ErrBadToken
	}
	return channelID, nil
}

// response is a callback's response as Respond records and forwards it.
type response struct {
	data       json.RawMessage // response_data, compacted
	at         time.Time
	receivedAt string // at, formatted
	idem       string // hashKey of the Idempotency-Key, "" without one
	forwardID  string // delivery id of the forward, "" without a sessions server
	record     []byte // the responseRecord JSON, as stored
}

// newResponse prepares a callback's response for recording.
func (s *Service) newResponse(c Callback) response {
	now := s.now()
	r := response{
		data:       json.RawMessage(compactJSON(c.ResponseData)),
		at:         now,
		receivedAt: now.Format(timeFormat),
		idem:       hashKey(c.IdempotencyKey),
	}
	if s.cfg.SessionsURL != "" {
		r.forwardID = ids.New("fwd")
		if r.idem != "" {
			// The same callback repeated gets the same delivery id, which the engine enqueues once,
			// even after the session has forgotten the key.
			r.forwardID = "fwd_" + hashKey(c.SessionID + "\x00" + c.IdempotencyKey)[:40]
		}
	}
	r.record, _ = json.Marshal(responseRecord{ResponseData: r.data, ReceivedAt: r.receivedAt, ForwardID: r.forwardID})
	return r
}

// forward enqueues a recorded response for the sessions server, one session's responses in the
// order received. When the engine refuses it the record is undone, so the channel server's retry
// is taken (and forwarded) again, and the error is the engine's as an *httpx.Error.
func (s *Service) forward(ctx context.Context, c Callback, channelID string, r response) error {
	body, err := json.Marshal(forwardBody{SessionID: c.SessionID, ChannelID: channelID, ResponseData: r.data, ReceivedAt: r.receivedAt})
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	ep := notifier.Endpoint{ID: SessionsEndpointID, URL: s.cfg.SessionsURL, Secret: s.secret}
	err = s.enqueue(ctx, ep, notifier.Request{
		ID: r.forwardID, EndpointID: ep.ID, Body: body, Kind: "callback",
		OrderingKey: "callback:" + c.SessionID, // one session's responses reach the sessions server in order
	})
	if err == nil {
		return nil
	}
	if uerr := unrecordResponse.Run(context.WithoutCancel(ctx), s.rdb, s.keys.session(c.SessionID), r.record, r.idem).Err(); uerr != nil {
		s.log.Warn("could not undo a response that was not forwarded", "session_id", c.SessionID, "err", uerr)
	}
	s.callbacks.WithLabelValues("refused").Inc()
	return engineError(err, "")
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
	// Waiting is why a pending message waits (its delivery's).
	Waiting *notifier.Waiting `json:"waiting,omitempty"`
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
	out, st, err := s.readSession(ctx, id)
	if err != nil {
		return nil, err
	}
	deliveryIDs := s.addMessages(out, st.messages)
	deliveryIDs = append(deliveryIDs, s.addResponses(out, st.responses)...)
	if len(deliveryIDs) == 0 {
		return out, nil
	}
	ds, err := s.engine.GetMany(ctx, deliveryIDs)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	// ds is in the order of deliveryIDs (nil for unknown ones): the messages' deliveries, then the
	// forwarded responses'.
	showMessageDeliveries(out.Messages, ds[:len(out.Messages)])
	showForwards(out.Responses, ds[len(out.Messages):])
	return out, nil
}

// storedSession is what a session holds besides its meta.
type storedSession struct {
	messages  []string // messageRecord JSON, oldest first
	responses []string // responseRecord JSON, in the order received
}

// readSession reads a session in one round trip and returns it without messages and responses,
// which it returns as stored. It returns ErrSessionNotFound when there is no session.
func (s *Service) readSession(ctx context.Context, id string) (*Session, storedSession, error) {
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
		return nil, storedSession{}, fmt.Errorf("read session: %w", err)
	}
	m := meta.Val()
	if m["channel_id"] == "" {
		return nil, storedSession{}, ErrSessionNotFound
	}
	out := &Session{SessionID: id, ChannelID: m["channel_id"], CreatedAt: m["created_at"], UpdatedAt: m["updated_at"],
		Messages: []MessageView{}, Responses: []ResponseView{}}
	if ttl := pttl.Val(); ttl > 0 {
		out.ExpiresAt = s.now().Add(ttl).Format(timeFormat)
	}
	return out, storedSession{messages: msgs.Val(), responses: resps.Val()}, nil
}

// addMessages adds the stored messages to out, each with status "unknown", skipping unreadable
// records, and returns their delivery ids in order.
func (s *Service) addMessages(out *Session, records []string) (deliveryIDs []string) {
	for _, raw := range records {
		var r messageRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			s.log.Warn("skipping an unreadable message record", "session_id", out.SessionID, "err", err)
			continue
		}
		out.Messages = append(out.Messages, MessageView{DeliveryID: r.DeliveryID, Message: r.Message,
			ResponseURLBy: r.ResponseURL, QueuedAt: r.QueuedAt, Status: "unknown"})
		deliveryIDs = append(deliveryIDs, r.DeliveryID)
	}
	return deliveryIDs
}

// addResponses adds the stored responses to out, a forwarded one with its forward in status
// "unknown", skipping unreadable records, and returns the forwards' delivery ids in order.
func (s *Service) addResponses(out *Session, records []string) (deliveryIDs []string) {
	for _, raw := range records {
		var r responseRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			s.log.Warn("skipping an unreadable response record", "session_id", out.SessionID, "err", err)
			continue
		}
		v := ResponseView{ResponseData: r.ResponseData, ReceivedAt: r.ReceivedAt}
		if r.ForwardID != "" {
			v.Forward = &ForwardView{DeliveryID: r.ForwardID, Status: "unknown"}
			deliveryIDs = append(deliveryIDs, r.ForwardID)
		}
		out.Responses = append(out.Responses, v)
	}
	return deliveryIDs
}

// showMessageDeliveries sets each message's delivery state from ds, its delivery or nil when the
// engine has forgotten it (the message then stays "unknown").
func showMessageDeliveries(msgs []MessageView, ds []*notifier.Delivery) {
	for i, d := range ds {
		if d == nil {
			continue
		}
		mv := &msgs[i]
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
		mv.Waiting = d.Waiting
	}
}

// showForwards sets the state of each forwarded response's forward from ds, the forwards'
// deliveries in order (nil when the engine has forgotten one: it then stays "unknown").
func showForwards(resps []ResponseView, ds []*notifier.Delivery) {
	next := 0
	for i := range resps {
		f := resps[i].Forward
		if f == nil {
			continue
		}
		if d := ds[next]; d != nil {
			f.Status, f.Attempts = string(d.Status), len(d.Attempts)
		}
		next++
	}
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
