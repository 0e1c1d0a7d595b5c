package subscribers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/webhooksig"
)

// Engine is what the subscriber API needs from the delivery engine (*notifier.Engine).
type Engine interface {
	PutEndpoint(ctx context.Context, ep notifier.Endpoint) error
	DeleteEndpoint(ctx context.Context, id string) error
	BreakerState(endpointID string) notifier.BreakerState
	Health(ctx context.Context, endpointIDs ...string) ([]*notifier.EndpointHealth, error)
}

// HandlerConfig configures the subscriber API.
type HandlerConfig struct {
	Store  *Store
	Engine Engine
	// Policy is the operator's target rules; a URL they refuse is a 400.
	Policy egress.Policy
	// DefaultToken is the token of subscribers created without one; empty means a random token
	// per subscriber.
	DefaultToken string
	MaxBody      int64 // request body limit; default httpx.DefaultMaxBody
	// Nudge, when set, is called after a handshake is queued so that the verifier starts it at
	// once rather than at its next poll.
	Nudge func()
	Log   *slog.Logger
}

// Handlers serves the /subscribers routes.
type Handlers struct {
	cfg HandlerConfig
	v   validation
}

// NewHandlers returns the subscriber API.
func NewHandlers(cfg HandlerConfig) *Handlers {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Nudge == nil {
		cfg.Nudge = func() {}
	}
	return &Handlers{cfg: cfg, v: validation{policy: cfg.Policy, defaultToken: cfg.DefaultToken}}
}

// Routes mounts the subscriber API on r.
func (h *Handlers) Routes(r *mux.Router) {
	r.Handle("/subscribers", httpx.Handle(h.create)).Methods(http.MethodPost)
	r.Handle("/subscribers", httpx.Handle(h.list)).Methods(http.MethodGet)
	r.Handle("/subscribers/{id}", httpx.Handle(h.get)).Methods(http.MethodGet)
	r.Handle("/subscribers/{id}", httpx.Handle(h.patch)).Methods(http.MethodPatch)
	r.Handle("/subscribers/{id}", httpx.Handle(h.delete)).Methods(http.MethodDelete)
	r.Handle("/subscribers/{id}/verify", httpx.Handle(h.verify)).Methods(http.MethodPost)
	r.Handle("/subscribers/{id}/rotate-secret", httpx.Handle(h.rotateSecret)).Methods(http.MethodPost)
}

// endpoint is the engine's view of a subscriber.
// Endpoint is the delivery engine's view of s. Register it only for a verified URL: a new URL is
// registered when its handshake succeeds (see verifier.Config.OnVerified).
// A disabled subscriber's endpoint is disabled: it gets nothing, not even a replay, until the
// subscriber is verified again (the verifier registers it then). A 410 Gone disables the
// endpoint at once (DisableOnGone), before Health disables the subscriber.
func Endpoint(s *Subscriber) notifier.Endpoint {
	return notifier.Endpoint{ID: EndpointID(s.ID), URL: s.URL, Secret: s.Secret,
		RateLimitPerMinute: s.RateLimitPerMinute, MaxInFlight: s.MaxInFlight, Ordered: s.Ordered,
		Disabled: s.Status == StatusDisabled, DisableOnGone: true}
}

// putEndpoint registers s with the engine, turning a refused target into a 400.
func (h *Handlers) putEndpoint(ctx context.Context, s *Subscriber) error {
	err := h.cfg.Engine.PutEndpoint(ctx, Endpoint(s))
	if errors.Is(err, notifier.ErrInvalidTarget) {
		return httpx.Invalid("url", "the delivery engine refused the url: %s", err.Error())
	}
	if err != nil {
		return fmt.Errorf("register endpoint %s: %w", EndpointID(s.ID), err)
	}
	return nil
}

