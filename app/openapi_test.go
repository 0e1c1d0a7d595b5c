package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/openapi"
)

// documentedRoutes returns "METHOD /path" for every operation of the OpenAPI document.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// servedRoutes returns "METHOD /path" for every route a fully built daemon registers.
func servedRoutes(t *testing.T, a *app.App) []string {
	t.Helper()
	var out []string
	err := a.Router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a subrouter's root: its routes are walked one by one
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s is registered for every method: register it for the ones it serves", path)
			return nil
		}
		for _, m := range methods {
			out = append(out, m+" "+path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// Every route the daemon serves is in the OpenAPI document, and the document has no operation
// the daemon does not serve.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	a, err := app.New(context.Background(), testConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	served, documented := servedRoutes(t, a), documentedRoutes(t)
	if len(served) < 20 {
		t.Fatalf("walked only %d routes: %v", len(served), served)
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi/openapi.json: document it", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s is in openapi/openapi.json but not served: remove it from the document", r)
		}
	}
}

// GET /openapi.json serves the document built into the binary, without an API key.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey} })
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || string(b) != string(openapi.Document()) {
		t.Fatalf("GET /openapi.json without a key: %d %q, %d bytes; want 200 and the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
}
