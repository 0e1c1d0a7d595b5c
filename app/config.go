package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/sessions"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/webhooksig"
)

// Config is everything `herald serve` can be told. Defaults come from Default(); cmd/herald
// overlays the environment (HERALD_<NAME>) and then the flags; Validate checks the result once.
type Config struct {
	Addr  string
	Redis redisx.Options
	// Replication makes the work herald accepts (notify, relay, callbacks, replays) wait for
	// replicas before its 202 (--redis-wait-replicas).
	Replication redisx.Replication
	RedisPrefix string
	APIKeys     []string
	AllowNoAuth bool
	PublicURL   string
	// publicURLGuessed says Validate made PublicURL up from a wildcard Addr (New warns).
	publicURLGuessed bool
	SessionsURL      string

	VerificationToken string
	SigningSecret     string

	RequestTimeout     time.Duration
	RetrySchedule      []time.Duration
	MaxDeliveryAge     time.Duration
	RateLimitPerMinute int
	MaxInFlight        int
	MaxConnsPerHost    int
	AllowHTTP          bool
	AllowPrivate       bool
	MaxBacklog         int64
	Workers            int
	QueueShards        int

	SessionTTL        time.Duration
	DeliveryRetention time.Duration
	DisableAfter      time.Duration

	MaxBodyBytes    int64
	APIRateLimit    int // requests per second per caller; 0 turns it off
	ShutdownTimeout time.Duration

	LogFormat string // text or json
	LogLevel  string // debug, info, warn, error

	PprofAddr string // host:port of the profiling listener; "" turns it off

	Version string // set at build time, sent in User-Agent
}

// Default returns the documented defaults. The engine's come from notifier.DefaultConfig, the
// others from the component they configure: a default is written once.
func Default() Config {
	n := notifier.DefaultConfig()
	return Config{
		Addr:               "127.0.0.1:8000",
		RedisPrefix:        n.Prefix,
		Replication:        redisx.Replication{Timeout: redisx.DefaultReplicationTimeout},
		RequestTimeout:     n.RequestTimeout,
		RetrySchedule:      n.RetrySchedule,
		MaxDeliveryAge:     n.MaxDeliveryAge,
		RateLimitPerMinute: n.RateLimitPerMinute,
		MaxInFlight:        n.MaxInFlight,
		MaxConnsPerHost:    n.MaxConnsPerHost,
		MaxBacklog:         n.MaxBacklog,
		Workers:            n.Workers,
		QueueShards:        n.QueueShards,
		SessionTTL:         sessions.DefaultTTL,
		DeliveryRetention:  n.Retention,
		DisableAfter:       subscribers.DefaultDisableAfter,
		MaxBodyBytes:       httpx.DefaultMaxBody,
		APIRateLimit:       100,
		ShutdownTimeout:    30 * time.Second,
		LogFormat:          "text",
		LogLevel:           "info",
		Version:            n.Version,
	}
}

// TryOut reports whether the config runs on the embedded store (no Redis configured).
func (c *Config) TryOut() bool { return c.Redis.URL == "" && len(c.Redis.Addrs) == 0 }

// notifierConfig is the delivery engine's config: its defaults, with the settings the flags carry.
func (c *Config) notifierConfig() notifier.Config {
	n := notifier.DefaultConfig()
	n.Prefix = c.RedisPrefix
	n.Version = c.Version
	n.RequestTimeout = c.RequestTimeout
	n.RetrySchedule = c.RetrySchedule
	n.MaxDeliveryAge = c.MaxDeliveryAge
	n.RateLimitPerMinute = c.RateLimitPerMinute
	n.MaxInFlight = c.MaxInFlight
	n.MaxConnsPerHost = c.MaxConnsPerHost
	n.AllowHTTP = c.AllowHTTP
	n.AllowPrivate = c.AllowPrivate
	n.MaxBacklog = c.MaxBacklog
	n.Workers = c.Workers
	n.QueueShards = c.QueueShards
	n.Retention = c.DeliveryRetention
	n.Replication = c.Replication
	return n
}

