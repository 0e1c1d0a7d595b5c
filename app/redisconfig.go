package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/redisx"
)

// The Redis settings herald relies on (README, Production notes): a full Redis must refuse writes
// rather than evict queued work, and what was accepted must survive a restart.
const (
	settingEviction    = "maxmemory-policy" // must be noeviction
	settingPersistence = "appendonly"       // must be yes
)

// redisCheckEvery is how often the settings are read again, so that a Redis restarted or failed
// over with other settings is noticed.
const redisCheckEvery = time.Minute

// redisCheck reads Redis's eviction and persistence settings (CONFIG GET) at start-up and every
// redisCheckEvery, on every master of a Cluster. It warns loudly when they are unsafe, says once
// when CONFIG is refused (managed Redis services often refuse it), and only logs again when what
// it found changes. /readyz shows its warnings (still 200: Redis serves, it is a risk, not an
// outage) and the gauges herald_redis_config_unsafe{setting} and herald_redis_config_checked
// expose them.
type redisCheck struct {
	rdb   redis.UniversalClient
	log   *slog.Logger
	every time.Duration
	life  *lifecycle.Service

	unsafe  *prometheus.GaugeVec
	checked prometheus.Gauge

	mu       sync.Mutex
	warnings []string // of the last check that read the settings or was refused
}

func newRedisCheck(rdb redis.UniversalClient, log *slog.Logger, reg prometheus.Registerer, every time.Duration) *redisCheck {
	c := &redisCheck{rdb: rdb, log: log, every: every, life: lifecycle.NewService("redis settings check", "checks"),
		unsafe: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_redis_config_unsafe",
			Help: "1 when a Redis setting herald relies on is unsafe (maxmemory-policy not noeviction, appendonly not yes), on any master; 0 when safe.",
		}, []string{"setting"}),
		checked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_redis_config_checked",
			Help: "1 when herald could read Redis's settings (CONFIG GET), 0 when Redis refuses CONFIG.",
		}),
	}
	reg.MustRegister(c.unsafe, c.checked)
	return c
}

// Start checks the settings once (so a warning comes with the start-up logs), then every c.every.
func (c *redisCheck) Start(ctx context.Context) error {
	return c.life.Start(ctx, func(ctx context.Context) error {
		c.check(ctx)
		c.life.Go(c.loop)
		return nil
	})
}

// Stop ends the checks.
func (c *redisCheck) Stop(ctx context.Context) error { return c.life.Stop(ctx) }

func (c *redisCheck) loop() {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.life.Stopping():
			return
		case <-t.C:
			c.check(c.life.Context())
		}
	}
}

// Warnings returns what the last check found unsafe, or that it could not check.
func (c *redisCheck) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.warnings)
}

// check reads the settings and records what it found; a Redis that cannot answer now keeps the
// previous findings (readiness reports the outage).
func (c *redisCheck) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, readyBudget)
	defer cancel()
	unsafe, err := c.read(ctx)
	var warnings []string
	switch {
	case redisx.IsTransient(err):
		return
	case err != nil:
		warnings = []string{"herald cannot check the Redis settings it needs (CONFIG GET is refused, as managed Redis " +
			"services often do): make sure maxmemory-policy is noeviction and appendonly is yes"}
		c.checked.Set(0)
		c.unsafe.Reset()
	default:
		c.checked.Set(1)
		for _, s := range []string{settingEviction, settingPersistence} {
			c.unsafe.WithLabelValues(s).Set(b2f(unsafe[s] != ""))
			if unsafe[s] != "" {
				warnings = append(warnings, unsafe[s])
			}
		}
	}
	c.record(warnings, err)
}

// record keeps warnings for Warnings and logs them when they differ from the last ones.
func (c *redisCheck) record(warnings []string, err error) {
	c.mu.Lock()
	changed := !slices.Equal(warnings, c.warnings)
	c.warnings = warnings
	c.mu.Unlock()
	if !changed {
		return
	}
	for _, w := range warnings {
		if err != nil {
			c.log.Warn(w, "err", err)
		} else {
			c.log.Warn("UNSAFE REDIS SETTING: " + w)
		}
	}
	if len(warnings) == 0 {
		c.log.Info("redis settings are safe: maxmemory-policy noeviction, appendonly yes")
	}
}

// read returns, for each unsafe setting on any master, what is wrong with it.
func (c *redisCheck) read(ctx context.Context) (map[string]string, error) {
	unsafe := map[string]string{}
	var mu sync.Mutex
	readNode := func(ctx context.Context, node redis.Cmdable) error {
		got, err := settingsOf(ctx, node)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for s, w := range unsafeSettings(got) {
			unsafe[s] = w
		}
		return nil
	}
	var err error
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return readNode(ctx, n) })
	} else {
		err = readNode(ctx, c.rdb)
	}
	return unsafe, err
}

// settingsOf reads maxmemory-policy, appendonly and save in one round trip (a CONFIG GET each:
// Redis 6 takes one pattern per CONFIG GET).
func settingsOf(ctx context.Context, node redis.Cmdable) (map[string]string, error) {
	names := []string{settingEviction, settingPersistence, "save"}
	pipe := node.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, s := range names {
		cmds[i] = pipe.ConfigGet(ctx, s)
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	got := map[string]string{}
	for i, s := range names {
		v, err := cmds[i].Result()
		if err != nil {
			return nil, err
		}
		val, ok := v[s]
		if !ok {
			return nil, fmt.Errorf("CONFIG GET %s: %w", s, errNoSetting)
		}
		got[s] = val
	}
	return got, nil
}

var errNoSetting = errors.New("redis did not report the setting")

// unsafeSettings says what is wrong with the settings got, by setting.
func unsafeSettings(got map[string]string) map[string]string {
	out := map[string]string{}
	if p := got[settingEviction]; p != "noeviction" {
		out[settingEviction] = "maxmemory-policy is " + p + ": a full Redis evicts keys, and may silently drop " +
			"queued deliveries and their records; set maxmemory-policy noeviction (a full Redis then refuses " +
			"writes, and herald answers 503)"
	}
	if got[settingPersistence] != "yes" {
		if strings.TrimSpace(got["save"]) == "" {
			out[settingPersistence] = "Redis has no persistence (appendonly no, no save points): a restart loses " +
				"every queued delivery; set appendonly yes"
		} else {
			out[settingPersistence] = "appendonly is no: Redis persists by snapshots only, and a crash loses " +
				"the deliveries accepted since the last one; set appendonly yes"
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
