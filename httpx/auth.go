package httpx

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

// Defaults of AuthConfig's throttle of wrong API keys.
const (
	DefaultAuthFailures = 10          // wrong keys one client may send per window before it gets 429
	DefaultAuthWindow   = time.Minute // the window
	defaultAuthClients  = 10_000      // clients counted at once; past it, new ones share one count
)

// AuthConfig configures Auth.
type AuthConfig struct {
	Keys []string // the API keys; with none every request passes (loopback only: CheckListenAuth)
	Open []string // paths that need no key
	// Failures wrong keys one client may send per Window; past them its requests get 429 with
	// Retry-After until the window ends, whatever key they carry. 0: the defaults above.
	Failures int
	Window   time.Duration
}

// Auth checks Authorization: Bearer <key> (the scheme in any case, RFC 7235) against the keys on
// every request whose path is not open. A missing or wrong key gets 401 with WWW-Authenticate.
// Wrong keys are throttled per client (its IP address; an IPv6 /64): past cfg.Failures in a
// window, its requests get 429 with Retry-After before their key is even compared, so a guesser
// learns nothing until the window ends. The count lives in this process's memory, bounded (see
// authFailures), so it needs no store; behind a proxy every client shares the proxy's address.
func Auth(cfg AuthConfig) mux.MiddlewareFunc {
	hashed := make([][32]byte, len(cfg.Keys))
	for i, k := range cfg.Keys {
		hashed[i] = sha256.Sum256([]byte(k))
	}
	failures := newAuthFailures(cmp.Or(cfg.Failures, DefaultAuthFailures), cmp.Or(cfg.Window, DefaultAuthWindow), defaultAuthClients)
	return func(next http.Handler) http.Handler {
		if len(cfg.Keys) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slices.Contains(cfg.Open, r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			client := clientAddr(r)
			if wait := failures.wait(client, time.Now()); wait > 0 {
				tooManyWrongKeys(w, r, wait)
				return
			}
			tok, ok := bearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
				WriteError(w, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
					Message: "missing API key: send Authorization: Bearer <key>"})
				return
			}
			h := sha256.Sum256([]byte(tok))
			match := 0
			for i := range hashed {
				match |= subtle.ConstantTimeCompare(h[:], hashed[i][:])
			}
			if match == 1 {
				next.ServeHTTP(w, r)
				return
			}
			if wait := failures.fail(client, time.Now()); wait > 0 {
				tooManyWrongKeys(w, r, wait)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
			WriteError(w, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "API key is not valid"})
		})
	}
}

func tooManyWrongKeys(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	WriteError(w, r, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: RetryAfterSeconds(wait),
		Message: "too many wrong API keys from this address; try again later"})
}

// bearerToken returns the credentials of an "Authorization: Bearer <token>" header. The scheme
// is matched in any case and may be followed by several spaces (RFC 7235 section 2.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	return tok, tok != ""
}

// clientAddr is the address a client is counted under (its wrong keys; its requests when it sends
// no key): its IP, or the /64 of an IPv6 address (one host commonly holds a whole /64).
// X-Forwarded-For is not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// RetryAfterSeconds is a wait as the whole seconds of a Retry-After header: rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }

// authFailures counts the wrong keys of each client in fixed windows. It holds at most max
// clients: past that, the clients not yet counted in the window share one count, so a flood
// from many addresses neither grows the table nor goes unthrottled. A client with a count of its
// own is refused whatever key it sends once past the limit (wait); the shared count throttles
// only wrong keys (fail), so valid clients among a flood of addresses keep working.
type authFailures struct {
	limit  int
	window time.Duration
	max    int

	mu     sync.Mutex
	start  time.Time      // of the current window
	counts map[string]int // wrong keys per client in the current window
}

// overflowClient is the shared count of the clients past max.
const overflowClient = "overflow"

func newAuthFailures(limit int, window time.Duration, max int) *authFailures {
	return &authFailures{limit: limit, window: window, max: max, counts: map[string]int{}}
}

// wait returns how long client, past its limit, must wait before it may send a key again; zero
// while it is within its limit, or has no count of its own in this window.
func (f *authFailures) wait(client string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.start) >= f.window || f.counts[client] < f.limit {
		return 0
	}
	return f.start.Add(f.window).Sub(now)
}

// fail counts a wrong key from client at now. It returns zero while the client is within its
// limit (answer 401), else how long until the window ends (answer 429).
func (f *authFailures) fail(client string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.start) >= f.window {
		f.start, f.counts = now, map[string]int{}
	}
	if _, ok := f.counts[client]; !ok && len(f.counts) >= f.max {
		client = overflowClient
	}
	if f.counts[client] >= f.limit {
		return f.start.Add(f.window).Sub(now)
	}
	f.counts[client]++
	return 0
}

// CheckListenAuth refuses a non-loopback listen address when no API key is configured, unless
// allowNoAuth says the operator wants that.
func CheckListenAuth(addr string, keys []string, allowNoAuth bool) error {
	if len(keys) > 0 || allowNoAuth {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q without an API key: set --api-key, listen on 127.0.0.1, or pass --allow-no-auth to run an open API on purpose", addr)
}
