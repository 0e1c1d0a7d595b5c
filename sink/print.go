package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// headersOfInterest are printed when present, in this order. Authorization and cookies never are.
var headersOfInterest = []string{
	"Content-Type", "User-Agent", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
	"Idempotency-Key", "X-Request-Id", "Retry-After",
}

// printout is one request's readable record, written in one piece.
type printout struct{ buf bytes.Buffer }

func (p *printout) head(t time.Time, r *http.Request, n int) {
	fmt.Fprintf(&p.buf, "== %s  %s %s  (%d bytes)\n", t.Format("15:04:05.000"), r.Method, r.URL.Path, n)
	for _, h := range headersOfInterest {
		if v := r.Header.Get(h); v != "" {
			fmt.Fprintf(&p.buf, "   %s: %s\n", strings.ToLower(h), v)
		}
	}
}

func (p *printout) line(format string, args ...any) {
	fmt.Fprintf(&p.buf, "   "+format+"\n", args...)
}

// body pretty-prints a JSON body, or quotes another one.
func (p *printout) body(b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "   ", "  "); err == nil {
		p.buf.WriteString("   ")
		p.buf.Write(out.Bytes())
		p.buf.WriteByte('\n')
		return
	}
	fmt.Fprintf(&p.buf, "   (not JSON) %q\n", truncate(string(b), 2000))
}

func (p *printout) answer(status int, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(&p.buf, "   -> %d %s\n", status, b)
}

// truncate cuts s to at most n bytes on a rune boundary, marking a cut with "...". It is
// httpx.Truncate, copied so that the sink needs none of the daemon's dependencies.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// writeJSON answers v as JSON with status, as httpx.WriteJSON does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
