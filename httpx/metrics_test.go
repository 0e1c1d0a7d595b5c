package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/httpx"
)

// series returns every sample of the named metric as "label=value,... value" lines, sorted.
func series(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64)
			if h := m.GetHistogram(); h != nil {
				v = "count=" + strconv.FormatUint(h.GetSampleCount(), 10)
			}
			out = append(out, strings.Join(ls, ",")+" "+v)
		}
	}
	sort.Strings(out)
	return out
}

// Requests are counted by the route's template, never by their path: unmatched paths (404) and
// methods a route does not take (405) share one label, and so do made-up methods. Statuses come
// from whatever answered, middleware included.
func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := httpx.NewRequestMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	r.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})).Methods("GET")
	api := r.NewRoute().Subrouter()
	api.Use(func(next http.Handler) http.Handler { // stands in for auth: refuses one path
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Header.Get("Authorization") == "" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	api.Handle("/channel/{id}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	})).Methods("GET", "PUT")
	h := m.Instrument(r)
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/healthz", ""},
		{"GET", "/healthz", ""},
		{"GET", "/channel/secret-looking-id-1", "k"},
		{"PUT", "/channel/secret-looking-id-2", "k"},
		{"GET", "/channel/secret-looking-id-3", ""},
		{"DELETE", "/channel/secret-looking-id-4", "k"},
		{"GET", "/no/such/path-5", "k"},
		{"BREW", "/no/such/path-6", "k"},
		{"BREW", "/healthz", ""},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := []string{
		"method=GET,route=/channel/{id},status=401 1",
		"method=GET,route=/channel/{id},status=404 1",
		"method=GET,route=/healthz,status=200 2",
		"method=GET,route=unmatched,status=404 1",
		"method=OTHER,route=unmatched,status=405 1",
		"method=OTHER,route=unmatched,status=404 1",
		"method=PUT,route=/channel/{id},status=404 1",
		"method=DELETE,route=unmatched,status=405 1",
	}
	sort.Strings(want)
	if got := series(t, reg, "herald_api_requests_total"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("herald_api_requests_total:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantDur := []string{
		"method=DELETE,route=unmatched count=1",
		"method=GET,route=/channel/{id} count=2",
		"method=GET,route=/healthz count=2",
		"method=GET,route=unmatched count=1",
		"method=OTHER,route=unmatched count=2",
		"method=PUT,route=/channel/{id} count=1",
	}
	if got := series(t, reg, "herald_api_request_duration_seconds"); strings.Join(got, "\n") != strings.Join(wantDur, "\n") {
		t.Errorf("herald_api_request_duration_seconds:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantDur, "\n"))
	}
}
