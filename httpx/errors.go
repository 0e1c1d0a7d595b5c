package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/heraldhq/herald/redisx"
)

// Error is an API error: an HTTP status plus the body {"error": {"code", "message", "field"}}.
// Handlers return *Error values; anything else that reaches WriteError is a server fault and is
// answered 500 without its text.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, when positive, is sent as a Retry-After header (seconds).
	RetryAfter int `json:"-"`
	// Err is an underlying cause kept for errors.Is/As; it is never shown to the client.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Error codes used across herald. Packages may add their own; these are the common ones.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidValue     = "invalid_value"
	CodeMissingField     = "missing_field"
	CodeUnknownField     = "unknown_field"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "already_exists"
	CodeTooLarge         = "body_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeRateLimited      = "rate_limited"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// BadRequest is a 400 naming the field at fault (field may be empty).
func BadRequest(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 invalid_value for field.
func Invalid(field, format string, args ...any) *Error {
	return BadRequest(CodeInvalidValue, field, format, args...)
}

// Missing is a 400 missing_field for field.
func Missing(field string) *Error {
	return BadRequest(CodeMissingField, field, "%s is required", field)
}

// NotFound is a 404 saying what was not found.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict is a 409.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Unavailable is a 503 with a Retry-After, for a store that is down or a backlog that is full.
func Unavailable(retryAfter int, format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: retryAfter, Message: fmt.Sprintf(format, args...)}
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ErrorFor is herald's one rule from an error a handler (or a middleware) met to the API error
// that answers it:
//
//	an *Error anywhere in the chain     that error, as it is
//	the store cannot serve now          503 unavailable with Retry-After 1 (redisx.IsTransient:
//	                                    unreachable, connection dropped or reset, timed out, full,
//	                                    read-only, loading...)
//	anything else                       500 internal, its text never shown
//
// Bad input never reaches the last line: handlers answer it with an *Error.
func ErrorFor(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case redisx.IsTransient(err):
		return Unavailable(1, "the store is unavailable, try again shortly")
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
}

// WriteError answers err as ErrorFor says. An error that is not an *Error is logged with the
// request's logger (WithLogger): at warn level when the store could not serve (Redis down, full
// or restarting is an operator's matter, not a bug), at error level when it is a server fault.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := ErrorFor(err)
	if !errors.As(err, new(*Error)) {
		level := slog.LevelError
		if e.Status == http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
		Logger(r.Context()).Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}