// view fills in what the store does not keep: each subscriber's endpoint health, read for all of
// them at once, whose breaker is breaker_state. When the health cannot be read, a subscriber
// shows no health, and this process's breaker.
func (h *Handlers) view(ctx context.Context, subs ...*Subscriber) {
	eps := make([]string, len(subs))
	for i, s := range subs {
		eps[i] = EndpointID(s.ID)
	}
	hs, err := h.cfg.Engine.Health(ctx, eps...)
	if err != nil {
		h.cfg.Log.Warn("subscriber endpoint health could not be read; showing this process's breakers", "err", err)
	}
	for i, s := range subs {
		if err == nil {
			s.Health, s.BreakerState = hs[i], string(hs[i].Breaker)
			continue
		}
		s.BreakerState = cmp.Or(string(h.cfg.Engine.BreakerState(eps[i])), string(notifier.BreakerClosed))
	}
}

// storeError turns the store's sentinels into API errors.
func storeError(err error, id string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound("no subscriber with id %q", id)
	case errors.Is(err, ErrConflict):
		return &httpx.Error{Status: http.StatusConflict, Code: "conflict", Message: "the subscriber was changed concurrently; try again"}
	}
	return err
}

func pathID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	return id, httpx.CheckID("id", id)
}

func (h *Handlers) create(w http.ResponseWriter, r *http.Request) error {
	var in input
	if err := httpx.Decode(w, r, h.cfg.MaxBody, &in); err != nil {
		return err
	}
	sub := &Subscriber{ID: ids.New("sub")}
	if err := h.v.apply(&in, sub); err != nil {
		return err
	}
	ctx := r.Context()
	// The engine learns the endpoint first: nothing can match the subscriber before it is
	// verified, and if storing fails the endpoint is removed again.
	if err := h.putEndpoint(ctx, sub); err != nil {
		return err
	}
	created, err := h.cfg.Store.Create(ctx, sub)
	if err != nil {
		if derr := h.cfg.Engine.DeleteEndpoint(context.WithoutCancel(ctx), EndpointID(sub.ID)); derr != nil {
			h.cfg.Log.Warn("could not remove the endpoint of a subscriber that was not stored", "subscriber_id", sub.ID, "err", derr)
		}
		return storeError(err, sub.ID)
	}
	h.cfg.Nudge()
	h.cfg.Log.Info("subscriber created", "subscriber_id", created.ID, "url", egress.Redact(created.URL))
	h.view(ctx, created)
	httpx.WriteJSON(w, http.StatusCreated, created)
	return nil
}

func (h *Handlers) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := httpx.ParseLimit(q.Get("limit"), DefaultLimit, MaxLimit)
	if err != nil {
		return err
	}
	after := q.Get("after")
	if after != "" && !ids.Valid(after) {
		return httpx.Invalid("after", "after must be the next cursor of a previous page")
	}
	subs, next, err := h.cfg.Store.List(r.Context(), after, limit)
	if err != nil {
		return err
	}
	h.view(r.Context(), subs...)
	var nextv *string
	if next != "" {
		nextv = &next
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"subscribers": subs, "next": nextv})
	return nil
}

func (h *Handlers) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	sub, err := h.cfg.Store.Get(r.Context(), id)
	if err != nil {
		return storeError(err, id)
	}
	h.view(r.Context(), sub)
	httpx.WriteJSON(w, http.StatusOK, sub)
	return nil
}

