package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/webhooksig"
)

// Engine is the delivery engine. Many engines (processes) may share one Redis and prefix: they
// share the queue, the rate limits and the in-flight bounds, and take over each other's work.
type Engine struct {
	rdb     redis.UniversalClient
	cfg     Config
	policy  egress.Policy
	client  *http.Client
	credits rateCredits // tokens taken from the limiter, not used yet
	retry   retryPolicy // what follows a failed try
	m       *metrics
	ua      string

	listenersMu sync.RWMutex
	listeners   []func(Outcome)

	breakersMu sync.Mutex
	breakers   map[string]*breaker

	// healthMu guards healthQueue: the breakers whose tally waits to be written (health.go).
	healthMu    sync.Mutex
	healthQueue []*breaker

	// active holds the stream entries this process is working on, so the reaper does not
	// reclaim them from itself.
	activeMu sync.Mutex
	active   map[string]struct{}

	slots       chan struct{}  // one per try this process may run at once
	batches     chan []entry   // fetched batches for the dispatchers
	dispatching sync.WaitGroup // the dispatcher goroutines
	work        chan *try      // tries for the workers; as many places as slots
	workers     sync.WaitGroup // the worker goroutines

	// The queue's shards (shard.go): own is the layout of this engine's shard count; others
	// those of the other counts in use; shards every shard worked, own first.
	own     layout
	topoMu  sync.RWMutex
	others  []layout
	layouts map[int]layout // the other counts' layouts met so far, by count
	shards  []*shard
	byTag   map[string]*shard
	limiter *redis_rate.Limiter

	life     lifecycle.State
	soft     context.Context // ends when Stop begins: no new work is fetched
	softStop context.CancelFunc
	hard     context.Context // ends when Stop's deadline passes: tries in flight are abandoned
	hardStop context.CancelFunc
	loops    sync.WaitGroup // fetchers and pumps (one each per shard), reaper
	tries    sync.WaitGroup // tries in flight
}

// breaker is this process's circuit breaker of an endpoint, with what the process learnt of the
// endpoint's health and has not written yet (health.go).
type breaker struct {
	ep        string
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	mu        sync.Mutex
	openedAt  time.Time
	changedAt time.Time // the last change of state (Config.Now), zero while it never changed
	tally     tally
}

// New builds an engine on rdb. It checks the config (errors wrap ErrConfig and name the
// setting) but does not touch Redis; Start begins the work.
func New(rdb redis.UniversalClient, cfg Config) (*Engine, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: a Redis client is required", ErrConfig)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		rdb:      rdb,
		cfg:      cfg,
		byTag:    map[string]*shard{},
		layouts:  map[int]layout{},
		policy:   egress.Policy{AllowHTTP: cfg.AllowHTTP, AllowPrivate: cfg.AllowPrivate},
		ua:       "herald/" + cfg.Version,
		retry:    newRetryPolicy(cfg),
		breakers: map[string]*breaker{},
		active:   map[string]struct{}{},
		slots:    make(chan struct{}, cfg.Workers),
		work:     make(chan *try, cfg.Workers),
		batches:  make(chan []entry, dispatchers),
	}
	e.own, _ = e.layoutOf(cfg.QueueShards)
	e.client = egress.NewClient(egress.ClientOptions{
		Policy:  e.policy,
		Timeout: cfg.RequestTimeout,
		// Keep alive every connection a host may have (up to one per worker).
		MaxIdleConnsPerHost: min(max(64, cfg.MaxInFlight, cfg.Workers), cfg.MaxConnsPerHost),
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
	})
	// The limiter's script goes through a batcher too: every try asks it once. Its keys are an
	// endpoint's own (not a shard's), so any shard's batcher will do.
	e.limiter = redis_rate.NewLimiter(e.base().batch)
	e.m = newMetrics(e)
	e.m.deliveredOK = e.m.deliveries.WithLabelValues("delivered", "ok")
	e.m.attemptOK = e.m.attempts.WithLabelValues("ok")
	if cfg.Registerer != nil {
		if err := e.m.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("notifier: register metrics: %w", err)
		}
	}
	if cfg.OnOutcome != nil {
		e.listeners = append(e.listeners, cfg.OnOutcome)
	}
	e.soft, e.softStop = context.WithCancel(context.Background())
	e.hard, e.hardStop = context.WithCancel(context.Background())
	return e, nil
}

// OnOutcome registers a listener called after every try, deferral and dead-lettering (see
// Outcome.Tried), from the worker that made it (or the caller of DisableEndpoint, DeleteEndpoint
// or PutEndpoint, for the deliveries they end): keep it quick and never block.
func (e *Engine) OnOutcome(f func(Outcome)) {
	if f == nil {
		return
	}
	e.listenersMu.Lock()
	e.listeners = append(e.listeners, f)
	e.listenersMu.Unlock()
}

func (e *Engine) report(o Outcome) {
	e.listenersMu.RLock()
	ls := e.listeners
	e.listenersMu.RUnlock()
	for _, f := range ls {
		f(o)
	}
}

