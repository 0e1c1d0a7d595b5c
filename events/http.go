package events

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/notifier"
)

// Error codes this package adds to httpx's.
const (
	CodeSubscriberNotVerified = "subscriber_not_verified"
	CodeIdempotencyConflict   = "idempotency_key_reused"
)

// maxIdempotencyKey is the longest Idempotency-Key accepted (Stripe's limit).
const maxIdempotencyKey = 255

// Routes mounts POST /channel/{id}/notify and GET /events/{id}.
func (s *Service) Routes(r *mux.Router) {
	r.Handle("/channel/{id}/notify", httpx.Handle(s.handleNotify)).Methods(http.MethodPost)
	r.Handle("/events/{id}", httpx.Handle(s.handleGet)).Methods(http.MethodGet)
}

// notifyRequest is the body of POST /channel/{id}/notify. update_type is raw so that a wrong JSON
// type is reported against its field.
type notifyRequest struct {
	Type         *string         `json:"type"`
	UpdateType   *string         `json:"update_type"`
	Message      json.RawMessage `json:"message"`
	SubscriberID *string         `json:"subscriber_id"`
}

func (s *Service) handleNotify(w http.ResponseWriter, r *http.Request) error {
	channelID := mux.Vars(r)["id"] // Notify checks it
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		return httpx.Invalid("Idempotency-Key", "the Idempotency-Key header must be at most %d printable ASCII characters", maxIdempotencyKey)
	}
	var req notifyRequest
	if err := httpx.Decode(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	n := Notification{Type: deref(req.Type), UpdateType: deref(req.UpdateType), Message: req.Message, SubscriberID: deref(req.SubscriberID)}
	if req.Type != nil && *req.Type == "" {
		return httpx.Invalid("type", "type must not be empty")
	}
	if req.UpdateType != nil && *req.UpdateType == "" {
		return httpx.Invalid("update_type", "update_type must not be empty; leave it out or send null")
	}
	if req.SubscriberID != nil && *req.SubscriberID == "" {
		return httpx.Invalid("subscriber_id", "subscriber_id must not be empty; leave it out to notify every subscriber")
	}
	acc, replayed, err := s.Notify(r.Context(), channelID, n, key)
	var be *BacklogError
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownChannel):
		return httpx.NotFound("channel %q does not exist", channelID)
	case errors.Is(err, ErrUnknownSubscriber):
		return httpx.NotFound("subscriber %q does not exist", n.SubscriberID)
	case errors.Is(err, ErrSubscriberNotVerified):
		return &httpx.Error{Status: http.StatusConflict, Code: CodeSubscriberNotVerified, Field: "subscriber_id", Err: err,
			Message: "subscriber " + strconv.Quote(n.SubscriberID) + " is not verified or is disabled, so it cannot receive notifications; verify it first (POST /subscribers/{id}/verify)"}
	case errors.Is(err, ErrIdempotencyConflict):
		return &httpx.Error{Status: http.StatusConflict, Code: CodeIdempotencyConflict, Field: "Idempotency-Key", Err: err,
			Message: "this Idempotency-Key was already used with a different request to this channel; use a new key"}
	case errors.As(err, &be):
		return httpx.Unavailable(httpx.RetryAfterSeconds(be.RetryAfter), "the delivery backlog is full; retry later")
	default:
		return err
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	httpx.WriteJSON(w, http.StatusAccepted, acc)
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// eventResponse is GET /events/{id}.
type eventResponse struct {
	*Event
	Deliveries []*notifier.Delivery `json:"deliveries"`
	Next       *string              `json:"next"`
}

const (
	defaultPage = 100
	maxPage     = 1000
)

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := httpx.CheckID("id", id); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := httpx.ParseLimit(q.Get("limit"), defaultPage, maxPage)
	if err != nil {
		return err
	}
	after := q.Get("after")
	if len(after) > 1024 {
		return httpx.Invalid("after", "after is not a cursor this API returned")
	}
	ev, err := s.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("event %q does not exist (or is older than the retention period)", id)
	} else if err != nil {
		return err
	}
	ds, next, err := s.Deliveries(r.Context(), id, limit, after)
	if errors.Is(err, notifier.ErrBadCursor) {
		return httpx.Invalid("after", "after is not a cursor this API returned")
	} else if err != nil {
		return err
	}
	resp := eventResponse{Event: ev, Deliveries: ds}
	if resp.Deliveries == nil {
		resp.Deliveries = []*notifier.Delivery{}
	}
	if next != "" {
		resp.Next = &next
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}
