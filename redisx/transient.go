package redisx

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// transientReplies are the first words of the Redis error replies that mean "not now" rather than
// "never": the server, or the cluster, cannot serve the command at the moment, and the same
// command may succeed later without any change on herald's side.
var transientReplies = map[string]bool{
	"LOADING":     true, // the server is loading its data set after a restart
	"CLUSTERDOWN": true, // the cluster cannot serve this slot
	"TRYAGAIN":    true, // a multi-key command during resharding
	"MASTERDOWN":  true, // a replica lost its master (replica-serve-stale-data no)
	"READONLY":    true, // a write reached a replica: a failover is under way
	"BUSY":        true, // a script or function runs past busy-reply-threshold
	"NOREPLICAS":  true, // min-replicas-to-write is not met
	"OOM":         true, // maxmemory reached: the store cannot take writes now
}

// IsTransient reports whether err says the store could not serve a command now (it cannot be
// reached, the connection dropped, it timed out, or the server answered with a "not now" reply
// such as LOADING or READONLY) as opposed to a command that is wrong and stays wrong (ERR…,
// WRONGTYPE, NOSCRIPT, NOGROUP, and any error it does not know). It is herald's one rule: the
// API answers a transient error with 503 and Retry-After, and the delivery engine keeps the work
// for later instead of failing it.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error // a reply of the server; redis.Nil is one too ("redis: nil"), never transient
	if errors.As(err, &re) {
		word, _, _ := strings.Cut(re.Error(), " ")
		return transientReplies[word] || redis.IsMaxClientsError(err)
	}
	// net.Error covers every dial and I/O failure: timeouts, context.DeadlineExceeded and the
	// syscall errnos (connection refused or reset, broken pipe) all implement it.
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || // dropped mid-reply
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout)
}