// engineFlags names the flag of each notifier.Config field a flag sets.
var engineFlags = map[string]string{
	"Prefix":             "redis-prefix",
	"RequestTimeout":     "request-timeout",
	"RetrySchedule":      "retry-schedule",
	"MaxDeliveryAge":     "max-delivery-age",
	"RateLimitPerMinute": "rate-limit-per-minute",
	"MaxInFlight":        "max-in-flight",
	"MaxConnsPerHost":    "max-conns-per-host",
	"MaxBacklog":         "max-backlog",
	"Workers":            "workers",
	"QueueShards":        "queue-shards",
	"Retention":          "delivery-retention",
	"Replication":        "redis-wait-replicas",
}

// problems collects the errors of Validate, one per flag (the first found).
type problems struct {
	errs []error
	seen map[string]bool
}

func (p *problems) bad(flag, format string, args ...any) {
	if p.seen[flag] {
		return
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[flag] = true
	p.errs = append(p.errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
}

// Validate checks the config and fills what derives from other settings. Its errors name the flag.
// The delivery engine's settings are checked by the engine's own rule (notifier.Config.Check).
func (c *Config) Validate() error {
	var p problems
	c.checkRedis(&p)
	c.checkHTTP(&p)
	c.checkEngine(&p)
	c.checkOthers(&p)
	if err := errors.Join(p.errs...); err != nil {
		return err
	}
	if c.PublicURL == "" {
		c.PublicURL, c.publicURLGuessed = defaultPublicURL(c.Addr, os.Hostname)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return nil
}

// checkRedis checks where Redis is and the key prefix (which every component uses: herald's rule
// is stricter than the engine's, it also keeps colons out).
func (c *Config) checkRedis(p *problems) {
	if c.Redis.URL != "" && len(c.Redis.Addrs) > 0 {
		p.bad("redis-url", "give either --redis-url or --redis-addrs, not both")
	}
	if c.Redis.URL != "" && !strings.HasPrefix(c.Redis.URL, "redis://") && !strings.HasPrefix(c.Redis.URL, "rediss://") && !strings.HasPrefix(c.Redis.URL, "unix://") {
		p.bad("redis-url", "must start with redis://, rediss:// or unix://")
	}
	if c.Replication.Replicas > 0 && c.TryOut() {
		p.bad("redis-wait-replicas", "needs a Redis with replicas (--redis-url or --redis-addrs); the embedded try-out store has none")
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}: \t\n") {
		p.bad("redis-prefix", "must be non-empty, without braces, colons or spaces")
	}
}

// checkHTTP checks the API's settings and the URLs herald makes or calls.
func (c *Config) checkHTTP(p *problems) {
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			p.bad("api-key", "every API key must be at least 16 characters")
			break
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.bad("public-url", "must be an absolute http(s) URL such as https://herald.example.com")
		}
	}
	if c.SessionsURL != "" {
		if u, err := url.Parse(c.SessionsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.bad("sessions-url", "must be an absolute http(s) URL")
		}
	}
	if c.MaxBodyBytes < 1024 {
		p.bad("max-body-bytes", "must be at least 1024")
	}
	if c.APIRateLimit < 0 {
		p.bad("api-rate-limit", "must be 0 (off) or positive")
	}
	if c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			p.bad("pprof-addr", "must be host:port, such as 127.0.0.1:6060")
		}
	}
}

// checkEngine checks the delivery engine's settings with the engine's rule, naming each flag.
func (c *Config) checkEngine(p *problems) {
	err := c.notifierConfig().Check()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *notifier.ConfigError
		if !errors.As(e, &ce) {
			p.bad("delivery engine", "%v", e)
			continue
		}
		flag, ok := engineFlags[ce.Field]
		if !ok {
			flag = "engine setting " + ce.Field // not a flag: a bug in the defaults
		}
		p.bad(flag, "%s", ce.Reason)
	}
}

// checkOthers checks the relay's, the subscribers' and the process's own settings.
func (c *Config) checkOthers(p *problems) {
	if c.SessionTTL <= 0 {
		p.bad("session-ttl", "must be positive")
	}
	if c.DisableAfter <= 0 {
		p.bad("disable-after", "must be positive")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		p.bad("log-format", "must be text or json")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log-level", "must be debug, info, warn or error")
	}
	if err := webhooksig.CheckSecret(c.SigningSecret); err != nil {
		// The same check the engine makes when it signs; the message never holds the value.
		p.bad("signing-secret", "must be whsec_ followed by the base64 of at least 16 random bytes")
	}
}
