package app

import (
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/httpx"
)

// notYet is what GET / says of a document or page this build does not serve.
const notYet = "not yet"

// Paths GET / points to when this build serves them.
const (
	openAPIPath   = "/openapi.json"
	dashboardPath = "/dashboard"
)

// index is the answer to GET /: what this daemon serves, read from its router, so it lists exactly
// the routes that exist.
type index struct {
	Service   string       `json:"service"`
	Version   string       `json:"version"`
	Docs      string       `json:"docs"`
	OpenAPI   string       `json:"openapi"`
	Dashboard string       `json:"dashboard"`
	Metrics   string       `json:"metrics"`
	Health    string       `json:"health"`
	Ready     string       `json:"ready"`
	Routes    []indexRoute `json:"routes"`
}

// indexRoute is one path and the methods it takes.
type indexRoute struct {
	Path    string   `json:"path"`
	Methods []string `json:"methods"`
}

// mountIndex mounts GET / on the API (behind the API keys, like every route but the open ones).
// The listing is made at the first request, once every route is mounted.
func (a *App) mountIndex() {
	build := sync.OnceValue(func() index { return buildIndex(a.Router, a.Cfg.Version) })
	a.API.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, build())
	})).Methods(http.MethodGet, http.MethodHead)
}

// buildIndex lists r's routes by path, with their methods merged and sorted.
func buildIndex(r *mux.Router, version string) index {
	methods := map[string][]string{}
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a subrouter's own route: its routes are walked next
		}
		ms, _ := route.GetMethods()
		methods[path] = append(methods[path], ms...)
		return nil
	})
	ix := index{Service: "herald", Version: version, Docs: "README.md in herald's source: walkthroughs, API conventions, configuration",
		OpenAPI: notYet, Dashboard: notYet, Metrics: "/metrics", Health: "/healthz", Ready: "/readyz"}
	for _, p := range slices.Sorted(maps.Keys(methods)) {
		ms := slices.Compact(slices.Sorted(slices.Values(methods[p])))
		ix.Routes = append(ix.Routes, indexRoute{Path: p, Methods: ms})
		switch p {
		case openAPIPath:
			ix.OpenAPI = p
		case dashboardPath:
			ix.Dashboard = p
		}
	}
	return ix
}
