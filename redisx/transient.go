package redisx

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// transientReplies are the first words of the Redis error replies that mean "not now" rather than
// "never": the server, or the cluster, cannot serve the command at the moment, and the same
// command may succeed later without any change on herald's side. Each maps to what it tells an
// operator (TransientReason).
var transientReplies = map[string]string{
	"LOADING":     "redis is loading its data set after a restart",
	"CLUSTERDOWN": "the redis cluster cannot serve herald's keys (CLUSTERDOWN)",
	"TRYAGAIN":    "the redis cluster is resharding herald's keys (TRYAGAIN)",
	"MASTERDOWN":  "the redis replica lost its master (MASTERDOWN)",
	"READONLY":    "redis is read-only: herald reached a replica, a failover may be under way",
	"BUSY":        "redis is busy running a script past busy-reply-threshold",
	"NOREPLICAS":  "redis refuses writes: min-replicas-to-write is not met",
	"OOM":         "redis is full (maxmemory reached with noeviction): it refuses writes",
	// A MULTI whose command was refused when queued. herald's transactions are fixed in its code,
	// so what refuses one is a reply above (OOM, READONLY, LOADING...; go-redis keeps that reply
	// on the command and returns EXECABORT), not a wrong command, which would fail every test.
	"EXECABORT": "redis refused a command of a transaction (it is most likely full or read-only)",
}

// IsTransient reports whether err says the store could not serve a command now (it cannot be
// reached, the connection dropped, it timed out, or the server answered with a "not now" reply
// such as LOADING, READONLY or OOM) as opposed to a command that is wrong and stays wrong (ERR…,
// WRONGTYPE, NOSCRIPT, NOGROUP, and any error it does not know). It is herald's one rule: the
// API answers a transient error with 503 and Retry-After, and the delivery engine keeps the work
// for later instead of failing it.
func IsTransient(err error) bool { return TransientReason(err) != "" }

// TransientReason says in a few words why the store cannot serve now when err is transient (see
// IsTransient), and is "" otherwise. It never holds an address or a credential, so /readyz can
// show it.
func TransientReason(err error) string {
	if err == nil {
		return ""
	}
	var re redis.Error // a reply of the server; redis.Nil is one too ("redis: nil"), never transient
	if errors.As(err, &re) {
		word, _, _ := strings.Cut(re.Error(), " ")
		if r := transientReplies[word]; r != "" {
			return r
		}
		if redis.IsMaxClientsError(err) {
			return "redis refuses connections: maxclients reached"
		}
		return ""
	}
	// net.Error covers every dial and I/O failure: timeouts, context.DeadlineExceeded and the
	// syscall errnos (connection refused or reset, broken pipe) all implement it.
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "redis did not answer in time"
	case errors.As(err, &ne):
		return "redis is unreachable or dropped the connection"
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return "every redis connection stayed busy past the pool timeout"
	case errors.Is(err, redis.ErrClosed):
		return "the redis client is closed: herald is shutting down"
	case errors.Is(err, ErrNotReplicated):
		return "redis replicas did not acknowledge the write in time (--redis-wait-replicas)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "redis closed the connection" // dropped mid-reply
	}
	return ""
}
