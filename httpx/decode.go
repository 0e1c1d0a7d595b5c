package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMaxBody is the request body limit when none is configured (1 MiB).
const DefaultMaxBody = 1 << 20

// ReadBody reads the request body up to limit bytes, checking that it is JSON by content type
// (a missing Content-Type is accepted as JSON, as curl users expect). It returns 413 past limit and
// 415 for another media type.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia,
				Message: fmt.Sprintf("Content-Type must be application/json, not %q", Truncate(ct, 100))}
		}
	}
	return ReadLimited(w, r, limit)
}

// ReadLimited reads the request body, whatever its Content-Type, with a 413 past limit
// (DefaultMaxBody when limit <= 0).
func ReadLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
		}
		return nil, BadRequest(CodeInvalidJSON, "", "could not read the request body")
	}
	return b, nil
}

// Decode reads a JSON body into v, refusing unknown fields, trailing data and an empty body, with
// errors that name the offending field.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// Unmarshal decodes JSON b into v strictly (see Decode).
func Unmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return BadRequest(CodeInvalidJSON, "", "request body is empty; a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return JSONError(err)
	}
	if dec.More() {
		return BadRequest(CodeInvalidJSON, "", "request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return BadRequest(CodeInvalidJSON, "", "request body has data after the JSON value")
	}
	return nil
}

// JSONError turns an encoding/json error into a 400 that names the problem and the field.
func JSONError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return BadRequest(CodeInvalidJSON, "", "request body is not valid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		return BadRequest(CodeInvalidValue, field, "%s must be %s, not a JSON %s", fieldName(field), jsonType(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return BadRequest(CodeInvalidJSON, "", "request body is truncated JSON")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return BadRequest(CodeUnknownField, f, "unknown field %q", f)
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return BadRequest(CodeInvalidJSON, "", "request body could not be decoded: %s", Truncate(err.Error(), 200))
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "of another type"
}

// Truncate cuts s to at most n bytes, at a character boundary, marking a cut with "...", for
// quoting what a client sent in an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// ParseLimit reads a ?limit= page size: def when s is empty, else a whole number from 1 to max
// (more is refused rather than cut, so a client learns the bound instead of paging short).
func ParseLimit(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, Invalid("limit", "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}