// patch applies a JSON merge patch (RFC 7396) to the subscriber's settable fields and checks the
// result as a whole, as create would.
func (h *Handlers) patch(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(w, r, h.cfg.MaxBody)
	if err != nil {
		return err
	}
	var patch map[string]json.RawMessage
	if err := httpx.Unmarshal(body, &patch); err != nil {
		return err
	}
	if patch == nil {
		return httpx.BadRequest(httpx.CodeInvalidJSON, "", "the body must be a JSON object (a merge patch)")
	}
	for k, v := range patch {
		switch {
		case slices.Contains(readOnlyFields, k):
			return httpx.Invalid(k, "%s is read-only", k)
		case !slices.Contains(writableFields, k):
			return httpx.BadRequest(httpx.CodeUnknownField, k, "unknown field %q", httpx.Truncate(k, 64))
		case k == "secret" && bytes.Equal(bytes.TrimSpace(v), []byte("null")):
			return httpx.Invalid("secret", "the secret cannot be removed; POST /subscribers/{id}/rotate-secret makes a new one")
		}
	}
	ctx := r.Context()
	updated, err := h.cfg.Store.Update(ctx, id, func(sub *Subscriber) error {
		merged, err := mergePatch(sub, patch)
		if err != nil {
			return err
		}
		var in input
		if err := httpx.Unmarshal(merged, &in); err != nil {
			return err
		}
		verifiedURL := sub.URL
		if err := h.v.apply(&in, sub); err != nil {
			return err
		}
		// Deliveries already queued keep going to the URL that passed its handshake: a new URL
		// gets nothing before its own handshake succeeds, when the verifier registers it.
		ep := *sub
		ep.URL = verifiedURL
		return h.putEndpoint(ctx, &ep)
	})
	if err != nil {
		return storeError(err, id)
	}
	if updated.Status == StatusPending {
		h.cfg.Nudge()
	}
	h.view(ctx, updated)
	httpx.WriteJSON(w, http.StatusOK, updated)
	return nil
}

// mergePatch applies patch to the settable fields of sub and returns the merged JSON object.
// The fields are all scalars or lists, so a patch value replaces the field, and null removes it.
func mergePatch(sub *Subscriber, patch map[string]json.RawMessage) ([]byte, error) {
	cur := input{URL: &sub.URL, Token: &sub.Token, Secret: &sub.Secret, ChannelIDs: sub.ChannelIDs,
		ChannelTags: sub.ChannelTags, ChatTypes: sub.ChatTypes, Types: sub.Types, Ordered: &sub.Ordered,
		Description: &sub.Description}
	if sub.RateLimitPerMinute > 0 {
		cur.RateLimitPerMinute = &sub.RateLimitPerMinute
	}
	if sub.MaxInFlight > 0 {
		cur.MaxInFlight = &sub.MaxInFlight
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	for k, v := range patch {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
	return json.Marshal(doc)
}

func (h *Handlers) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := h.cfg.Store.Delete(ctx, id); err != nil {
		return storeError(err, id)
	}
	// The subscriber is gone, so nothing new is sent to its endpoint; an endpoint the engine keeps
	// after a failure here is harmless, and the answer stays what the client needs to know.
	if err := h.cfg.Engine.DeleteEndpoint(context.WithoutCancel(ctx), EndpointID(id)); err != nil {
		h.cfg.Log.Warn("subscriber deleted, but its endpoint could not be removed from the engine", "subscriber_id", id, "err", err)
	}
	h.cfg.Log.Info("subscriber deleted", "subscriber_id", id)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

func (h *Handlers) verify(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	sub, err := h.cfg.Store.RequestVerification(r.Context(), id)
	if err != nil {
		return storeError(err, id)
	}
	h.cfg.Nudge()
	h.view(r.Context(), sub)
	httpx.WriteJSON(w, http.StatusAccepted, sub)
	return nil
}

// rotateSecret replaces the signing secret with a new one (or the one given). The engine keeps
// signing with the previous secret as well for 24 h, so receivers can switch over.
func (h *Handlers) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(w, r, h.cfg.MaxBody)
	if err != nil {
		return err
	}
	secret := ""
	if len(bytes.TrimSpace(body)) > 0 {
		var in struct {
			Secret *string `json:"secret"`
		}
		if err := httpx.Unmarshal(body, &in); err != nil {
			return err
		}
		if in.Secret != nil {
			if err := CheckSecret(*in.Secret); err != nil {
				return err
			}
			secret = *in.Secret
		}
	}
	if secret == "" {
		secret = webhooksig.NewSecret()
	}
	ctx := r.Context()
	sub, err := h.cfg.Store.SetSecret(ctx, id, secret, func(sub *Subscriber) error { return h.putEndpoint(ctx, sub) })
	if err != nil {
		return storeError(err, id)
	}
	h.cfg.Log.Info("subscriber secret rotated", "subscriber_id", id)
	h.view(ctx, sub)
	httpx.WriteJSON(w, http.StatusOK, sub)
	return nil
}