// Start creates the consumer group if needed and starts the workers, the retry pump and the
// reaper that takes over the work of dead processes. It returns once the engine is consuming.
func (e *Engine) Start(ctx context.Context) error {
	return e.life.Start("notifier: engine", func() error {
		if err := e.migrate(ctx); err != nil {
			return fmt.Errorf("notifier: migrate records: %w", err)
		}
		topo, err := e.refreshTopology(ctx)
		if err != nil {
			return fmt.Errorf("notifier: record the shard count: %w", err)
		}
		for _, sh := range e.workedShards() {
			if err := e.ensureGroup(ctx, sh); err != nil {
				return fmt.Errorf("notifier: create consumer group: %w", err)
			}
		}
		if err := e.beat(ctx); err != nil {
			return fmt.Errorf("notifier: heartbeat: %w", err)
		}
		e.startGoroutines()
		if topo.newCount {
			e.awaitNewCountSeen(ctx)
		}
		e.cfg.Logger.Info("delivery engine started", "consumer", e.cfg.Consumer, "workers", e.cfg.Workers,
			"queue_shards", e.own.n, "shards_worked", len(e.workedShards()))
		return nil
	})
}

// startGoroutines starts the engine's goroutines; Stop ends each.
func (e *Engine) startGoroutines() {
	e.workers.Add(e.cfg.Workers)
	for range e.cfg.Workers {
		go e.worker()
	}
	e.dispatching.Add(dispatchers)
	for range dispatchers {
		go e.dispatcher()
	}
	for _, sh := range e.workedShards() {
		e.startShard(sh)
	}
	e.loops.Add(2)
	go e.reaperLoop()
	go e.healthLoop()
}

// awaitNewCountSeen waits, when this engine brings a shard count new to a running fleet, until
// the other processes have learnt it (they read the counts every heartbeat; three leave a margin)
// before it enqueues, copies or deletes anything: from then on every process looks for a delivery,
// its ordering line and its endpoint under both counts. Only the first process of a new count
// waits, once.
func (e *Engine) awaitNewCountSeen(ctx context.Context) {
	e.cfg.Logger.Info("new queue shard count: waiting for the other processes to learn it", "queue_shards", e.own.n,
		"wait", 3*e.cfg.Heartbeat)
	sleepCtx(ctx, 3*e.cfg.Heartbeat)
}

// startShard starts a shard's batcher, fetcher and pump. Start calls it, and the reaper for a
// shard it learns of (another engine runs another shard count); either holds loops.
func (e *Engine) startShard(sh *shard) {
	sh.batch.start()
	e.loops.Add(2)
	go e.fetchLoop(sh)
	go e.pumpLoop(sh)
}

// Stop stops fetching, waits for the tries in flight until ctx ends, then abandons the rest
// (they go back to the queue without using a try) and stops every goroutine. Safe to call twice.
func (e *Engine) Stop(ctx context.Context) error {
	first, started := e.life.Stop()
	if !first {
		return nil
	}

	e.softStop()
	if !started {
		e.hardStop()
		return nil
	}
	drained := make(chan struct{})
	go func() {
		e.loops.Wait()   // the loops start tries: wait for them first
		close(e.batches) // the fetcher, the only sender, has returned
		e.dispatching.Wait()
		e.tries.Wait()
		close(e.work) // nothing can start a try any more
		e.workers.Wait()
		e.flushHealthAtStop()
		for _, sh := range e.workedShards() {
			sh.batch.stop()
		}
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("notifier: stop: tries still in flight were put back: %w", ctx.Err())
		e.hardStop()
		<-drained // abandoned tries return at once: their requests are cancelled
	}
	e.hardStop()
	// Let the others take over anything left at once rather than after the heartbeat expires.
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.rdb.Del(dctx, e.base().k.heartbeat(e.cfg.Consumer)).Err()
	e.cfg.Logger.Info("delivery engine stopped", "consumer", e.cfg.Consumer)
	return err
}

// Ready reports whether the engine can work: every shard's master takes writes (a full Redis
// still answers reads) and has the shard's consumer group (after Redis lost its data the fetcher
// recreates it; until then the engine is not ready). One round trip for every shard.
func (e *Engine) Ready(ctx context.Context) error {
	shards := e.workedShards()
	pipe := e.rdb.Pipeline()
	writes := make([]*redis.StatusCmd, len(shards))
	infos := make([]*redis.XInfoGroupsCmd, len(shards))
	for i, sh := range shards {
		writes[i] = pipe.Set(ctx, sh.k.ready(), e.cfg.Consumer, time.Minute)
		infos[i] = pipe.XInfoGroups(ctx, sh.k.stream())
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	for i, info := range infos {
		if err := writes[i].Err(); err != nil {
			return err
		}
		groups, err := info.Result()
		if err != nil && !groupMissing(err) {
			return err
		}
		if !slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == group }) {
			return notReady("the delivery queue's consumer group is missing; it is being recreated")
		}
	}
	return nil
}

type readinessError string

