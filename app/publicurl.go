package app

import "net"

// defaultPublicURL is the public URL of a daemon listening on addr when --public-url is not set:
// http://addr, except on a wildcard address (":8100", "0.0.0.0:8100", "[::]:8100"), which names
// no host another machine could call back: http://<hostname>:8100 then, from hostname (the
// machine's, or a container's, which other containers on its network resolve), or
// http://127.0.0.1:8100 when there is none. derived says the URL is such a guess, which New
// warns about (Config.publicURLGuessed).
func defaultPublicURL(addr string, hostname func() (string, error)) (url string, derived bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !wildcardHost(host) {
		return "http://" + addr, false
	}
	h, err := hostname()
	if err != nil || h == "" {
		h = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(h, port), true
}

// wildcardHost reports whether a listen address's host means every interface.
func wildcardHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
