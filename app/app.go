// Package app wires herald together: it opens Redis, builds every component, mounts their routes
// on one router behind the shared HTTP conventions, starts their background work and stops it all
// in order. cmd/herald parses flags into a Config and calls Run; tests call New and Serve to run the
// whole daemon in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/openapi"
	"github.com/heraldhq/herald/redisx"
)

// service is a component's background work: started after every route is mounted, stopped in
// reverse order on shutdown. Stop must drain what is in flight before ctx ends.
type service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// App is a built herald daemon.
type App struct {
	Cfg      Config
	Log      *slog.Logger
	Conn     *redisx.Conn
	RDB      redis.UniversalClient
	Router   *mux.Router // every route; API routes live on API
	API      *mux.Router // routes behind auth and the API rate limit
	Limiter  *redis_rate.Limiter
	Registry *prometheus.Registry

	handler  http.Handler // Router, counted by route (herald_api_requests_total); what Serve serves
	services []service
	ready    readiness
	started  []service

	pprofLn   net.Listener // --pprof-addr, until Serve serves it; see pprof.go
	pprofAddr net.Addr

	redisCheck *redisCheck // Redis's eviction and persistence settings; nil on the embedded store

	components // set by the mount functions, see mounts.go
}

// openPaths are the API's routes that need no API key (contract: Conventions / Auth). /healthz,
// /readyz and /openapi.json need none either: they are routed beside the API, before its
// middleware (the document holds no secret and is the same for every herald of one version, so
// client generators can fetch it, as Stripe's and Svix's are public).
var openPaths = []string{"/webhook-response"}

// unlimitedPaths are the routes the API rate limiter leaves alone: the open ones, and /metrics,
// which must answer while Redis (where the limiter counts) is down, to show why.
var unlimitedPaths = append([]string{"/metrics"}, openPaths...)

// writeTimeout bounds the writing of an answer, and so the work of a request (httpx.Detach).
const writeTimeout = 60 * time.Second

// New opens Redis and builds every component. Close it with Close if Serve is never called.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := httpx.CheckListenAuth(cfg.Addr, cfg.APIKeys, cfg.AllowNoAuth); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.publicURLGuessed {
		log.Warn("no --public-url, and --addr listens on every interface: the response_url herald makes uses a "+
			"guessed host; set --public-url (HERALD_PUBLIC_URL) to the URL channel servers reach herald at",
			"addr", cfg.Addr, "public_url", cfg.PublicURL)
	}
	if cfg.Redis.PoolSize == 0 {
		// go-redis's default, and one connection per queue shard for its fetcher to wait on the
		// shard's stream, for this process's count and another during a change of count
		// (notifier.Config.QueueShards). Connections are opened as they are needed.
		cfg.Redis.PoolSize = 10*runtime.GOMAXPROCS(0) + 2*cfg.QueueShards
	}
	conn, err := redisx.Open(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Log: log, Conn: conn, RDB: conn.Client, Registry: prometheus.NewRegistry()}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Limiter = redis_rate.NewLimiter(conn.Client)
	if !conn.Embedded {
		a.redisCheck = newRedisCheck(a.RDB, log.With("component", "redis"), a.Registry, redisCheckEvery)
		a.addService(a.redisCheck)
	}

	a.Router = httpx.NewRouter()
	a.Router.Use(httpx.WithLogger(log), httpx.Detach(writeTimeout), httpx.Recover, httpx.Log, httpx.StrictQuery)
	a.Router.Handle("/healthz", http.HandlerFunc(a.healthz)).Methods(http.MethodGet, http.MethodHead)
	a.Router.Handle("/readyz", http.HandlerFunc(a.readyz)).Methods(http.MethodGet, http.MethodHead)
	a.Router.Handle("/openapi.json", openapi.Handler()).Methods(http.MethodGet)
	a.API = a.Router.NewRoute().Subrouter()
	a.API.Use(httpx.Auth(httpx.AuthConfig{Keys: cfg.APIKeys, Open: openPaths}))
	a.API.Use(httpx.RateLimit(a.Limiter, cfg.RedisPrefix, redis_rate.PerSecond(cfg.APIRateLimit), unlimitedPaths...))
	a.API.Handle("/metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	requests, err := httpx.NewRequestMetrics(a.Registry)
	if err != nil {
		conn.Close()
		return nil, err
	}
	a.handler = requests.Instrument(a.Router)

	for _, m := range mounts {
		if err := m(a); err != nil {
			conn.Close()
			return nil, err
		}
	}
	a.mountIndex()
	if err := a.listenPprof(); err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

// addService registers background work to start with Serve and stop on shutdown.
func (a *App) addService(s service) { a.services = append(a.services, s) }

// addReadiness registers a check /readyz runs.
func (a *App) addReadiness(f func(context.Context) error) {
	a.ready.checks = append(a.ready.checks, f)
}

// Run builds the daemon, listens on cfg.Addr and serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Cfg.Addr)
	if err != nil {
		a.Close()
		return fmt.Errorf("listen on %s: %w", a.Cfg.Addr, err)
	}
	return a.Serve(ctx, ln)
}

// Serve starts the background services, serves HTTP on ln until ctx ends, then stops accepting,
// finishes the requests in flight, stops the services (draining their work) and closes Redis.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	for _, s := range a.services {
		if err := s.Start(ctx); err != nil {
			a.stopServices()
			a.Close()
			return err
		}
		a.started = append(a.started, s)
	}
	stopPprof := a.servePprof()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("herald is listening", "addr", ln.Addr().String(), "public_url", a.Cfg.PublicURL)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stopPprof()
	a.Log.Info("shutting down: no new requests; finishing the ones in flight")
	sctx, cancel := context.WithTimeout(context.Background(), a.Cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.Log.Warn("requests still in flight at the shutdown deadline", "err", err)
	}
	a.stopServicesCtx(sctx)
	a.Close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	a.Log.Info("herald stopped")
	return serveErr
}

func (a *App) stopServices() {
	ctx, cancel := context.WithTimeout(context.Background(), a.Cfg.ShutdownTimeout)
	defer cancel()
	a.stopServicesCtx(ctx)
}

func (a *App) stopServicesCtx(ctx context.Context) {
	for i := len(a.started) - 1; i >= 0; i-- {
		if err := a.started[i].Stop(ctx); err != nil {
			a.Log.Warn("stopping a service", "err", err)
		}
	}
	a.started = nil
}

// Close releases Redis (and the embedded store) and the profiling listener. Serve calls it; call
// it yourself only when Serve never ran.
func (a *App) Close() {
	if a.pprofLn != nil {
		_ = a.pprofLn.Close()
		a.pprofLn = nil
	}
	if a.Conn != nil {
		_ = a.Conn.Close()
		a.Conn = nil
	}
}

func (a *App) healthz(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