func (r readinessError) Error() string           { return "notifier: " + string(r) }
func (r readinessError) ReadinessReason() string { return string(r) }

func notReady(s string) error { return readinessError(s) }

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// groupMissing: the consumer group, or the whole stream, is gone (Redis lost its data).
func groupMissing(err error) bool {
	return isNoGroup(err) || err != nil && strings.Contains(err.Error(), "no such key")
}

func (e *Engine) ensureGroup(ctx context.Context, sh *shard) error {
	err := e.rdb.XGroupCreateMkStream(ctx, sh.k.stream(), group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// PutEndpoint creates or updates an endpoint. The URL must pass the target rules
// (ErrInvalidTarget), the secret must be "whsec_<base64>" or empty, the limits not negative.
// Changing the secret keeps the previous one signing alongside for 24 h. Disabled turns it off
// as DisableEndpoint does (its pending deliveries end when this call disables it); putting it
// with Disabled false enables it again.
func (e *Engine) PutEndpoint(ctx context.Context, ep Endpoint) error {
	if !ids.Valid(ep.ID) {
		return fmt.Errorf("notifier: endpoint id %q must be %s", ep.ID, ids.Rule)
	}
	if _, err := e.policy.CheckURL(ep.URL); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	if err := webhooksig.CheckSecret(ep.Secret); err != nil {
		return err
	}
	if ep.RateLimitPerMinute < 0 || ep.MaxInFlight < 0 {
		return fmt.Errorf("notifier: endpoint %s: rate limit and max in flight must not be negative", ep.ID)
	}
	args := endpointArgs{ep: ep, now: e.nowMS(), overlapMS: secretOverlap.Milliseconds()}
	disabledNow := false
	for _, sh := range e.endpointHomes(ep.ID) {
		res, err := putEndpointScript.Run(ctx, e.rdb, []string{sh.k.stream()}, args.argv(sh.k.p)...).Int64()
		if err != nil {
			return fmt.Errorf("notifier: put endpoint %s: %w", ep.ID, err)
		}
		disabledNow = disabledNow || res == 2
	}
	if disabledNow { // as DisableEndpoint
		return e.endPending(ctx, ep.ID, ReasonEndpointDisabled)
	}
	return nil
}

// DeleteEndpoint removes an endpoint (from every shard this engine works). Its pending
// deliveries end at once as failed with reason endpoint_deleted, as DisableEndpoint ends them;
// any that comes up later (enqueued concurrently, replayed) is dead-lettered so too.
func (e *Engine) DeleteEndpoint(ctx context.Context, id string) error {
	for _, sh := range e.workedShards() {
		if err := deleteEndpointScript.Run(ctx, e.rdb, []string{sh.k.stream()}, sh.k.p, id, e.nowMS()).Err(); err != nil {
			return fmt.Errorf("notifier: delete endpoint %s: %w", id, err)
		}
	}
	e.breakersMu.Lock()
	delete(e.breakers, id)
	e.breakersMu.Unlock()
	return e.endPending(ctx, id, ReasonEndpointGone)
}

// BreakerState returns this process's breaker state for an endpoint ("closed" for one never
// tried here).
func (e *Engine) BreakerState(endpointID string) BreakerState {
	e.breakersMu.Lock()
	b := e.breakers[endpointID]
	e.breakersMu.Unlock()
	if b == nil {
		return BreakerClosed
	}
	return breakerState(b.cb.State())
}

// Breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half_open"
)

func breakerState(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return BreakerOpen
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// breakerFor returns the endpoint's breaker, creating it on first use.
func (e *Engine) breakerFor(ep string) *breaker {
	e.breakersMu.Lock()
	defer e.breakersMu.Unlock()
	b := e.breakers[ep]
	if b != nil {
		return b
	}
	b = &breaker{ep: ep}
	failures := uint32(e.cfg.BreakerFailures)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        ep,
		MaxRequests: 1,
		Timeout:     e.cfg.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// The one rule (classify) decides what counts against the endpoint.
		IsSuccessful: func(err error) bool {
			var te *tryError
			return err == nil || errors.As(err, &te) && te.v.BreakerOK
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errNotSent) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			e.noteBreaker(b, breakerState(to), e.cfg.Now())
			e.m.breakerTransitions.WithLabelValues(string(breakerState(to))).Inc()
			e.cfg.Logger.Info("endpoint circuit breaker changed", "endpoint", ep, "from", breakerState(from), "to", breakerState(to))
		},
	})
	e.breakers[ep] = b
	return b
}

// reopenAt is when an open breaker lets a probe through.
func (b *breaker) reopenAt(cooldown time.Duration) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openedAt.Add(cooldown)
}

func (e *Engine) nowMS() int64 { return e.cfg.Now().UnixMilli() }

// horizon is how long an index entry may be useful: a delivery pending for its maximum age, then
// kept for the retention.
func (e *Engine) horizonMS() int64 {
	return (e.cfg.MaxDeliveryAge + e.cfg.Retention + time.Hour).Milliseconds()
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
