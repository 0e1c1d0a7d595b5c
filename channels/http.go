package channels

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
)

// Handler serves the channel API (contract: Channels).
type Handler struct {
	store   *Store
	maxBody int64
	health  HealthFunc
}

// NewHandler returns the HTTP API over s; request bodies over maxBody bytes get 413 (0 means
// httpx.DefaultMaxBody).
func NewHandler(s *Store, maxBody int64) *Handler {
	return &Handler{store: s, maxBody: maxBody}
}

// HealthFunc returns the health of a channel's relay endpoint, as JSON shows it.
type HealthFunc func(ctx context.Context, channelID string) (any, error)

// WithHealth makes GET /channel/{id}?include=health answer the channel with the health of its
// relay endpoint, read by f, under "health". Without ?include the answer stays the seed's
// ChannelStoreObject exactly, which clients decode strictly (a Python dataclass built from it
// refuses a key it does not know, and so does PUT).
func (h *Handler) WithHealth(f HealthFunc) *Handler {
	h.health = f
	return h
}

// includeHealth reads ?include=, whose one value is "health" (when the handler has a HealthFunc).
func (h *Handler) includeHealth(r *http.Request) (bool, error) {
	inc, ok := r.URL.Query()["include"]
	switch {
	case !ok:
		return false, nil
	case len(inc) == 1 && inc[0] == "health" && h.health != nil:
		return true, nil
	case h.health == nil:
		return false, httpx.Invalid("include", "include is not available here")
	}
	return false, httpx.Invalid("include", "include must be health")
}

// Routes mounts POST /channel, GET/PUT/DELETE /channel/{id} and POST /channels on r.
func (h *Handler) Routes(r *mux.Router) {
	r.Handle("/channel", httpx.Handle(h.create)).Methods(http.MethodPost)
	r.Handle("/channel/{id}", httpx.Handle(h.get)).Methods(http.MethodGet)
	r.Handle("/channel/{id}", httpx.Handle(h.update)).Methods(http.MethodPut)
	r.Handle("/channel/{id}", httpx.Handle(h.delete)).Methods(http.MethodDelete)
	r.Handle("/channels", httpx.Handle(h.query)).Methods(http.MethodPost)
}

// channelBody is a POST /channel or PUT /channel/{id} body. Each field is kept raw so that an
// absent field, a null and a value can be told apart, and a value of the wrong type is reported
// with the field's name.
type channelBody struct {
	ChannelID          json.RawMessage `json:"channel_id"`
	ChannelName        json.RawMessage `json:"channel_name"`
	ChannelDescription json.RawMessage `json:"channel_description"`
	ChannelMetadata    json.RawMessage `json:"channel_metadata"`
	ChannelTags        json.RawMessage `json:"channel_tags"`
}

func isNull(r json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(r), []byte("null")) }

func rawString(field string, r json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", invalid(field, "%s must be a string", field)
	}
	return s, nil
}

// rawTags decodes channel_tags as they came; normalize drops repeats, validate counts them.
func rawTags(r json.RawMessage) ([]string, error) {
	var l []string
	if err := json.Unmarshal(r, &l); err != nil {
		return nil, invalid(fieldChannelTags, "channel_tags must be a list of strings")
	}
	return l, nil
}

func rawObject(field string, r json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, invalid(field, "%s must be an object", field)
	}
	return m, nil
}

func decodeBody(b []byte) (*channelBody, error) {
	var body channelBody
	if err := httpx.Unmarshal(b, &body); err != nil {
		var he *httpx.Error
		if errors.As(err, &he) && he.Code == httpx.CodeInvalidValue && he.Field == "" {
			return nil, httpx.BadRequest(httpx.CodeInvalidValue, "", "the body must be a JSON object holding the channel's fields")
		}
		return nil, err
	}
	return &body, nil
}

