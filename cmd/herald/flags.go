package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/app"
)

// parseServe turns defaults, then HERALD_* environment variables, then flags into a Config.
func parseServe(args []string, stdout, stderr io.Writer) (app.Config, error) {
	cfg := app.Default()
	cfg.Version = version
	fs := pflag.NewFlagSet("herald serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false

	var retry []time.Duration
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (host:port)")
	fs.StringVar(&cfg.Redis.URL, "redis-url", "", "Redis URL, redis://[user:pass@]host:port/db or rediss://...; none: embedded try-out store")
	fs.StringSliceVar(&cfg.Redis.Addrs, "redis-addrs", nil, "Redis Cluster seed nodes, or Sentinel addresses with --redis-master (comma-separated)")
	fs.StringVar(&cfg.Redis.MasterName, "redis-master", "", "Sentinel master name (with --redis-addrs)")
	fs.StringVar(&cfg.Redis.Username, "redis-username", "", "Redis username for --redis-addrs")
	fs.StringVar(&cfg.Redis.Password, "redis-password", "", "Redis password for --redis-addrs (prefer the HERALD_REDIS_PASSWORD variable)")
	fs.IntVar(&cfg.Replication.Replicas, "redis-wait-replicas", cfg.Replication.Replicas, "answer 202 only once this many replicas hold the accepted work (Redis WAIT); 0: do not wait")
	fs.DurationVar(&cfg.Replication.Timeout, "redis-wait-timeout", cfg.Replication.Timeout, "how long to wait for --redis-wait-replicas before answering 503")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", cfg.RedisPrefix, "prefix of every Redis key, to share one Redis between installations")
	fs.StringSliceVar(&cfg.APIKeys, "api-key", nil, "API key clients send as 'Authorization: Bearer <key>'; repeatable. None: loopback only")
	fs.BoolVar(&cfg.AllowNoAuth, "allow-no-auth", false, "allow listening on a non-loopback address without an API key")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "base URL others reach herald at, for the response_url it makes (default http://<addr>; on a wildcard addr, http://<hostname>:<port>)")
	fs.StringVar(&cfg.SessionsURL, "sessions-url", "", "where channel-server callbacks are forwarded (also read from SESSIONS_SERVER)")
	fs.StringVar(&cfg.VerificationToken, "verification-token", "", "default token for subscribers (default: one generated per subscriber)")
	fs.StringVar(&cfg.SigningSecret, "signing-secret", "", "whsec_ secret that signs relayed messages and forwarded callbacks (default: generated and kept in Redis)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "timeout of each outgoing request")
	fs.DurationSliceVar(&retry, "retry-schedule", cfg.RetrySchedule, "waits before each retry, comma-separated; the first try is at once")
	fs.DurationVar(&cfg.MaxDeliveryAge, "max-delivery-age", cfg.MaxDeliveryAge, "an undelivered request older than this is dead-lettered")
	fs.IntVar(&cfg.RateLimitPerMinute, "rate-limit-per-minute", cfg.RateLimitPerMinute, "default requests per minute per endpoint, shared by all herald processes")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "default concurrent requests per endpoint")
	fs.BoolVar(&cfg.AllowHTTP, "allow-http", false, "allow http:// targets (default true in the try-out)")
	fs.BoolVar(&cfg.AllowPrivate, "allow-private-targets", false, "allow loopback, private and link-local targets (default true in the try-out)")
	fs.Int64Var(&cfg.MaxBacklog, "max-backlog", cfg.MaxBacklog, "deliveries waiting in Redis (in each queue shard) past which new work is refused with 503")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "concurrent outgoing requests of this process")
	fs.IntVar(&cfg.QueueShards, "queue-shards", cfg.QueueShards, "shards of the delivery queue, each on its own Redis Cluster slot: a multiple of the Cluster's masters (1 on a single Redis)")
	fs.IntVar(&cfg.MaxConnsPerHost, "max-conns-per-host", cfg.MaxConnsPerHost, "connections this process opens to one host:port at most; endpoints on one host share them")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "a relay session expires after this long without activity")
	fs.DurationVar(&cfg.DeliveryRetention, "delivery-retention", cfg.DeliveryRetention, "how long finished deliveries and events are kept for inspection")
	fs.DurationVar(&cfg.DisableAfter, "disable-after", cfg.DisableAfter, "a subscriber whose deliveries all fail for this long is disabled")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest request body accepted (413 past it)")
	fs.IntVar(&cfg.APIRateLimit, "api-rate-limit", cfg.APIRateLimit, "API requests per second per caller (0: off)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown waits for work in flight")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "serve net/http/pprof on this host:port, a listener of its own without API keys (none: off)")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: herald serve [flags]\n\nRuns the daemon. Every flag can also be set as HERALD_<NAME> in the environment\n(e.g. --redis-url as HERALD_REDIS_URL; lists comma-separated).\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return cfg, err
	}
	if !fs.Changed("sessions-url") {
		if v, ok := os.LookupEnv("SESSIONS_SERVER"); ok && v != "" {
			cfg.SessionsURL = v
		}
	}
	cfg.RetrySchedule = retry
	if cfg.TryOut() {
		// The seed's channel server runs on localhost:5001: the try-out allows it unless told otherwise.
		if !fs.Changed("allow-http") {
			cfg.AllowHTTP = true
		}
		if !fs.Changed("allow-private-targets") {
			cfg.AllowPrivate = true
		}
	}
	return cfg, nil
}

// applyEnv sets every flag not given on the command line from HERALD_<NAME>, so flags win over the
// environment and the environment wins over defaults. It marks such flags as changed.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "HERALD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := lookup(name)
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			// The value may be a secret: name the variable, not its value.
			err = fmt.Errorf("environment variable %s has an invalid value for --%s", name, f.Name)
		}
	})
	return err
}
