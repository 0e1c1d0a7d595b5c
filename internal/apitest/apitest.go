// Package apitest checks HTTP traffic with herald's API against its OpenAPI document
// (openapi/openapi.json), so that the document cannot drift from the code: a test package installs
// a Validator as http.DefaultClient's transport in its TestMain (Run), registers each herald API it
// starts (Serve), and from then on every request its tests make to that API, and every answer they
// get, is checked with kin-openapi's openapi3filter.
//
// The rules, for a request to a registered API:
//
//   - its path and method must be in the document; if not, herald must answer it 404 or 405 with
//     the error shape (a test may probe routes that do not exist, and that is their answer);
//   - the answer's status must be documented for the operation, and its headers and body must
//     match what the document says for that status (required fields present, types, enums,
//     formats, required headers such as Retry-After on a 503 or WWW-Authenticate on a 401);
//   - a request the document refuses (a missing required field, a wrong type, an undocumented
//     property in a strict body, a parameter out of range or not documented) must get a 4xx: herald accepting what
//     the document says is invalid is drift too. A request the document accepts may still get a
//     4xx, for rules a schema cannot say (a channel that does not exist, a secret that does not
//     decode).
//
// Where the document cannot say how herald reads a body (no Content-Type, or one an operation takes
// through "*/*"), the body is checked as the JSON herald reads it as. Request bodies over 64 KiB are
// not checked against their schema (tests of herald's limits send megabytes); their answers are.
//
// A broken rule makes the request fail: the client's Do returns an error naming the method, the
// path, the status and what did not match, so the test that made the request fails there. Run
// also fails the whole run if any check failed, in case a test ignored the error.
//
// Requests to hosts that were not registered (receivers, a profiling listener) pass unchecked.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/heraldhq/herald/openapi"
)

// Validator is an http.RoundTripper that checks the traffic with registered herald APIs against
// the OpenAPI document (see the package doc).
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	next   http.RoundTripper

	mu       sync.Mutex
	hosts    map[string]int // host:port of the herald APIs registered, with how many registrations
	failures []string
}

// New loads the document and returns a Validator that sends requests on with next
// (http.DefaultTransport when nil). It does not validate the document itself (a third of a second
// in every test binary): openapi's TestDocumentIsValid does, examples included.
func New(next http.RoundTripper) (*Validator, error) {
	if next == nil {
		next = http.DefaultTransport
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		return nil, fmt.Errorf("apitest: load openapi.json: %w", err)
	}
	// Route by path and method only: the document's server is herald's default address, and
	// tests listen on free ports.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("apitest: route openapi.json: %w", err)
	}
	return &Validator{doc: doc, router: router, next: next, hosts: map[string]int{}}, nil
}

// Serve registers the herald API at base (a URL such as http://127.0.0.1:8000): requests to its
// host are checked from now on, until release is called.
func (v *Validator) Serve(base string) (release func()) {
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	v.mu.Lock()
	v.hosts[host]++
	v.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.hosts[host]--; v.hosts[host] <= 0 {
				delete(v.hosts, host)
			}
		})
	}
}

func (v *Validator) serves(host string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.hosts[host] > 0
}

// Failures returns every check that failed so far.
func (v *Validator) Failures() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.failures...)
}

func (v *Validator) fail(msg string) error {
	v.mu.Lock()
	v.failures = append(v.failures, msg)
	v.mu.Unlock()
	return errors.New(msg)
}

// RoundTrip sends req on and checks it and its answer when req goes to a registered API.
func (v *Validator) RoundTrip(req *http.Request) (*http.Response, error) {
	return v.roundTrip(v.next, req)
}

// Transport returns a RoundTripper that checks as v does (sharing its registrations and
// failures) and sends requests on with next.
func (v *Validator) Transport(next http.RoundTripper) http.RoundTripper {
	return &transport{v: v, next: next}
}

type transport struct {
	v    *Validator
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.v.roundTrip(t.next, req)
}

// CloseIdleConnections passes on to next (httptest.Server.Close calls it on its client's).
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (v *Validator) roundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	if !v.serves(req.URL.Host) {
		return next.RoundTrip(req)
	}
	reqBody, err := readBody(req.Body)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Body = bodyOf(req, reqBody)
	resp, err := next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	respBody, err := readBody(resp.Body)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	check := req.Clone(context.Background())
	check.Body = bodyOf(req, reqBody)
	if problem := v.check(check, reqBody, resp, respBody); problem != "" {
		return nil, v.fail(fmt.Sprintf("apitest: %s %s answered %d: %s\n\tanswer: %s", req.Method, req.URL.RequestURI(),
			resp.StatusCode, problem, excerpt(respBody)))
	}
	return resp, nil
}

