package receiver

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultMaxBodyBytes bounds the body a Handler reads (413 past it). herald's bodies stay well under
// it with its default limits (1 MiB requests, 64 KiB channel metadata); raise it if you raise
// herald's --max-body-bytes.
const DefaultMaxBodyBytes = 2 << 20

// ErrCallback wraps the error a Config callback returned (the Handler answers 500, so herald tries
// again later).
var ErrCallback = errors.New("receiver: the callback failed")

// Config configures a Handler. Set the callbacks of the payloads the endpoint expects; a verified
// payload whose callback is nil is acknowledged (204) and dropped, as webhook senders expect of
// events a receiver does not handle.
type Config struct {
	// Secrets verify the requests (at least one): a subscriber's secret for its notifications, or
	// herald's --signing-secret for relayed messages and forwarded responses. Give the old and the
	// new secret while you move to a new one (herald itself signs with both for 24 h after a
	// rotation, so one is enough while it does).
	Secrets []string
	// Tolerance is how far a request's timestamp may be from now (default DefaultTolerance).
	Tolerance time.Duration
	// MaxBodyBytes bounds the body read (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Token, when set, must be the token of every handshake and notification, compared in
	// constant time (403 otherwise): the seed's WEBHOOK_VERIFICATION_TOKEN check.
	Token string

	OnUpdate    func(ctx context.Context, d Delivery, n *UpdateNotification) error
	OnRepublish func(ctx context.Context, d Delivery, r *ChannelRequest) error
	OnUnpublish func(ctx context.Context, d Delivery, r *ChannelRequest) error
	OnMessage   func(ctx context.Context, d Delivery, m *RelayedMessage) error
	OnResponse  func(ctx context.Context, d Delivery, r *ForwardedResponse) error
	// OnOther gets verified JSON objects of no shape Decode knows (a newer herald's payloads), raw.
	OnOther func(ctx context.Context, d Delivery, body []byte) error

	// OnError, when set, is told of every request the Handler refused or whose callback failed,
	// with the status answered; err names the problem and never holds a secret. The Handler
	// itself logs nothing.
	OnError func(r *http.Request, status int, err error)
	// Now is the clock timestamps are checked against (default time.Now).
	Now func() time.Time
}

// Handler is an http.Handler for herald's requests: it reads the body (bounded), verifies the
// Standard Webhooks signature, answers url_verification handshakes, decodes the payload and calls
// the Config callback of its type. See the package documentation for the statuses it answers.
type Handler struct {
	cfg      Config
	verifier *Verifier
}

// NewHandler returns a Handler for cfg. It returns an error wrapping ErrBadSecret when a secret is
// malformed or none is given.
func NewHandler(cfg Config) (*Handler, error) {
	v, err := NewVerifier(cfg.Secrets, cfg.Tolerance)
	if err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Secrets = nil // kept only as keys, in the Verifier
	return &Handler{cfg: cfg, verifier: v}, nil
}

// ServeHTTP handles one request from herald.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, status, err := h.read(w, r)
	if err != nil {
		h.refuse(w, r, status, err)
		return
	}
	d, err := h.verify(r.Header, body)
	if err != nil {
		h.refuse(w, r, http.StatusUnauthorized, err)
		return
	}
	p, err := Decode(body)
	if errors.Is(err, ErrUnknownPayload) {
		h.finish(w, r, call(r.Context(), h.cfg.OnOther, d, body))
		return
	}
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if err := h.checkToken(p); err != nil {
		h.refuse(w, r, http.StatusForbidden, err)
		return
	}
	if v, ok := p.(*URLVerification); ok {
		answerChallenge(w, v)
		return
	}
	h.finish(w, r, h.dispatch(r.Context(), d, p))
}

// read reads the body of a POST, at most MaxBodyBytes of it.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("receiver: method %s: herald sends POST", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("receiver: the body is over the limit of %d bytes", h.cfg.MaxBodyBytes)
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("receiver: reading the body: %w", err)
	}
	return body, 0, nil
}

// verify checks the request's signature. herald sends url_verification handshakes unsigned: a
// request with none of the signature headers passes when it is one (it calls no callback; answering
// a challenge reveals nothing). A handshake that carries signature headers must verify.
func (h *Handler) verify(hdr http.Header, body []byte) (Delivery, error) {
	d, err := h.verifier.VerifyAt(hdr, body, h.cfg.Now())
	if err != nil && unsigned(hdr) && isHandshake(body) {
		return Delivery{}, nil
	}
	return d, err
}

// unsigned reports whether the request carries none of the signature headers.
func unsigned(h http.Header) bool {
	return h.Get(HeaderID) == "" && h.Get(HeaderTimestamp) == "" && h.Get(HeaderSignature) == ""
}

// isHandshake reports whether body is a url_verification handshake.
func isHandshake(body []byte) bool {
	var p struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(body, &p) == nil && p.Type == TypeURLVerification
}

// checkToken refuses a handshake or notification whose token is not Config.Token, when set.
func (h *Handler) checkToken(p any) error {
	if h.cfg.Token == "" {
		return nil
	}
	var tok string
	switch v := p.(type) {
	case *URLVerification:
		tok = v.Token
	case *UpdateNotification:
		tok = v.Token
	case *ChannelRequest:
		tok = v.Token
	default:
		return nil // relayed messages and forwarded responses carry no token
	}
	if !hmac.Equal([]byte(tok), []byte(h.cfg.Token)) {
		return errors.New("receiver: the payload's token is not this endpoint's verification token")
	}
	return nil
}

// answerChallenge passes the handshake: 200 with {"challenge": ...}, one of the forms herald accepts.
func answerChallenge(w http.ResponseWriter, v *URLVerification) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"challenge": v.Challenge})
}

// dispatch calls the callback of p's type, if set.
func (h *Handler) dispatch(ctx context.Context, d Delivery, p any) error {
	switch v := p.(type) {
	case *UpdateNotification:
		return call(ctx, h.cfg.OnUpdate, d, v)
	case *ChannelRequest:
		if v.Type == TypeUnpublishRequest {
			return call(ctx, h.cfg.OnUnpublish, d, v)
		}
		return call(ctx, h.cfg.OnRepublish, d, v)
	case *RelayedMessage:
		return call(ctx, h.cfg.OnMessage, d, v)
	case *ForwardedResponse:
		return call(ctx, h.cfg.OnResponse, d, v)
	}
	return nil
}

// call calls f unless it is nil, wrapping its error in ErrCallback.
func call[T any](ctx context.Context, f func(context.Context, Delivery, T) error, d Delivery, v T) error {
	if f == nil {
		return nil
	}
	if err := f(ctx, d, v); err != nil {
		return fmt.Errorf("%w: %w", ErrCallback, err)
	}
	return nil
}

// finish answers 204 after the callback, or 500 when it failed. The callback's error is given to
// OnError, never written to herald.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		h.report(r, http.StatusInternalServerError, err)
		http.Error(w, ErrCallback.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// refuse answers status with err's message, which names the problem and holds no secret.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.report(r, status, err)
	http.Error(w, err.Error(), status)
}

func (h *Handler) report(r *http.Request, status int, err error) {
	if h.cfg.OnError != nil {
		h.cfg.OnError(r, status, err)
	}
}
