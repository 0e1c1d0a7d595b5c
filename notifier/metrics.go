package notifier

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// metrics are the engine's Prometheus metrics (names in configs/alerts.yml follow them).
type metrics struct {
	// deliveries counts what happened to deliveries, by outcome (delivered, retry, dead,
	// deferred, parked) and reason (ok, timeout, network, http_4xx, http_5xx, breaker_open,
	// rate_limited, max_in_flight, max_tries, max_age, refused, http_410, endpoint_deleted,
	// endpoint_disabled).
	deliveries *prometheus.CounterVec
	// attempts counts tries (HTTP requests made) by result (ok or the failure reason).
	attempts           *prometheus.CounterVec
	attemptSeconds     prometheus.Histogram
	e2eSeconds         prometheus.Histogram
	enqueued           prometheus.Counter
	backlogFull        prometheus.Counter
	rateLimitWaits     prometheus.Counter
	breakerTransitions *prometheus.CounterVec
	reclaimed          prometheus.Counter
	redisErrors        prometheus.Counter
	inflight           prometheus.Gauge
	// the children counted on every delivered try, resolved once
	deliveredOK, attemptOK prometheus.Counter
	queue                  *queueCollector
	breakers               *breakerCollector
}

func newMetrics(e *Engine) *metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	return &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Delivery state changes by outcome (delivered, retry, dead, deferred, parked) and reason.",
		}, []string{"outcome", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_attempts_total",
			Help: "HTTP tries made, by result: ok, timeout, network, refused, http_3xx, http_4xx, http_5xx.",
		}, []string{"result"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_delivery_attempt_duration_seconds", Help: "Duration of one HTTP try.", Buckets: buckets,
		}),
		e2eSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_delivery_latency_seconds", Help: "From accepted (enqueued or replayed) to delivered.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 10, 30, 60, 300, 1800, 3600},
		}),
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_deliveries_enqueued_total", Help: "Deliveries accepted (not counting idempotent repeats).",
		}),
		backlogFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_backlog_full_total", Help: "Enqueue calls refused because the backlog was full.",
		}),
		rateLimitWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_rate_limit_waits_total", Help: "Tries deferred by an endpoint's rate limit.",
		}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_breaker_transitions_total", Help: "Endpoint circuit breaker state changes, by new state.",
		}, []string{"state"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_reclaimed_total", Help: "Stream entries taken over from dead processes or orphaned here.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_redis_errors_total", Help: "Redis calls of the delivery engine that failed.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_delivery_inflight", Help: "HTTP tries running in this process.",
		}),
		queue:    &queueCollector{e: e},
		breakers: &breakerCollector{e: e},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.deliveries, m.attempts, m.attemptSeconds, m.e2eSeconds, m.enqueued,
		m.backlogFull, m.rateLimitWaits, m.breakerTransitions, m.reclaimed, m.redisErrors, m.inflight, m.queue, m.breakers} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// queueCollector reads the queue's size from Redis when scraped, at most once a second.
type queueCollector struct {
	e *Engine

	mu      sync.Mutex
	at      time.Time
	backlog float64
	ready   float64
	delayed float64
	oldest  float64
}

var (
	queueDepthDesc = prometheus.NewDesc("herald_delivery_queue_depth",
		"Deliveries in the shared queue by state: backlog (all pending), ready (in the stream, incl. in flight), delayed (waiting for a retry).",
		[]string{"state"}, nil)
	queueOldestDesc = prometheus.NewDesc("herald_delivery_queue_oldest_age_seconds",
		"How long the oldest due delivery has been waiting in the stream (since it became due): how far behind the workers are.", nil, nil)
)

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueOldestDesc
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.at) > time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		q.backlog, q.ready, q.delayed, q.oldest = 0, 0, 0, 0
		shards := q.e.workedShards()
		pipe := q.e.rdb.Pipeline()
		depths := make([]shardDepth, len(shards))
		for i, sh := range shards {
			depths[i] = queueShardDepth(ctx, pipe, sh)
		}
		_, _ = pipe.Exec(ctx) // one round trip for every shard; each command keeps its own error
		for i, d := range depths {
			q.add(ctx, shards[i], d)
		}
		q.at = time.Now()
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, q.backlog, "backlog")
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, q.ready, "ready")
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, q.delayed, "delayed")
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, q.oldest)
}

// shardDepth is the commands that read one shard's depths.
type shardDepth struct {
	bl     *redis.StringCmd
	zc     *redis.IntCmd
	groups *redis.XInfoGroupsCmd
	pend   *redis.XPendingCmd
}

func queueShardDepth(ctx context.Context, pipe redis.Pipeliner, sh *shard) shardDepth {
	return shardDepth{bl: pipe.Get(ctx, sh.k.backlog()), zc: pipe.ZCard(ctx, sh.k.delayed()),
		groups: pipe.XInfoGroups(ctx, sh.k.stream()), pend: pipe.XPending(ctx, sh.k.stream(), group)}
}

// add adds a shard's depths to the collector's, and its oldest due delivery's age when it is the
// oldest so far.
func (q *queueCollector) add(ctx context.Context, sh *shard, d shardDepth) {
	k, zc, groups, pend := sh.k, d.zc, d.groups, d.pend
	n, _ := d.bl.Int64()
	q.backlog += float64(n)
	q.delayed += float64(zc.Val())
	// The stream keeps acknowledged entries until it is trimmed: what is ready is what the group
	// has not read yet (its lag) plus what it has read and not yet acknowledged.
	oldest := ""
	if p := pend.Val(); p != nil && p.Count > 0 {
		q.ready += float64(p.Count)
		oldest = p.Lower
	}
	for _, g := range groups.Val() {
		if g.Name != group {
			continue
		}
		q.ready += float64(max(g.Lag, 0))
		if oldest == "" && g.Lag > 0 {
			// None in flight: the oldest is the first entry not read yet.
			if msgs, err := q.e.rdb.XRangeN(ctx, k.stream(), "("+g.LastDeliveredID, "+", 1).Result(); err == nil && len(msgs) > 0 {
				oldest = msgs[0].ID
			}
		}
	}
	// A stream id starts with the time the entry was added (ms).
	if ms, _, ok := strings.Cut(oldest, "-"); ok {
		q.oldest = max(q.oldest, float64(time.Now().UnixMilli()-atoi64(ms))/1000)
	}
}

// breakerCollector counts this process's endpoint breakers by state when scraped.
type breakerCollector struct{ e *Engine }

var breakerDesc = prometheus.NewDesc("herald_breakers",
	"Endpoint circuit breakers in this process by state (closed, open, half_open).", []string{"state"}, nil)

func (b *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

func (b *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[BreakerState]float64{BreakerClosed: 0, BreakerOpen: 0, BreakerHalfOpen: 0}
	b.e.breakersMu.Lock()
	for _, br := range b.e.breakers {
		counts[breakerState(br.cb.State())]++
	}
	b.e.breakersMu.Unlock()
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, n, string(s))
	}
}

func rnd() float64 { return rand.Float64() }
