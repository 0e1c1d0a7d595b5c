package notifier

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/httpx"
)

// Routes mounts the delivery inspection and replay API on r:
//
//	GET  /deliveries/{id}        200 the delivery; 404
//	GET  /deliveries             200 {"deliveries": [...], "next": cursor|null}; filters status,
//	                             subscriber_id, event_id, endpoint_id; limit (1-1000, default 100), after
//	POST /deliveries/{id}/retry  202 the delivery, pending again with fresh tries; 404; 409 when it
//	                             is still pending (it will be tried anyway); 503 when the backlog is full
func (e *Engine) Routes(r *mux.Router) {
	r.Handle("/deliveries", httpx.Handle(e.handleList)).Methods(http.MethodGet)
	r.Handle("/deliveries/{id}", httpx.Handle(e.handleGet)).Methods(http.MethodGet)
	r.Handle("/deliveries/{id}/retry", httpx.Handle(e.handleRetry)).Methods(http.MethodPost)
}

func (e *Engine) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := httpx.CheckID("id", id); err != nil {
		return err
	}
	d, err := e.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("delivery %s not found", id)
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, d)
	return nil
}

var listParams = map[string]bool{"status": true, "subscriber_id": true, "event_id": true, "endpoint_id": true, "limit": true, "after": true}

func (e *Engine) handleList(w http.ResponseWriter, r *http.Request) error {
	qv := r.URL.Query()
	for k := range qv {
		if !listParams[k] {
			return httpx.BadRequest(httpx.CodeUnknownField, k, "unknown query parameter %q; use status, subscriber_id, event_id, endpoint_id, limit or after", k)
		}
	}
	q := ListQuery{
		Status:       Status(qv.Get("status")),
		SubscriberID: qv.Get("subscriber_id"),
		EventID:      qv.Get("event_id"),
		EndpointID:   qv.Get("endpoint_id"),
		After:        qv.Get("after"),
	}
	switch q.Status {
	case "", StatusPending, StatusDelivered, StatusFailed:
	default:
		return httpx.Invalid("status", "status must be pending, delivered or failed, not %q", httpx.Truncate(string(q.Status), 40))
	}
	for _, f := range []struct{ name, v string }{{"subscriber_id", q.SubscriberID}, {"event_id", q.EventID}, {"endpoint_id", q.EndpointID}} {
		if f.v != "" {
			if err := httpx.CheckID(f.name, f.v); err != nil {
				return err
			}
		}
	}
	if s := qv.Get("limit"); s != "" {
		n, err := httpx.ParseLimit(s, 0, 1000)
		if err != nil {
			return err
		}
		q.Limit = n
	}
	ds, next, err := e.List(r.Context(), q)
	if errors.Is(err, ErrBadCursor) {
		return httpx.Invalid("after", "after must be the next cursor of a previous page")
	}
	if err != nil {
		return err
	}
	var nextJSON *string
	if next != "" {
		nextJSON = &next
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds, "next": nextJSON})
	return nil
}

func (e *Engine) handleRetry(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := httpx.CheckID("id", id); err != nil {
		return err
	}
	err := e.Retry(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound("delivery %s not found", id)
	case errors.Is(err, ErrPending):
		return &httpx.Error{Status: http.StatusConflict, Code: "delivery_pending",
			Message: "delivery " + id + " is still pending: it will be tried again on its own; retry it once it is delivered or failed"}
	case errors.Is(err, ErrBacklogFull):
		return httpx.Unavailable(5, "the delivery backlog is full; try again later")
	case err != nil:
		return err
	}
	d, err := e.Get(r.Context(), id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return httpx.NotFound("delivery %s not found", id)
		}
		return err
	}
	httpx.WriteJSON(w, http.StatusAccepted, d)
	return nil
}
