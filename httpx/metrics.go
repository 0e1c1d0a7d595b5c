package httpx

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// UnmatchedRoute is the route label of requests no route matched (404s, and 405s on a known path):
// the path itself is never a label, so the metrics' cardinality stays bounded by the routes.
const UnmatchedRoute = "unmatched"

// otherMethod is the method label of a method that is not a standard one: the method is the
// client's to choose, so only the standard ones are labels of their own.
const otherMethod = "OTHER"

// apiLatencyBuckets are the buckets of herald_api_request_duration_seconds, in seconds.
var apiLatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// standardMethods are the methods that are labels of their own.
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodOptions: true, http.MethodConnect: true, http.MethodTrace: true,
}

// RequestMetrics counts the requests a router serves, by route template, method and status
// (herald_api_requests_total), and times them by route and method
// (herald_api_request_duration_seconds).
type RequestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRequestMetrics makes the metrics and registers them with reg.
func NewRequestMetrics(reg prometheus.Registerer) (*RequestMetrics, error) {
	m := &RequestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_api_requests_total",
			Help: "API requests answered, by route template (" + UnmatchedRoute + " when none matched), method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_api_request_duration_seconds",
			Help:    "Time to answer an API request, by route template and method.",
			Buckets: apiLatencyBuckets,
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// routeKey is the context key of the *string the matched route's template is written to.
type routeKey struct{}

// Instrument returns r counted: the returned handler serves every request through r and records
// it, whether a route matched or not. It adds a middleware to r that names the matched route;
// serve the returned handler, not r.
func (m *RequestMetrics) Instrument(r *mux.Router) http.Handler {
	r.Use(nameRoute)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		route := UnmatchedRoute
		sw := &statusWriter{ResponseWriter: w}
		r.ServeHTTP(sw, req.WithContext(context.WithValue(req.Context(), routeKey{}, &route)))
		m.observe(route, methodLabel(req.Method), sw.status, time.Since(start))
	})
}

// nameRoute writes the template of the route that matched to the request's route label.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(routeKey{}).(*string); ok {
			if cur := mux.CurrentRoute(r); cur != nil {
				if tpl, err := cur.GetPathTemplate(); err == nil {
					*p = tpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (m *RequestMetrics) observe(route, method string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answered 200
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// methodLabel is the method as a label: itself when standard, else otherMethod.
func methodLabel(method string) string {
	if standardMethods[method] {
		return method
	}
	return otherMethod
}
