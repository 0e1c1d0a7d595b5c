// Package egress is herald's one way out to the network: the target rules every outgoing request
// obeys (deliveries and verification handshakes alike) and the tuned http.Client that enforces them.
//
// The rules: https only unless AllowHTTP; loopback, private, link-local (which holds the cloud
// metadata address 169.254.169.254), unique-local, multicast and unspecified addresses refused unless
// AllowPrivate. CheckURL applies them to a URL before it is stored; the client's dialer applies them
// again to the address a name resolved to, at dial time, so DNS rebinding cannot get around them.
// Redirects are never followed: a 3xx is an answer like any other.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which targets are allowed.
type Policy struct {
	AllowHTTP    bool // plain http:// targets
	AllowPrivate bool // loopback, private, link-local and other non-public addresses
}

// ErrRefused is wrapped by every refusal, so callers can tell a rule from a network error.
var ErrRefused = errors.New("target refused")

// CheckURL checks that raw is an absolute http(s) URL the policy allows. A host that is an IP
// literal is checked now; a name is checked again at dial time, once resolved.
func (p Policy) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil, fmt.Errorf("%w: %q is not a valid URL", ErrRefused, Redact(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return nil, fmt.Errorf("%w: %s uses http; only https targets are allowed (the operator can pass --allow-http)", ErrRefused, Redact(raw))
		}
	default:
		return nil, fmt.Errorf("%w: %q must be an absolute http or https URL", ErrRefused, Redact(raw))
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: %s has no host", ErrRefused, Redact(raw))
	}
	if !p.AllowPrivate {
		if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			return nil, fmt.Errorf("%w: %s points at loopback; private targets are not allowed (the operator can pass --allow-private-targets)", ErrRefused, Redact(raw))
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if why := privateReason(ip); why != "" {
				return nil, fmt.Errorf("%w: %s is a %s address; private targets are not allowed (the operator can pass --allow-private-targets)", ErrRefused, Redact(raw), why)
			}
		}
	}
	return u, nil
}

// privateReason names the kind of non-public address ip is, or returns "" for a public one.
func privateReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local (metadata)"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case sharedAddressSpace.Contains(ip):
		return "carrier-grade NAT"
	case ip.Is4() && ip.As4()[0] == 0:
		return "this-network"
	}
	return ""
}

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// ClientOptions configures NewClient.
type ClientOptions struct {
	Policy  Policy
	Timeout time.Duration // per request, including reading the body; default 30s
	// MaxIdleConnsPerHost bounds the keep-alive connections kept per host (default 16).
	MaxIdleConnsPerHost int
	// MaxConnsPerHost bounds the connections open to one host:port at a time (0: no bound);
	// requests past it wait for one, within their timeout.
	MaxConnsPerHost int
}

// NewClient returns the http.Client for outgoing requests: the dialer refuses addresses the policy
// does not allow (after DNS resolution), redirects are not followed, keep-alive is on.
func NewClient(o ClientOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 16
	}
	d := &net.Dialer{Timeout: min(o.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if !o.Policy.AllowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse dial address", ErrRefused)
			}
			if why := privateReason(ap.Addr()); why != "" {
				return fmt.Errorf("%w: resolves to a %s address; private targets are not allowed", ErrRefused, why)
			}
			return nil
		}
	}
	t := &http.Transport{
		Proxy:                 nil, // a proxy would make the address check meaningless
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.Timeout,
		// herald reads at most the first bytes of an answer: no Accept-Encoding: gzip on every
		// request, and no gzip reader to set up for the answers that would use it.
		DisableCompression: true,
		MaxConnsPerHost:    o.MaxConnsPerHost,
	}
	return &http.Client{
		Transport: t,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Redact returns u without userinfo, query or fragment, for logs and error messages: those parts
// may carry credentials or tokens.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if len(raw) > 40 {
			raw = raw[:40] + "..."
		}
		if i := strings.IndexAny(raw, "?#@"); i >= 0 {
			raw = raw[:i] + "..."
		}
		return raw
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = ""
		u.ForceQuery = false
	}
	u.Fragment = ""
	return u.String()
}

// IsRefused reports whether err is a target-rule refusal (possibly inside a url.Error).
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }
