package app_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/app"
)

// GET / points a new user to what the daemon serves: its routes (read from the router), the
// operations endpoints, and the document and dashboard once they exist. It needs the API key like
// every route but the open ones, and its 401 carries the Bearer challenge.
func TestIndex(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey}; c.Version = "1.2.3" })
	resp, _ := do(t, "GET", base+"/", "", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("GET / without a key: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, m := do(t, "GET", base+"/", testKey, "")
	if resp.StatusCode != 200 || m["service"] != "herald" || m["version"] != "1.2.3" || m["metrics"] != "/metrics" ||
		m["health"] != "/healthz" || m["ready"] != "/readyz" || m["openapi"] != "/openapi.json" || m["dashboard"] != "not yet" {
		t.Fatalf("GET /: %d %v", resp.StatusCode, m)
	}
	routes := map[string][]string{}
	for _, r := range m["routes"].([]any) {
		r := r.(map[string]any)
		var ms []string
		for _, x := range r["methods"].([]any) {
			ms = append(ms, x.(string))
		}
		routes[r["path"].(string)] = ms
	}
	for path, want := range map[string][]string{
		"/":                      {"GET", "HEAD"},
		"/channel":               {"POST"},
		"/channel/{id}":          {"DELETE", "GET", "PUT"},
		"/channel/{id}/notify":   {"POST"},
		"/subscribers/{id}":      {"DELETE", "GET", "PATCH"},
		"/deliveries/{id}/retry": {"POST"},
		"/webhook-response":      {"POST"},
		"/metrics":               {"GET"},
		"/healthz":               {"GET", "HEAD"},
	} {
		if !slices.Equal(routes[path], want) {
			t.Errorf("GET / lists %s with %v, want %v", path, routes[path], want)
		}
	}
	// Every route listed is one the router serves: none answers "no route" or 405.
	for path, ms := range routes {
		for _, method := range ms {
			resp, m := do(t, method, base+strings.ReplaceAll(path, "{id}", "x"), testKey, "{}")
			e, _ := m["error"].(map[string]any)
			if msg, _ := e["message"].(string); resp.StatusCode == 405 || strings.HasPrefix(msg, "no route") {
				t.Errorf("GET / lists %s %s, which the router does not serve: %d %v", method, path, resp.StatusCode, m)
			}
		}
	}
}