// check returns what in req or its answer disagrees with the document, or "".
func (v *Validator) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return v.checkNoRoute(resp, respBody)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // herald's config decides; its 401s are checked as answers
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	if len(reqBody) > maxCheckedBody {
		opts.ExcludeRequestBody = true
	}
	readAsJSON(req, route, reqBody)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr == nil {
		reqErr = undocumentedQuery(req, route)
	}
	if reqErr != nil && resp.StatusCode < 400 {
		return "herald accepted a request that openapi.json refuses: " + reqErr.Error()
	}
	if route.Operation.Responses.Status(resp.StatusCode) == nil {
		return fmt.Sprintf("status %d is not documented for %s %s in openapi.json", resp.StatusCode, route.Method, route.Path)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts,
	})
	if err != nil {
		return fmt.Sprintf("the answer does not match openapi.json (%s %s, status %d): %v", route.Method, route.Path, resp.StatusCode, err)
	}
	return ""
}

// undocumentedQuery returns an error naming a query parameter the operation does not document
// (openapi3filter lets those through).
func undocumentedQuery(req *http.Request, route *routers.Route) error {
	documented := map[string]bool{}
	for _, params := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				documented[p.Value.Name] = true
			}
		}
	}
	for name := range req.URL.Query() {
		if !documented[name] {
			return fmt.Errorf("query parameter %q is not documented for %s %s", name, route.Method, route.Path)
		}
	}
	return nil
}

// maxCheckedBody is the largest request body checked against its schema. Tests of herald's limits
// send megabytes to see them refused quickly; checking those would be most of what they measure.
// Their answers are checked all the same.
const maxCheckedBody = 64 << 10

// readAsJSON gives req the Content-Type herald reads its body with, where the document cannot say
// it: a body without a Content-Type is read as JSON (httpx.ReadBody), and so is a body under a
// Content-Type the operation takes only through "*/*" (POST /webhook-response takes a JSON object
// under any Content-Type).
func readAsJSON(req *http.Request, route *routers.Route, body []byte) {
	if len(body) == 0 || route.Operation.RequestBody == nil || route.Operation.RequestBody.Value == nil {
		return
	}
	content := route.Operation.RequestBody.Value.Content
	ct := req.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if ct == "" || (content["*/*"] != nil && content[mt] == nil) {
		req.Header.Set("Content-Type", "application/json")
	}
}

// checkNoRoute checks the answer to a request the document has no operation for: herald must not
// serve it either (404 or 405, with the error shape).
func (v *Validator) checkNoRoute(resp *http.Response, body []byte) string {
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		return "herald serves a path and method that openapi.json does not document (add the operation to openapi/openapi.json)"
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Sprintf("a %d must be a JSON error, not %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Sprintf("a %d must be a JSON error: %v", resp.StatusCode, err)
	}
	if err := v.doc.Components.Schemas["Error"].Value.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Sprintf("a %d must have the error shape of openapi.json: %v", resp.StatusCode, err)
	}
	return ""
}

func readBody(b io.ReadCloser) ([]byte, error) {
	if b == nil || b == http.NoBody {
		return nil, nil
	}
	defer b.Close()
	return io.ReadAll(b)
}

// bodyOf returns a fresh body of b for a copy of req (nil when req had none).
func bodyOf(req *http.Request, b []byte) io.ReadCloser {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body
	}
	return io.NopCloser(bytes.NewReader(b))
}

func excerpt(b []byte) string {
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return strings.TrimSpace(string(b))
}

var (
	installedMu sync.Mutex
	installed   *Validator
)

// Run runs a test package's tests with http.DefaultClient checking its requests to every herald
// API registered with Serve, and fails the run if any check failed (a test that ignored the error
// of a failed check does not hide it). Call it from TestMain: os.Exit(apitest.Run(m)).
func Run(m *testing.M) int {
	v, err := New(http.DefaultClient.Transport)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	installedMu.Lock()
	installed = v
	installedMu.Unlock()
	http.DefaultClient.Transport = v
	code := m.Run()
	if f := v.Failures(); len(f) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d requests or answers did not match openapi/openapi.json:\n", len(f))
		for _, msg := range f {
			fmt.Fprintln(os.Stderr, msg)
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Serve registers the herald API at base with the Validator Run installed, until the test ends:
// the requests the test sends it through http.DefaultClient are checked. It fails the test when
// Run is not the package's TestMain, so no test believes it is checked when it is not.
func Serve(t testing.TB, base string) {
	t.Helper()
	t.Cleanup(validator(t).Serve(base))
}

// Server is Serve for an httptest.Server: the requests sent through srv.Client() are checked too.
func Server(t testing.TB, srv *httptest.Server) {
	t.Helper()
	v := validator(t)
	t.Cleanup(v.Serve(srv.URL))
	c := srv.Client()
	c.Transport = v.Transport(c.Transport)
}

func validator(t testing.TB) *Validator {
	t.Helper()
	installedMu.Lock()
	defer installedMu.Unlock()
	if installed == nil {
		t.Fatal("apitest: the package's TestMain must call apitest.Run for its requests to be checked")
	}
	return installed
}
