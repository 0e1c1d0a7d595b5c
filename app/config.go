package app

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
)

// Config is everything `herald serve` can be told. Defaults come from Default(); cmd/herald
// overlays the environment (HERALD_<NAME>) and then the flags; Validate checks the result once.
type Config struct {
	Addr        string
	Redis       redisx.Options
	RedisPrefix string
	APIKeys     []string
	AllowNoAuth bool
	PublicURL   string
	SessionsURL string

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

	SessionTTL        time.Duration
	DeliveryRetention time.Duration
	DisableAfter      time.Duration

	MaxBodyBytes    int64
	APIRateLimit    int // requests per second per caller; 0 turns it off
	ShutdownTimeout time.Duration

	LogFormat string // text or json
	LogLevel  string // debug, info, warn, error

	Version string // set at build time, sent in User-Agent
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Addr:               "127.0.0.1:8000",
		RedisPrefix:        "herald",
		RequestTimeout:     30 * time.Second,
		RetrySchedule:      []time.Duration{4 * time.Second, 8 * time.Second, 10 * time.Second},
		MaxDeliveryAge:     24 * time.Hour,
		RateLimitPerMinute: 100,
		MaxInFlight:        10,
		MaxConnsPerHost:    128,
		MaxBacklog:         1_000_000,
		Workers:            64,
		SessionTTL:         24 * time.Hour,
		DeliveryRetention:  7 * 24 * time.Hour,
		DisableAfter:       24 * time.Hour,
		MaxBodyBytes:       1 << 20,
		APIRateLimit:       100,
		ShutdownTimeout:    30 * time.Second,
		LogFormat:          "text",
		LogLevel:           "info",
		Version:            "dev",
	}
}

// TryOut reports whether the config runs on the embedded store (no Redis configured).
func (c *Config) TryOut() bool { return c.Redis.URL == "" && len(c.Redis.Addrs) == 0 }

// Validate checks the config and fills what derives from other settings. Its errors name the flag.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if c.Redis.URL != "" && len(c.Redis.Addrs) > 0 {
		bad("redis-url", "give either --redis-url or --redis-addrs, not both")
	}
	if c.Redis.URL != "" && !strings.HasPrefix(c.Redis.URL, "redis://") && !strings.HasPrefix(c.Redis.URL, "rediss://") && !strings.HasPrefix(c.Redis.URL, "unix://") {
		bad("redis-url", "must start with redis://, rediss:// or unix://")
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}: \t\n") {
		bad("redis-prefix", "must be non-empty, without braces, colons or spaces")
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			bad("api-key", "every API key must be at least 16 characters")
			break
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public-url", "must be an absolute http(s) URL such as https://herald.example.com")
		}
	}
	if c.SessionsURL != "" {
		if u, err := url.Parse(c.SessionsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("sessions-url", "must be an absolute http(s) URL")
		}
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > 10*time.Minute {
		bad("request-timeout", "must be between 1ms and 10m, got %s", c.RequestTimeout)
	}
	if len(c.RetrySchedule) > 50 {
		bad("retry-schedule", "at most 50 retries")
	}
	for _, d := range c.RetrySchedule {
		if d <= 0 || d > 7*24*time.Hour {
			bad("retry-schedule", "each wait must be between 1ms and 168h, got %s", d)
			break
		}
	}
	if c.MaxDeliveryAge <= 0 {
		bad("max-delivery-age", "must be positive")
	}
	if c.RateLimitPerMinute <= 0 {
		bad("rate-limit-per-minute", "must be at least 1")
	}
	if c.MaxInFlight <= 0 {
		bad("max-in-flight", "must be at least 1")
	}
	if c.MaxBacklog <= 0 {
		bad("max-backlog", "must be at least 1")
	}
	if c.Workers <= 0 || c.Workers > 4096 {
		bad("workers", "must be between 1 and 4096")
	}
	if c.MaxConnsPerHost <= 0 || c.MaxConnsPerHost > 100_000 {
		bad("max-conns-per-host", "must be between 1 and 100000")
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "must be at least 1024")
	}
	if c.APIRateLimit < 0 {
		bad("api-rate-limit", "must be 0 (off) or positive")
	}
	if c.SessionTTL <= 0 {
		bad("session-ttl", "must be positive")
	}
	if c.DeliveryRetention <= 0 {
		bad("delivery-retention", "must be positive")
	}
	if c.DisableAfter <= 0 {
		bad("disable-after", "must be positive")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "must be text or json")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error")
	}
	if err := notifier.CheckSecret(c.SigningSecret); err != nil {
		// The same check the engine makes when it signs; the message never holds the value.
		bad("signing-secret", "must be whsec_ followed by the base64 of at least 16 random bytes")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return nil
}
