package notifier

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/redisx"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an Engine. Zero values take the documented defaults (see DefaultConfig); this
// file is the one place the engine's defaults and limits are written: the daemon's flags take
// theirs from DefaultConfig and are checked with Check.
type Config struct {
	// Prefix namespaces every Redis key (default "herald"). Engines that share a prefix on one
	// Redis share the work.
	Prefix string
	// Version is sent in the User-Agent: herald/<version>.
	Version string

	// RequestTimeout bounds one try, from dial to the last byte read (default 30s).
	RequestTimeout time.Duration
	// RetrySchedule is the wait before each retry (default 4s, 8s, 10s: at most 4 tries).
	RetrySchedule []time.Duration
	// Jitter spreads every wait by up to ±Jitter of itself (default 0.1; negative turns it off).
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After on 429/503 (default 10m).
	MaxRetryAfter time.Duration
	// MaxDeliveryAge dead-letters a delivery still undelivered this long after it was accepted
	// (default 24h).
	MaxDeliveryAge time.Duration
	// RateLimitPerMinute and MaxInFlight are the per-endpoint defaults (100 and 10); an Endpoint
	// may override them.
	RateLimitPerMinute int
	MaxInFlight        int
	// AllowHTTP and AllowPrivate relax the target rules (see package egress).
	AllowHTTP    bool
	AllowPrivate bool
	// MaxBacklog bounds the pending deliveries of each queue shard (each lives on one Redis node);
	// past it Enqueue returns ErrBacklogFull (default 1,000,000).
	MaxBacklog int64
	// MaxConnsPerHost bounds this process's connections to one host:port (default 128): many
	// endpoints on one host share them, rather than opening a connection per try at once, which
	// is kinder to that host and cheaper for both sides. Tries past it wait for a connection
	// within their request timeout.
	MaxConnsPerHost int
	// QueueShards splits the queue into this many shards, each a full set of the engine's keys
	// under its own hash tag (default 1; at most 256). On a Redis Cluster each shard lives on one
	// slot, so the queue's work spreads over the masters: give it a multiple of the number of
	// masters. A delivery's shard follows from its endpoint. Every process works every shard; a
	// change of the count is safe on a running fleet (see shard.go). While a shard is idle its
	// fetcher waits on the shard's stream holding one connection of the Redis client's pool:
	// give the pool room for one per shard worked beyond what the rest needs (app does).
	QueueShards int
	// Workers bounds the tries this process runs at once (default 64). A try holds a worker for up
	// to the request timeout: keep it above (endpoints that may hang at once) x max in flight.
	Workers int
	// Retention keeps a finished delivery's record this long (default 7 days).
	Retention time.Duration

	// BreakerFailures consecutive failures open an endpoint's breaker (default 5); it stays open
	// BreakerCooldown (default 30s), then lets one probe through.
	BreakerFailures int
	BreakerCooldown time.Duration

	// Heartbeat is how often this process renews its liveness key (default 1s). A process whose
	// key is gone for 3 heartbeats is dead: its in-flight work is claimed by the others.
	Heartbeat time.Duration

	// Replication, when it asks for replicas, makes Enqueue and Retry return only once that many
	// replicas of the master that took the write hold it (Redis WAIT; see redisx.Replication):
	// what they accept survives a failover. Off by default.
	Replication redisx.Replication

	// SubscriberEndpoint, when set, is the endpoint every delivery of a subscriber goes to (herald
	// derives it from the subscriber's id). Enqueue then refuses a request whose EndpointID is not
	// SubscriberEndpoint(SubscriberID), and indexes a subscriber's deliveries once, under their
	// endpoint: List by subscriber walks that endpoint's index. When nil, each delivery with a
	// SubscriberID is indexed under the subscriber as well, one more index write per delivery.
	SubscriberEndpoint func(subscriberID string) string

	// OnOutcome, when set, is called after every try, deferral and dead-lettering (keep it quick;
	// Outcome.Tried tells a try from the others). More listeners can be
	// added with Engine.OnOutcome.
	OnOutcome func(Outcome)
	// Registerer receives the engine's metrics (nil: none are registered).
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now). Tests inject one.
	Now func() time.Time
	// Consumer names this process in the consumer group (default host-pid-random). It must be
	// unique among the processes sharing the queue.
	Consumer string
}

// Defaults.
var (
	DefaultRetrySchedule = []time.Duration{4 * time.Second, 8 * time.Second, 10 * time.Second}
)

const (
	maxRetries    = 50
	secretOverlap = 24 * time.Hour // a replaced secret keeps signing this long
)

// DefaultConfig returns the engine's defaults: a zero Config with every default applied, as New
// applies them. Consumer, Logger and Now are this process's (host-pid-random, slog.Default(),
// time.Now).
func DefaultConfig() Config { return Config{}.withDefaults() }

// Validate applies the defaults, then checks the config as New does. Every problem is a
// *ConfigError (wrapping ErrConfig) naming the setting; several are joined with errors.Join.
func (c Config) Validate() error { return c.withDefaults().validate() }

// Check checks c as it is, as Validate does but applying no defaults: a zero where the engine needs
// a positive value is an error rather than the default. It is for configs whose every setting was
// already filled from DefaultConfig, such as the daemon's flags, where a zero was asked for.
func (c Config) Check() error { return c.validate() }