// DecodeCreate decodes a POST /channel body into a channel (not yet validated: Store.Create
// does that). Errors are 400 *httpx.Error values naming the field.
func DecodeCreate(b []byte) (*Channel, error) {
	body, err := decodeBody(b)
	if err != nil {
		return nil, err
	}
	c := &Channel{}
	if len(body.ChannelID) == 0 || isNull(body.ChannelID) {
		return nil, missing(fieldChannelID)
	}
	if c.ChannelID, err = rawString(fieldChannelID, body.ChannelID); err != nil {
		return nil, err
	}
	if err := httpx.CheckID(fieldChannelID, c.ChannelID); err != nil {
		return nil, err
	}
	if len(body.ChannelName) > 0 && !isNull(body.ChannelName) {
		if c.ChannelName, err = rawString(fieldChannelName, body.ChannelName); err != nil {
			return nil, err
		}
	}
	if len(body.ChannelDescription) > 0 && !isNull(body.ChannelDescription) {
		if c.ChannelDescription, err = rawString(fieldChannelDesc, body.ChannelDescription); err != nil {
			return nil, err
		}
	}
	if len(body.ChannelTags) > 0 && !isNull(body.ChannelTags) {
		if c.ChannelTags, err = rawTags(body.ChannelTags); err != nil {
			return nil, err
		}
	}
	if len(body.ChannelMetadata) == 0 || isNull(body.ChannelMetadata) {
		return nil, missing(fieldEndpointURL)
	}
	if c.ChannelMetadata, err = rawObject(fieldChannelMeta, body.ChannelMetadata); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodePatch decodes a PUT /channel/{id} body into a Patch. channel_id may be sent but must
// equal id. A null name or description resets it to "", null tags to []; channel_metadata may
// not be null (it must keep endpoint_url). Errors are 400 *httpx.Error values naming the field.
func DecodePatch(id string, b []byte) (Patch, error) {
	var p Patch
	body, err := decodeBody(b)
	if err != nil {
		return p, err
	}
	if len(body.ChannelID) > 0 {
		got, err := rawString(fieldChannelID, body.ChannelID)
		if err != nil || isNull(body.ChannelID) {
			return p, invalid(fieldChannelID, "channel_id must be a string")
		}
		if got != id {
			return p, invalid(fieldChannelID, "channel_id cannot be changed: the body says %q but the path says %q", httpx.Truncate(got, 128), id)
		}
	}
	str := func(field string, r json.RawMessage) (*string, error) {
		if len(r) == 0 {
			return nil, nil
		}
		s := ""
		if !isNull(r) {
			var err error
			if s, err = rawString(field, r); err != nil {
				return nil, err
			}
		}
		return &s, nil
	}
	if p.Name, err = str(fieldChannelName, body.ChannelName); err != nil {
		return p, err
	}
	if p.Description, err = str(fieldChannelDesc, body.ChannelDescription); err != nil {
		return p, err
	}
	if len(body.ChannelTags) > 0 {
		tags := []string{}
		if !isNull(body.ChannelTags) {
			if tags, err = rawTags(body.ChannelTags); err != nil {
				return p, err
			}
		}
		p.Tags = &tags
	}
	if len(body.ChannelMetadata) > 0 {
		if isNull(body.ChannelMetadata) {
			return p, invalid(fieldChannelMeta, "channel_metadata cannot be null: it must keep endpoint_url; send {\"key\": null} to remove one key")
		}
		if p.Metadata, err = rawObject(fieldChannelMeta, body.ChannelMetadata); err != nil {
			return p, err
		}
	}
	return p, nil
}

// pathID returns the {id} of the route, checked.
func pathID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if err := httpx.CheckID(fieldChannelID, id); err != nil {
		return "", err
	}
	return id, nil
}

func notFound(id string) error { return httpx.NotFound("channel %q not found", id) }

func busy(id string) error {
	e := httpx.Unavailable(1, "channel %q is being changed by other requests at the same time; try again", id)
	e.Err = ErrBusy
	return e
}

// storeError maps the store's sentinels to API errors.
func storeError(id string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return notFound(id)
	case errors.Is(err, ErrExists):
		return httpx.Conflict("channel %q already exists", id)
	case errors.Is(err, ErrBusy):
		return busy(id)
	}
	return err
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	b, err := httpx.ReadBody(w, r, h.maxBody)
	if err != nil {
		return err
	}
	c, err := DecodeCreate(b)
	if err != nil {
		return err
	}
	out, err := h.store.Create(r.Context(), c)
	if err != nil {
		return storeError(c.ChannelID, err)
	}
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	withHealth, err := h.includeHealth(r)
	if err != nil {
		return err
	}
	c, err := h.store.Get(r.Context(), id)
	if err != nil {
		return storeError(id, err)
	}
	if !withHealth {
		httpx.WriteJSON(w, http.StatusOK, c)
		return nil
	}
	health, err := h.health(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, struct {
		*Channel
		Health any `json:"health"`
	}{c, health})
	return nil
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	b, err := httpx.ReadBody(w, r, h.maxBody)
	if err != nil {
		return err
	}
	p, err := DecodePatch(id, b)
	if err != nil {
		return err
	}
	c, err := h.store.Update(r.Context(), id, p)
	if err != nil {
		return storeError(id, err)
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := h.store.Delete(r.Context(), id); err != nil {
		return storeError(id, err)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"channel_id": id, "deleted": true})
	return nil
}

// queryResponse is the POST /channels answer.
type queryResponse struct {
	Channels []json.RawMessage `json:"channels"`
	Next     *string           `json:"next"`
}

func (h *Handler) query(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := ParsePage(r.URL.Query().Get("limit"), r.URL.Query().Get("after"))
	if err != nil {
		return err
	}
	b, err := httpx.ReadBody(w, r, h.maxBody)
	if err != nil {
		return err
	}
	f, err := ParseFilter(b)
	if err != nil {
		return err
	}
	chans, next, err := h.store.QueryJSON(r.Context(), f, limit, after)
	if err != nil {
		return err
	}
	resp := queryResponse{Channels: chans}
	if next != "" {
		cur := EncodeCursor(next)
		resp.Next = &cur
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// ParsePage checks ?limit= (default DefaultLimit, 1..MaxLimit) and ?after= (a cursor from a
// previous page) and returns the limit and the id to start after.
func ParsePage(limitParam, afterParam string) (int, string, error) {
	limit, err := httpx.ParseLimit(limitParam, DefaultLimit, MaxLimit)
	if err != nil {
		return 0, "", err
	}
	after := ""
	if afterParam != "" {
		id, ok := DecodeCursor(afterParam)
		if !ok {
			return 0, "", httpx.Invalid("after", "after must be the next cursor of a previous page")
		}
		after = id
	}
	return limit, after, nil
}

// EncodeCursor makes the opaque paging cursor for the last channel id of a page.
func EncodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// DecodeCursor reverses EncodeCursor; ok is false for a string that is not a cursor.
func DecodeCursor(cur string) (string, bool) {
	if len(cur) > 256 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || !ids.Valid(string(b)) {
		return "", false
	}
	return string(b), true
}
