package redisx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Options says where Redis is. At most one of URL and Addrs may be set; with neither, Open starts
// the embedded store.
type Options struct {
	URL        string   // redis:// or rediss:// URL of a single server
	Addrs      []string // Cluster seed nodes, or Sentinel addresses when MasterName is set
	MasterName string   // Sentinel master name
	Username   string   // for Addrs; a URL carries its own credentials
	Password   string   // for Addrs; never logged
	PoolSize   int      // 0: go-redis default (10 per CPU)
}

// ErrConfig is returned (wrapped) for Redis settings that cannot work.
var ErrConfig = errors.New("redis configuration")

// Conn is an open Redis connection.
type Conn struct {
	Client   redis.UniversalClient
	Embedded bool   // true for the in-process try-out store: data is lost on exit
	Addr     string // a printable address with no credentials

	mini *miniredis.Miniredis
}

// Open connects to Redis as opts say and checks the connection with a PING.
func Open(ctx context.Context, opts Options) (*Conn, error) {
	if opts.URL != "" && len(opts.Addrs) > 0 {
		return nil, fmt.Errorf("%w: set either a Redis URL or a list of addresses, not both", ErrConfig)
	}
	c := &Conn{}
	switch {
	case opts.URL != "":
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			// The URL may hold a password: describe the problem without repeating it.
			return nil, fmt.Errorf("%w: redis URL is not valid (want redis://[user:pass@]host:port/db or rediss://...)", ErrConfig)
		}
		if opts.PoolSize > 0 {
			o.PoolSize = opts.PoolSize
		}
		o.ContextTimeoutEnabled = true
		c.Client = redis.NewClient(o)
		c.Addr = o.Addr
	case len(opts.Addrs) > 0:
		uo := &redis.UniversalOptions{
			Addrs:      opts.Addrs,
			MasterName: opts.MasterName,
			Username:   opts.Username,
			Password:   opts.Password,
			PoolSize:   opts.PoolSize,
			// Every client honours the deadline of a call's context (go-redis does not by
			// default): a readiness check, a scrape or a request bounds its wait for a hung Redis.
			ContextTimeoutEnabled: true,
		}
		c.Addr = strings.Join(opts.Addrs, ",")
		if opts.MasterName != "" {
			c.Client = redis.NewUniversalClient(uo)
			break
		}
		// A list of addresses without a master name is a Cluster, even with one address.
		co := uo.Cluster()
		// go-redis reloads the slot map on MOVED and ASK but not when a master stops answering,
		// and otherwise only every 60 s: after a failover the dead master's slots would fail that
		// long (redis/go-redis#3979). Reload often enough to follow a failover within seconds.
		co.ClusterStateReloadInterval = ClusterStateReload
		c.Client = redis.NewClusterClient(co)
	default:
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		c.mini = m
		c.Embedded = true
		c.Addr = "embedded:" + m.Addr()
		c.Client = redis.NewClient(&redis.Options{Addr: m.Addr(), PoolSize: opts.PoolSize, ContextTimeoutEnabled: true})
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Client.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", c.Addr, err)
	}
	return c, nil
}

// ClusterStateReload is how often a Cluster client reloads the slot map (see Open).
const ClusterStateReload = 2 * time.Second

// Close closes the client and stops the embedded store, if any.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	return err
}