func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, "herald")
	c.Version = cmp.Or(c.Version, "dev")
	c.RequestTimeout = cmp.Or(c.RequestTimeout, 30*time.Second)
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	c.RetrySchedule = append([]time.Duration(nil), c.RetrySchedule...)
	if c.Jitter == 0 {
		c.Jitter = 0.1
	} else if c.Jitter < 0 {
		c.Jitter = 0
	}
	c.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, 10*time.Minute)
	c.MaxDeliveryAge = cmp.Or(c.MaxDeliveryAge, 24*time.Hour)
	c.RateLimitPerMinute = cmp.Or(c.RateLimitPerMinute, 100)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, 10)
	c.MaxBacklog = cmp.Or(c.MaxBacklog, 1_000_000)
	c.Workers = cmp.Or(c.Workers, 64)
	c.QueueShards = cmp.Or(c.QueueShards, 1)
	c.MaxConnsPerHost = cmp.Or(c.MaxConnsPerHost, 128)
	c.Retention = cmp.Or(c.Retention, 7*24*time.Hour)
	c.BreakerFailures = cmp.Or(c.BreakerFailures, 5)
	c.BreakerCooldown = cmp.Or(c.BreakerCooldown, 30*time.Second)
	c.Heartbeat = cmp.Or(c.Heartbeat, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
				return r
			}
			return '-'
		}, host)
		c.Consumer = fmt.Sprintf("%s-%d-%s", cmp.Or(host, "host"), os.Getpid(), ids.New("c")[2:10])
	}
	return c
}

// ErrConfig is wrapped by every configuration error New and Validate return.
var ErrConfig = errors.New("notifier: invalid configuration")

// ConfigError is one invalid setting. It wraps ErrConfig.
type ConfigError struct {
	Field  string // the Config field, e.g. "Workers"
	Reason string // what is wrong with it, e.g. "must be between 1 and 100000, got 0"
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%v: %s %s", ErrConfig, e.Field, e.Reason) }

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// The upper bounds of the settings that have one (the lower bounds are in validate).
const (
	maxRequestTimeout = 10 * time.Minute   // RequestTimeout
	maxRetryWait      = 7 * 24 * time.Hour // each wait of RetrySchedule
	maxWorkers        = 100_000            // Workers
	maxConnsPerHost   = 100_000            // MaxConnsPerHost
)

// validate checks a config after defaults; every problem is a *ConfigError naming the setting.
func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	c.validateDelivery(bad)
	c.validateCapacity(bad)
	if strings.ContainsAny(c.Prefix, "{} \t\n") {
		bad("Prefix", "must not hold braces or spaces, got %q", c.Prefix)
	}
	if c.Heartbeat < 10*time.Millisecond || c.Heartbeat > time.Minute {
		bad("Heartbeat", "must be between 10ms and 1m, got %s", c.Heartbeat)
	}
	if !ids.Valid(strings.ReplaceAll(c.Consumer, "/", "-")) {
		bad("Consumer", "must be an id (letters, digits, '-', '_', '.', ':'), got %q", c.Consumer)
	}
	return errors.Join(errs...)
}

// validateDelivery checks the settings of one delivery's tries and waits.
func (c Config) validateDelivery(bad func(field, format string, args ...any)) {
	if c.RequestTimeout < time.Millisecond || c.RequestTimeout > maxRequestTimeout {
		bad("RequestTimeout", "must be between 1ms and %s, got %s", fmtDuration(maxRequestTimeout), c.RequestTimeout)
	}
	if len(c.RetrySchedule) > maxRetries {
		bad("RetrySchedule", "has %d waits; at most %d", len(c.RetrySchedule), maxRetries)
	}
	for i, d := range c.RetrySchedule {
		if d < time.Millisecond || d > maxRetryWait {
			bad("RetrySchedule", "wait %d is %s; each must be between 1ms and %s", i+1, d, fmtDuration(maxRetryWait))
		}
	}
	if c.Jitter > 1 {
		bad("Jitter", "must be a fraction between 0 and 1, got %g", c.Jitter)
	}
	if c.MaxRetryAfter < 0 {
		bad("MaxRetryAfter", "must not be negative, got %s", c.MaxRetryAfter)
	}
	if c.MaxDeliveryAge < time.Millisecond {
		bad("MaxDeliveryAge", "must be at least 1ms, got %s", c.MaxDeliveryAge)
	}
	if c.Retention < time.Second {
		bad("Retention", "must be at least 1s, got %s", c.Retention)
	}
	if c.BreakerFailures < 1 {
		bad("BreakerFailures", "must be at least 1, got %d", c.BreakerFailures)
	}
	if c.BreakerCooldown < time.Millisecond {
		bad("BreakerCooldown", "must be at least 1ms, got %s", c.BreakerCooldown)
	}
}

// validateCapacity checks the limits on work at once, per endpoint and per process.
func (c Config) validateCapacity(bad func(field, format string, args ...any)) {
	if c.RateLimitPerMinute < 1 {
		bad("RateLimitPerMinute", "must be at least 1, got %d", c.RateLimitPerMinute)
	}
	if c.MaxInFlight < 1 {
		bad("MaxInFlight", "must be at least 1, got %d", c.MaxInFlight)
	}
	if c.MaxBacklog < 1 {
		bad("MaxBacklog", "must be at least 1, got %d", c.MaxBacklog)
	}
	if c.Workers < 1 || c.Workers > maxWorkers {
		bad("Workers", "must be between 1 and %d, got %d", maxWorkers, c.Workers)
	}
	if c.QueueShards < 1 || c.QueueShards > maxQueueShards {
		bad("QueueShards", "must be between 1 and %d, got %d", maxQueueShards, c.QueueShards)
	}
	if err := c.Replication.Check(); err != nil {
		bad("Replication", "%v", err)
	}
	if c.MaxConnsPerHost < 1 || c.MaxConnsPerHost > maxConnsPerHost {
		bad("MaxConnsPerHost", "must be between 1 and %d, got %d", maxConnsPerHost, c.MaxConnsPerHost)
	}
}

// fmtDuration writes a whole number of hours or minutes as such (168h, 10m), unlike
// time.Duration.String (168h0m0s).
func fmtDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
