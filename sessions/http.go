package sessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/httpx"
)

// Routes mounts the relay's routes on r:
//
//	POST /channel/message    relay a message to a channel server (202)
//	POST /webhook-response   a channel server's callback (200); needs no API key, see the token rules
//	GET  /sessions/{id}      a session's messages, their delivery status and its responses
//
// Each is registered for its method only, on its exact path, so that /channel/{id} routes of the
// channel API are not shadowed.
func (s *Service) Routes(r *mux.Router) {
	r.Handle("/channel/message", httpx.Handle(s.handleMessage)).Methods(http.MethodPost)
	r.Handle("/webhook-response", httpx.Handle(s.handleCallback)).Methods(http.MethodPost)
	r.Handle("/sessions/{id}", httpx.Handle(s.handleGet)).Methods(http.MethodGet)
}

func (s *Service) handleMessage(w http.ResponseWriter, r *http.Request) error {
	var m Message
	if err := httpx.Decode(w, r, s.cfg.MaxBodyBytes, &m); err != nil {
		s.messages.WithLabelValues("invalid").Inc()
		return err
	}
	q, err := s.Send(r.Context(), m)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusAccepted, q)
	return nil
}

// handleCallback takes a channel server's callback. Unlike the API routes it is liberal in what it
// accepts: channel servers are written by others, and a response is not worth losing over an extra
// key or a wrong Content-Type header. The body must still be a JSON object (400 otherwise).
func (s *Service) handleCallback(w http.ResponseWriter, r *http.Request) error {
	b, err := httpx.ReadLimited(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		s.callbacks.WithLabelValues("invalid").Inc()
		return err
	}
	var c Callback
	if len(bytes.TrimSpace(b)) == 0 {
		s.callbacks.WithLabelValues("invalid").Inc()
		return httpx.BadRequest(httpx.CodeInvalidJSON, "", "request body is empty; a JSON object with session_id and response_data is required")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		s.callbacks.WithLabelValues("invalid").Inc()
		return httpx.JSONError(err)
	}
	c.Token = r.URL.Query().Get("token")
	c.IdempotencyKey = r.Header.Get("Idempotency-Key")
	ack, err := s.Respond(r.Context(), c)
	switch {
	case errors.Is(err, ErrSessionNotFound):
		e := httpx.NotFound("session %q is unknown or has expired", c.SessionID)
		e.Field = "session_id"
		return e
	case errors.Is(err, ErrBadToken):
		msg := "the callback token is wrong for this session"
		if c.Token == "" {
			msg = "this session's response_url carries a token; call back that exact URL (the token query parameter is missing)"
		}
		return &httpx.Error{Status: http.StatusForbidden, Code: httpx.CodeForbidden, Field: "token", Message: msg}
	case err != nil:
		return err
	}
	out := map[string]any{"success": true}
	if ack.Duplicate {
		out["duplicate"] = true
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	sess, err := s.Get(r.Context(), id)
	if errors.Is(err, ErrSessionNotFound) {
		return httpx.NotFound("session %q is unknown or has expired", id)
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, sess)
	return nil
}
