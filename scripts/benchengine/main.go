// Command benchengine measures the delivery engine (package notifier) against a local receiver
// process and a throwaway Redis. scripts/bench.sh runs its phases in order:
//
//	benchengine receiver -addr 127.0.0.1:0     a receiver: 204 to every POST, records latencies
//	benchengine ceiling    ...                 plain Go HTTP POSTs, no queue: the raw ceiling
//	benchengine throughput ...                 N deliveries over E endpoints through the engine
//	benchengine latency    ...                 end-to-end p50/p99 at a steady rate
//	benchengine rss        ...                 peak RSS while 1,000,000 deliveries wait
//
// Each phase prints one line "RESULT key=value ..." that bench.sh collects.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/scripts/benchkit"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchengine receiver|ceiling|throughput|latency|rss [flags]")
		os.Exit(2)
	}
	phase := os.Args[1]
	fs := flag.NewFlagSet(phase, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "receiver listen address (receiver)")
	target := fs.String("target", "", "receiver base URL")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address")
	n := fs.Int("n", 100_000, "deliveries (or requests)")
	endpoints := fs.Int("endpoints", 1000, "endpoints")
	workers := fs.Int("workers", 64, "engine workers (default: the daemon's) / ceiling concurrency")
	rate := fs.Int("rate", 1000, "deliveries per second (latency)")
	dur := fs.Duration("duration", 10*time.Second, "how long to run (latency)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the phase to this file")
	_ = fs.Parse(os.Args[2:])
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}

	var err error
	switch phase {
	case "receiver":
		err = receiver(*addr)
	case "ceiling":
		err = ceiling(*target, *n, *workers)
	case "throughput":
		err = throughput(*redisAddr, *target, *n, *endpoints, *workers)
	case "latency":
		err = latency(*redisAddr, *target, *rate, *dur, *endpoints, *workers)
	case "latency-floor":
		err = latencyFloor(*target, *rate, *dur, *endpoints)
	case "rss":
		err = rss(*redisAddr, *target, *n, *endpoints, *workers)
	default:
		err = fmt.Errorf("unknown phase %q", phase)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchengine:", err)
		os.Exit(1)
	}
}

// body is the payload every phase sends: a typical notification, with the enqueue time in
// nanoseconds first so the receiver can measure the end-to-end latency.
func body(t time.Time) []byte {
	return []byte(`{"t":` + strconv.FormatInt(t.UnixNano(), 10) +
		`,"token":"xoxb-verification-token","type":"update_notification","channel":"C0123456789","chat_type":"group",` +
		`"update_type":"message_created","message":{"ts":"1716900000.000100","user":"U024BE7LH","text":"Hello from herald's delivery benchmark"}}`)
}

// ---- receiver ----

type recv struct {
	count atomic.Int64
	dups  atomic.Int64
	mu    sync.Mutex
	lat   []time.Duration
	seen  map[uint64]struct{} // hashes of webhook-ids, to count duplicate deliveries (no pointers for the GC to scan)
}

