package httpx

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Auth checks Authorization: Bearer <key> against keys on every request whose path is not in open.
// With no keys it lets everything through (the daemon then listens on loopback only; see
// CheckListenAuth).
func Auth(keys []string, open ...string) mux.MiddlewareFunc {
	hashed := make([][32]byte, len(keys))
	for i, k := range keys {
		hashed[i] = sha256.Sum256([]byte(k))
	}
	return func(next http.Handler) http.Handler {
		if len(keys) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, p := range open {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || tok == "" {
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
			if match != 1 {
				WriteError(w, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "API key is not valid"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
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
