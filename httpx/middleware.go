package httpx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/gorilla/mux"
)

// NewRouter returns a mux.Router whose 404 and 405 answers are JSON errors.
func NewRouter() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		WriteError(w, req, NotFound("no route for %s %s", req.Method, req.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		WriteError(w, req, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
			Message: fmt.Sprintf("method %s is not allowed on %s", req.Method, req.URL.Path)})
	})
	return r
}

// HandlerFunc is an http.HandlerFunc that returns an error; Handle turns it into an http.Handler
// that answers the error with WriteError.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to http.Handler.
func Handle(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, err)
		}
	})
}

// Recover answers a panic with a JSON 500 and logs it with its stack, so one bad request never
// takes the daemon down.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				Logger(r.Context()).ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				WriteJSON(w, http.StatusInternalServerError, map[string]*Error{"error": {Code: CodeInternal, Message: "internal error"}})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type loggerKey struct{}

// WithLogger makes log the logger of the requests it serves: WriteError, Log and Recover write to
// it (see Logger), so requests log where the daemon does.
func WithLogger(log *slog.Logger) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loggerKey{}, log)))
		})
	}
}

// Logger returns the logger WithLogger gave ctx's request, or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

// Detach serves each request in a context that ends after timeout, and not when the client closes
// its side of the connection. Go's server cancels a request's context as soon as it reads EOF
// from the client, yet a client that half-closes after sending its request (shutdown(SHUT_WR), as
// `nc -N` and some proxies do) still waits for the answer: its request was cancelled mid-way and
// answered 500. A write half done is worse than one finished, so a request runs to its end;
// timeout bounds it (use the server's write timeout: past it no answer can be written anyway).
// The context keeps the request's values.
func Detach(timeout time.Duration) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Log logs each request at debug level, and at warn level when it ended in a 5xx. The query string
// is left out: it may carry a callback token.
func Log(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		Logger(r.Context()).Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

// RateLimit limits each caller (its API key, or its IP address when there is none) to limit
// requests per second, shared by every herald process through Redis, and sets the X-RateLimit-*
// headers on every answer. A limit of zero turns it off. keyPrefix namespaces the limiter's keys
// (redis_rate adds its own "rate:" in front).
func RateLimit(l *redis_rate.Limiter, keyPrefix string, limit redis_rate.Limit, open ...string) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		if l == nil || limit.Rate <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, p := range open {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			res, err := l.Allow(r.Context(), keyPrefix+":api:"+callerKey(r), limit)
			if err != nil {
				// Most likely the store is down, and the request could not be served anyway.
				WriteError(w, r, fmt.Errorf("API rate limiter: %w", err))
				return
			}
			h := w.Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(limit.Burst))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
			h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(res.ResetAfter).Unix(), 10))
			if res.Allowed == 0 {
				WriteError(w, r, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: RetryAfterSeconds(res.RetryAfter),
					Message: fmt.Sprintf("rate limit of %d requests per %s exceeded", limit.Rate, limit.Period)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// callerKey identifies the caller for rate limiting without putting a secret in a Redis key.
func callerKey(r *http.Request) string {
	if tok, ok := bearerToken(r); ok {
		h := sha256.Sum256([]byte(tok))
		return "key:" + hex.EncodeToString(h[:8])
	}
	return "ip:" + clientAddr(r)
}

// StrictQuery answers 400 to a request whose query string cannot be parsed (a stray '%' or ';'),
// instead of letting handlers silently ignore the broken parameters.
func StrictQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
				WriteError(w, r, BadRequest(CodeInvalidValue, "", "the query string is malformed: %s", Truncate(err.Error(), 100)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
