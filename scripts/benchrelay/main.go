// Command benchrelay measures herald's message relay end to end with local receivers: a message
// POSTed to /channel/message, relayed to a channel server (herald sink's handler), whose callback
// to /webhook-response is forwarded to a sessions server. It runs the whole daemon in-process.
//
// It reports the round trips per second at full speed (a burst of messages sent by concurrent
// clients, timed until the last response reached the sessions server) and the p50/p99 round trip
// at a steady moderate rate. It is a benchmark, not a test: run it with scripts/bench-relay.sh.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/sink"
)

func main() { os.Exit(run()) }

func run() int {
	redisURL := flag.String("redis-url", "", "Redis to use (default: the embedded store)")
	burst := flag.Int("burst", 2000, "messages in the throughput phase")
	conc := flag.Int("concurrency", 32, "concurrent senders in the throughput phase")
	rate := flag.Int("rate", 50, "messages per second in the latency phase")
	dur := flag.Duration("duration", 10*time.Second, "length of the latency phase")
	workers := flag.Int("workers", 64, "herald --workers")
	inflight := flag.Int("max-in-flight", 64, "herald --max-in-flight (per endpoint)")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)

	// The sessions server: notes when each session's response arrives.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	var forwards atomic.Int64
	sessLn := listen()
	sessSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			SessionID string `json:"session_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&f)
		now := time.Now()
		mu.Lock()
		if _, ok := arrived[f.SessionID]; !ok {
			arrived[f.SessionID] = now
		}
		mu.Unlock()
		forwards.Add(1)
	})}
	go func() { _ = sessSrv.Serve(sessLn) }()
	defer sessSrv.Close()

	// The channel server: the sink, calling back at once with a pooled client.
	chLn := listen()
	snk := sink.New(sink.Config{MaxCallbacks: 4096, Client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512},
	}})
	chSrv := &http.Server{Handler: snk}
	go func() { _ = chSrv.Serve(chLn) }()
	defer func() { chSrv.Close(); _ = snk.Close(context.Background()) }()

	// herald.
	hLn := listen()
	cfg := app.Default()
	cfg.Addr = hLn.Addr().String()
	cfg.Redis = redisx.Options{URL: *redisURL}
	cfg.RedisPrefix = fmt.Sprintf("bench%d", time.Now().UnixNano())
	cfg.SessionsURL = "http://" + sessLn.Addr().String() + "/sessions"
	cfg.AllowHTTP, cfg.AllowPrivate = true, true
	cfg.APIRateLimit = 0
	cfg.RateLimitPerMinute = 10_000_000
	cfg.MaxInFlight = *inflight
	cfg.Workers = *workers
	cfg.LogLevel = "warn"
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrelay:", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, hLn) }()
	base := "http://" + hLn.Addr().String()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}

	store := "embedded store (miniredis)"
	if *redisURL != "" {
		store = "redis " + redactURL(*redisURL)
	}
	fmt.Printf("herald relay benchmark: %s, workers=%d, max-in-flight=%d, GOMAXPROCS-visible CPUs=%d\n", store, *workers, *inflight, numCPU())
	if code := post(client, base+"/channel", fmt.Sprintf(`{"channel_id":"bench","channel_metadata":{"endpoint_url":"http://%s/incoming","rate_limit_per_minute":10000000,"max_in_flight":%d}}`, chLn.Addr(), *inflight)); code != 201 {
		fmt.Fprintf(os.Stderr, "benchrelay: create channel: HTTP %d\n", code)
		return 1
	}

	send := func(id string) (time.Time, bool) {
		t := time.Now()
		code := post(client, base+"/channel/message", `{"channel_id":"bench","session_id":"`+id+`","message":"benchmark"}`)
		return t, code == 202
	}
	wait := func(ids []string, deadline time.Time) int {
		for {
			mu.Lock()
			n := 0
			for _, id := range ids {
				if _, ok := arrived[id]; ok {
					n++
				}
			}
			mu.Unlock()
			if n == len(ids) || time.Now().After(deadline) {
				return n
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Warm up connections and the engine.
	var warm []string
	for i := range 50 {
		id := fmt.Sprintf("warm-%d", i)
		send(id)
		warm = append(warm, id)
	}
	wait(warm, time.Now().Add(30*time.Second))

	// Phase 1: throughput.
	ids := make([]string, *burst)
	for i := range ids {
		ids[i] = fmt.Sprintf("tp-%d", i)
	}
	var next atomic.Int64
	var refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				if _, ok := send(ids[i]); !ok {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	got := wait(ids, time.Now().Add(2*time.Minute))
	mu.Lock()
	var last time.Time
	for _, id := range ids {
		if t, ok := arrived[id]; ok && t.After(last) {
			last = t
		}
	}
	mu.Unlock()
	total := last.Sub(start)
	fmt.Printf("\nthroughput: %d messages by %d concurrent senders\n", *burst, *conc)
	fmt.Printf("  accepted (202) in %s: %.0f messages/s; refused: %d\n", accepted.Round(time.Millisecond), float64(*burst)/accepted.Seconds(), refused.Load())
	fmt.Printf("  full round trips completed: %d/%d in %s: %.0f round trips/s\n", got, *burst, total.Round(time.Millisecond), float64(got)/total.Seconds())

	// Phase 2: latency at a steady rate.
	n := int(dur.Seconds() * float64(*rate))
	sent := make(map[string]time.Time, n)
	var smu sync.Mutex
	lids := make([]string, 0, n)
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	var lwg sync.WaitGroup
	for i := range n {
		<-tick.C
		id := fmt.Sprintf("lat-%d", i)
		lids = append(lids, id)
		lwg.Go(func() {
			t, ok := send(id)
			if ok {
				smu.Lock()
				sent[id] = t
				smu.Unlock()
			}
		})
	}
	tick.Stop()
	lwg.Wait()
	lgot := wait(lids, time.Now().Add(time.Minute))
	var rtts []time.Duration
	mu.Lock()
	for id, t := range sent {
		if a, ok := arrived[id]; ok {
			rtts = append(rtts, a.Sub(t))
		}
	}
	mu.Unlock()
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	fmt.Printf("\nlatency: %d messages at %d/s for %s; %d round trips completed\n", n, *rate, *dur, lgot)
	if len(rtts) > 0 {
		fmt.Printf("  round trip (POST /channel/message -> response at the sessions server): p50 %s  p90 %s  p99 %s  max %s\n",
			pct(rtts, 50), pct(rtts, 90), pct(rtts, 99), rtts[len(rtts)-1].Round(10*time.Microsecond))
	}
	fmt.Printf("\nforwards received in all: %d (duplicates are allowed by at-least-once delivery)\n", forwards.Load())

	cancel()
	if err := <-served; err != nil {
		fmt.Fprintln(os.Stderr, "benchrelay: herald:", err)
		return 1
	}
	if got != *burst || lgot != n {
		return 1
	}
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	i = min(max(i-1, 0), len(d)-1)
	return d[i].Round(10 * time.Microsecond)
}

func post(c *http.Client, url, body string) int {
	resp, err := c.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return ln
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return len(slices.DeleteFunc(strings.Split(string(b), "\n"), func(l string) bool { return !strings.HasPrefix(l, "processor") }))
}
