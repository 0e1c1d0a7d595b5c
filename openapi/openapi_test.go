package openapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/heraldhq/herald/openapi"
)

func load(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	return doc
}

// The document loads and is a valid OpenAPI 3.1 document: its references resolve, its schemas
// are well formed and its examples match them.
func TestDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
}

// kin-openapi reads the document as 3.1: a value a 3.1 schema refuses and a 3.0 reading would let
// through (a type list with null, a const) is refused, and null is taken where the list has it.
func TestThreeOneSchemasAreEnforced(t *testing.T) {
	t.Parallel()
	doc := load(t)
	for _, c := range []struct {
		schema, value string
		ok            bool
	}{
		{"ChannelPage", `{"channels": [], "next": null}`, true},
		{"ChannelPage", `{"channels": [], "next": "Yw"}`, true},
		{"ChannelPage", `{"channels": [], "next": 5}`, false},
		{"ChannelPage", `{"channels": []}`, false},
		{"ChannelDeleted", `{"channel_id": "c", "deleted": false}`, false},
		{"RelayQueued", `{"session_id": "s", "delivery_id": "d", "status": "sent"}`, false},
		{"Notification", `{"type": "update_notification", "update_type": null}`, true},
		{"Notification", `{"type": "update_notification", "update_type": "message_exploded"}`, false},
		{"RelayMessage", `{"channel_id": "c", "session_id": "s", "message": null}`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(c.value), &v); err != nil {
			t.Fatal(err)
		}
		err := doc.Components.Schemas[c.schema].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
		if (err == nil) != c.ok {
			t.Errorf("%s %s: valid = %v, want %v (%v)", c.schema, c.value, err == nil, c.ok, err)
		}
	}
}

// GET /openapi.json serves the document as JSON with an ETag; a client that has it gets 304.
func TestHandlerServesTheDocument(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(openapi.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != string(openapi.Document()) {
		t.Fatalf("GET: %d %q, %d bytes; want 200 application/json and the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match %q: %d, want 304", etag, resp.StatusCode)
	}
}

// The cost of serving the document (issue 12 asks for it).
func BenchmarkHandler(b *testing.B) {
	h := openapi.Handler()
	req := httptest.NewRequest("GET", "/openapi.json", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