func receiver(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	r := &recv{lat: make([]time.Duration, 0, 1<<20), seen: map[uint64]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook/{ep}", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		now := time.Now()
		r.count.Add(1)
		if id := req.Header.Get("webhook-id"); id != "" {
			h := fnv.New64a()
			_, _ = h.Write([]byte(id))
			sum := h.Sum64()
			r.mu.Lock()
			if _, dup := r.seen[sum]; dup {
				r.dups.Add(1)
			} else if len(r.seen) < 2_000_000 {
				r.seen[sum] = struct{}{}
			}
			r.mu.Unlock()
		}
		if bytes.HasPrefix(b, []byte(`{"t":`)) {
			if i := bytes.IndexByte(b, ','); i > 5 {
				if ns, err := strconv.ParseInt(string(b[5:i]), 10, 64); err == nil {
					r.mu.Lock()
					if len(r.lat) < cap(r.lat) {
						r.lat = append(r.lat, now.Sub(time.Unix(0, ns)))
					}
					r.mu.Unlock()
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		l := slices.Clone(r.lat)
		r.mu.Unlock()
		slices.Sort(l)
		q := func(p float64) float64 {
			if len(l) == 0 {
				return 0
			}
			return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"count": r.count.Load(), "dups": r.dups.Load(), "samples": len(l), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1), "cpu_seconds": benchkit.CPUSeconds()})
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		r.lat = r.lat[:0]
		clear(r.seen)
		r.mu.Unlock()
		r.dups.Store(0)
		r.count.Store(0)
		w.WriteHeader(http.StatusNoContent)
	})
	fmt.Println("http://" + ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

type stats struct {
	Count   int64   `json:"count"`
	Dups    int64   `json:"dups"`
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	CPU     float64 `json:"cpu_seconds"` // the receiver process's CPU time so far
}

func getStats(target string) (stats, error) {
	var s stats
	resp, err := http.Get(target + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func reset(target string) error {
	resp, err := http.Post(target+"/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ---- ceiling ----

// ceiling is plain Go: the same body POSTed to the same receiver by `workers` goroutines over
// one keep-alive client, no queue, no Redis. Each request carries a unique webhook-id, so the
// receiver does the same bookkeeping as for herald's deliveries (no signature: signing is
// herald's work and counts against it).
func ceiling(target string, n, workers int) error {
	_ = reset(target)
	recv0, err := getStats(target)
	if err != nil {
		return err
	}
	self0 := benchkit.CPUSeconds()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxIdleConns: workers}, Timeout: 30 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/hook/ep%d", target, i%1000), bytes.NewReader(body(time.Now())))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("webhook-id", "ceil_"+strconv.FormatInt(i, 10)) // the receiver counts ids as it does herald's
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	selfUS := (benchkit.CPUSeconds() - self0) * 1e6 / float64(n)
	recv1, _ := getStats(target)
	fmt.Printf("RESULT phase=ceiling n=%d concurrency=%d seconds=%.2f per_sec=%.0f client_cpu_us_per_post=%.0f receiver_cpu_us_per_post=%.0f\n",
		n, workers, el.Seconds(), float64(n)/el.Seconds(), selfUS, (recv1.CPU-recv0.CPU)*1e6/float64(n))
	return nil
}

// ---- the engine ----

func engine(redisAddr string, workers int, prefix string) (*notifier.Engine, *redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: max(64, workers/2)})
	e, err := notifier.New(rdb, notifier.Config{
		Prefix:       prefix,
		Version:      "bench",
		AllowHTTP:    true,
		AllowPrivate: true,
		Workers:      workers,
		MaxBacklog:   5_000_000,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	return e, rdb, err
}

// benchSecret signs every benchmark delivery, as herald signs real ones.
const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// putEndpoints registers count endpoints, signed. With raised, their limits are raised for the
// benchmark: rate limit 10M per minute and max in flight 1000, so the limits do not cap
// throughput; without it they keep the defaults.
func putEndpoints(ctx context.Context, e *notifier.Engine, target string, count int, raised bool) error {
	for i := range count {
		ep := notifier.Endpoint{ID: fmt.Sprintf("ep%d", i), URL: fmt.Sprintf("%s/hook/ep%d", target, i), Secret: benchSecret}
		if raised {
			ep.RateLimitPerMinute, ep.MaxInFlight = 10_000_000, 1000
		}
		if err := e.PutEndpoint(ctx, ep); err != nil {
			return err
		}
	}
	return nil
}

// setup makes an engine on a fresh key prefix and registers count endpoints on it (see
// putEndpoints). The caller closes the returned Redis client.
func setup(ctx context.Context, redisAddr, target string, workers, count int, raised bool) (*notifier.Engine, *redis.Client, string, error) {
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	e, rdb, err := engine(redisAddr, workers, prefix)
	if err != nil {
		return nil, nil, "", err
	}
	if err := putEndpoints(ctx, e, target, count, raised); err != nil {
		rdb.Close()
		return nil, nil, "", err
	}
	return e, rdb, prefix, nil
}

// backlogKey is the Redis key holding the engine's count of waiting deliveries.
func backlogKey(prefix string) string {
	return prefix + ":{" + prefix + "}:backlog"
}

// waitCount polls the receiver every 20ms until it has counted want requests or timeout has
// passed. It returns the last stats read and whether want was reached; a failed read is an error.
func waitCount(target string, want int64, timeout time.Duration) (stats, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := getStats(target)
		if err != nil {
			return s, false, err
		}
		if s.Count >= want {
			return s, true, nil
		}
		if time.Now().After(deadline) {
			return s, false, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// paced calls send(i) for i from 0 to rate*dur-1 at a steady rate, each call in a goroutine of its
// own with at most 64 at once, and returns how many it sent and how long sending took.
func paced(rate int, dur time.Duration, send func(i int)) (total int, sent time.Duration) {
	total = int(float64(rate) * dur.Seconds())
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			send(i)
		}(i)
	}
	wg.Wait()
	return total, time.Since(start)
}

// enqueueAll enqueues n deliveries round-robin over count endpoints from 8 goroutines in batches
// of 256.
func enqueueAll(ctx context.Context, e *notifier.Engine, n, count int) (time.Duration, error) {
	const batch = 256
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reqs := make([]notifier.Request, 0, batch)
			for {
				from := next.Add(batch) - batch
				if from >= int64(n) {
					return
				}
				reqs = reqs[:0]
				for i := from; i < min(from+batch, int64(n)); i++ {
					reqs = append(reqs, notifier.Request{EndpointID: fmt.Sprintf("ep%d", i%int64(count)), Body: body(time.Now())})
				}
				if _, err := e.Enqueue(ctx, reqs...); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func throughput(redisAddr, target string, n, count, workers int) error {
	ctx := context.Background()
	e, rdb, prefix, err := setup(ctx, redisAddr, target, workers, count, true)
	if err != nil {
		return err
	}
	defer rdb.Close()
	_ = reset(target)
	// herald starts its engine before it accepts work, so the engine's one-time start-up steps
	// (the record layout check) run on an empty queue: do the same, outside the clock.
	if err := startAndStop(ctx, rdb, prefix); err != nil {
		return err
	}
	cpuEnq := benchkit.RedisCPU(ctx, rdb)
	enq, err := enqueueAll(ctx, e, n, count)
	if err != nil {
		return err
	}
	cpu0 := benchkit.RedisCPU(ctx, rdb)
	enqUS := (cpu0 - cpuEnq) * 1e6 / float64(n)
	if os.Getenv("BENCH_STATS") != "" {
		rdb.ConfigResetStat(ctx)
	}
	recv0, err := getStats(target)
	if err != nil {
		return err
	}
	self0 := benchkit.CPUSeconds()
	start := time.Now()
	if err := e.Start(ctx); err != nil {
		return err
	}
	if s, ok, err := waitCount(target, int64(n), 10*time.Minute); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("only %d of %d delivered after 10 minutes", s.Count, n)
	}
	el := time.Since(start)
	redisUS := (benchkit.RedisCPU(ctx, rdb) - cpu0) * 1e6 / float64(n)
	heraldUS := (benchkit.CPUSeconds() - self0) * 1e6 / float64(n)
	recv1, _ := getStats(target)
	recvUS := (recv1.CPU - recv0.CPU) * 1e6 / float64(n)
	if os.Getenv("BENCH_STATS") != "" {
		fmt.Fprintln(os.Stderr, rdb.Info(ctx, "commandstats").Val())
	}
	_ = e.Stop(ctx)
	backlog, _ := rdb.Get(ctx, backlogKey(prefix)).Int()
	fmt.Printf("RESULT phase=throughput endpoints=%d n=%d workers=%d enqueue_per_sec=%.0f seconds=%.2f per_sec=%.0f backlog_left=%d redis_cpu_us_per_delivery=%.0f herald_cpu_us_per_delivery=%.0f receiver_cpu_us_per_delivery=%.0f redis_cpu_us_per_enqueue=%.0f\n",
		count, n, workers, float64(n)/enq.Seconds(), el.Seconds(), float64(n)/el.Seconds(), backlog, redisUS, heraldUS, recvUS, enqUS)
	cleanup(ctx, rdb)
	return nil
}

// latency enqueues at a steady rate (one delivery at a time, as an API call would) and reads the
// receiver's end-to-end latencies: from just before Enqueue to the request arriving.
func latency(redisAddr, target string, rate int, dur time.Duration, count, workers int) error {
	ctx := context.Background()
	e, rdb, _, err := setup(ctx, redisAddr, target, workers, count, true)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := e.Start(ctx); err != nil {
		return err
	}
	// Warm up connections, then measure.
	warm := time.Now()
	for i := range 200 {
		if _, err := e.Enqueue(ctx, notifier.Request{EndpointID: fmt.Sprintf("ep%d", i%count), Body: body(time.Now())}); err != nil {
			return err
		}
	}
	_, _, _ = waitCount(target, 200, 10*time.Second-time.Since(warm)) // best effort: measure regardless
	_ = reset(target)
	total, sent := paced(rate, dur, func(i int) {
		_, _ = e.Enqueue(ctx, notifier.Request{EndpointID: fmt.Sprintf("ep%d", i%count), Body: body(time.Now())})
	})
	s, _, err := waitCount(target, int64(total), 30*time.Second)
	if err != nil {
		return err
	}
	_ = e.Stop(ctx)
	fmt.Printf("RESULT phase=latency rate=%d achieved_rate=%.0f n=%d delivered=%d duplicates=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		rate, float64(total)/sent.Seconds(), total, s.Count, s.Dups, s.P50, s.P99, s.Max)
	cleanup(ctx, rdb)
	return nil
}

// rss runs the engine while n deliveries wait in Redis (the receiver is slow to drain them: the
// endpoints keep the default 100/min rate limit) and reports this process's peak RSS.
func rss(redisAddr, target string, n, count, workers int) error {
	ctx := context.Background()
	e, rdb, prefix, err := setup(ctx, redisAddr, target, workers, count, false)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := e.Start(ctx); err != nil {
		return err
	}
	start := time.Now()
	if _, err := enqueueAll(ctx, e, n, count); err != nil {
		return err
	}
	enq := time.Since(start)
	// Let the engine work on the waiting backlog for a while (rate-limited deferrals).
	time.Sleep(10 * time.Second)
	backlog, _ := rdb.Get(ctx, backlogKey(prefix)).Int()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak, cur := procStatus("VmHWM"), procStatus("VmRSS")
	_ = e.Stop(ctx)
	used, _ := rdb.Info(ctx, "memory").Result()
	fmt.Printf("RESULT phase=rss n=%d waiting=%d enqueue_seconds=%.1f peak_rss_mb=%.0f rss_mb=%.0f heap_inuse_mb=%.0f redis_used_memory=%s\n",
		n, backlog, enq.Seconds(), peak/1024, cur/1024, float64(ms.HeapInuse)/(1<<20), benchkit.InfoField(used, "used_memory_human"))
	cleanup(ctx, rdb)
	return nil
}

func procStatus(field string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				return v // kB
			}
		}
	}
	return 0
}

func cleanup(ctx context.Context, rdb *redis.Client) {
	_ = rdb.FlushDB(ctx).Err() // a throwaway Redis
}

// latencyFloor is the latency phase without herald: the same paced POSTs sent directly, so the
// machine's own noise (scheduling, loopback) is known.
func latencyFloor(target string, rate int, dur time.Duration, count int) error {
	_ = reset(target)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	total, _ := paced(rate, dur, func(i int) {
		resp, err := client.Post(fmt.Sprintf("%s/hook/ep%d", target, i%count), "application/json", bytes.NewReader(body(time.Now())))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	s, err := getStats(target)
	if err != nil {
		return err
	}
	fmt.Printf("RESULT phase=latency-floor rate=%d n=%d delivered=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", rate, total, s.Count, s.P50, s.P99, s.Max)
	return nil
}

// startAndStop starts an engine on prefix and stops it at once, as a daemon starting up would.
func startAndStop(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	e, err := notifier.New(rdb, notifier.Config{Prefix: prefix, Workers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	return e.Stop(ctx)
}
