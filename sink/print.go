package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald/httpx"
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
	fmt.Fprintf(&p.buf, "   (not JSON) %q\n", httpx.Truncate(string(b), 2000))
}

func (p *printout) answer(status int, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(&p.buf, "   -> %d %s\n", status, b)
}
