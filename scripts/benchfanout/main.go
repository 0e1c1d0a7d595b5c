// Command benchfanout measures one event fanned out to many verified subscribers through a whole
// herald running in-process against a real Redis: the time from the notify call's 202 to the last
// delivery enqueued and to the last delivery received by a separate receiver process, the notify
// call's own latency, and the latency of a cheap API route (GET /channel/{id}) while the fan-out
// runs. scripts/bench-fanout.sh starts a throwaway redis-server and runs it.
//
//	go run ./scripts/benchfanout -redis-url redis://127.0.0.1:6379/0 [-subscribers 10000] [-runs 3]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/events"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/scripts/benchkit"
	"github.com/heraldhq/herald/subscribers"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "receive" {
		os.Exit(receive(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	redisURL := flag.String("redis-url", "", "Redis to use (a throwaway one: the benchmark writes under its own prefix)")
	n := flag.Int("subscribers", 10000, "verified subscribers the event goes to")
	runs := flag.Int("runs", 3, "events to send, one after the other")
	probes := flag.Int("probes", 4, "concurrent clients calling GET /channel/{id} during the fan-out")
	workers := flag.Int("workers", app.Default().Workers, "the engine's delivery workers (herald --workers)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the runs (not the set-up) to this file")
	flag.Parse()
	profile, engineWorkers = *cpuProfile, *workers
	if *redisURL == "" {
		fmt.Fprintln(os.Stderr, "benchfanout: -redis-url is required (scripts/bench-fanout.sh starts one)")
		return 2
	}
	if err := bench(*redisURL, *n, *runs, *probes); err != nil {
		fmt.Fprintln(os.Stderr, "benchfanout:", err)
		return 1
	}
	return 0
}

var (
	profile       string
	engineWorkers int
)

func bench(redisURL string, n, runs, probes int) error {
	ctx := context.Background()
	// The receiver is a separate process, so its work does not share this one's CPU scheduler.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rcv := exec.Command(self, "receive", "-expect", strconv.Itoa(n))
	rcv.Stderr = os.Stderr
	rout, err := rcv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := rcv.Start(); err != nil {
		return err
	}
	defer func() { _ = rcv.Process.Kill(); _ = rcv.Wait() }()
	lines := bufio.NewScanner(rout)
	if !lines.Scan() {
		return errors.New("the receiver did not start")
	}
	hookURL := "http://" + strings.TrimPrefix(lines.Text(), "listening ") + "/hook"
	done := make(chan int64, runs)
	go func() {
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) == 3 && f[0] == "done" {
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				done <- ns
			}
		}
	}()

	cfg := app.Default()
	cfg.Redis.URL = redisURL
	cfg.RedisPrefix = "bench" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cfg.AllowHTTP, cfg.AllowPrivate = true, true
	cfg.APIRateLimit = 0
	cfg.Workers = engineWorkers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg.Addr = ln.Addr().String()
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	base := "http://" + cfg.Addr
	fmt.Printf("herald on %s, Redis %s (prefix %s), receiver %s, %d subscribers\n", base, a.Conn.Addr, cfg.RedisPrefix, hookURL, n)

	// Set-up happens before Serve, so no verifier races the direct verification below.
	start := time.Now()
	if _, err := a.Channels.Create(ctx, &channels.Channel{ChannelID: "bench", ChannelName: "Bench",
		ChannelMetadata: map[string]any{"endpoint_url": hookURL, "chat_type": "bench"}, ChannelTags: []string{"bench"}}); err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	if err := makeSubscribers(ctx, a.Subscribers, a.Engine, n, hookURL); err != nil {
		return err
	}
	fmt.Printf("set-up: %d verified subscribers in %s\n", n, time.Since(start).Round(time.Millisecond))

	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// The Redis floor: PINGs on a connection of their own show how long any Redis call waits
	// behind the others (the API cannot answer faster than that).
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	opt.PoolSize, opt.MinIdleConns = 1, 1
	pinger := redis.NewClient(opt)
	defer pinger.Close()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for r := 1; r <= runs; r++ {
		// Redis's slow log shows the commands that held Redis (and so every API call) longest.
		_ = a.RDB.ConfigSet(ctx, "slowlog-log-slower-than", "2000").Err()
		_ = a.RDB.Do(ctx, "SLOWLOG", "RESET").Err()
		if err := oneRun(ctx, client, base, a.Events, a.RDB, pinger, n, probes, done, r); err != nil {
			return err
		}
		slowLog(ctx, a.RDB)
	}
	return nil
}

func oneRun(ctx context.Context, client *http.Client, base string, svc *events.Service, rdb redis.UniversalClient,
	pinger *redis.Client, n, probes int, done <-chan int64, run int) error {
	// The probes call a cheap route for the whole run; latencies are kept from the 202 to the
	// last delivery received.
	var (
		mu      sync.Mutex
		lat     []time.Duration
		sample  []timed // every probe in the window, to split it at the last enqueue
		idleLat []time.Duration
		errs    atomic.Int64
		window  atomic.Bool
		idle    atomic.Bool
		stopped = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopped:
					return
				default:
				}
				t0 := time.Now()
				resp, err := client.Get(base + "/channel/bench")
				d := time.Since(t0)
				if err != nil || resp.StatusCode != 200 {
					errs.Add(1)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				switch {
				case window.Load():
					mu.Lock()
					lat = append(lat, d)
					sample = append(sample, timed{t0, d})
					mu.Unlock()
				case idle.Load():
					mu.Lock()
					idleLat = append(idleLat, d)
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	var (
		pingIdle, pingExp, pingDel []time.Duration
		enqueued                   atomic.Bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopped:
				return
			default:
			}
			t0 := time.Now()
			err := pinger.Ping(ctx).Err()
			d := time.Since(t0)
			if err != nil {
				errs.Add(1)
			}
			switch {
			case window.Load() && !enqueued.Load():
				mu.Lock()
				pingExp = append(pingExp, d)
				mu.Unlock()
			case window.Load():
				mu.Lock()
				pingDel = append(pingDel, d)
				mu.Unlock()
			case idle.Load():
				mu.Lock()
				pingIdle = append(pingIdle, d)
				mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond) // warm the probes' connections
	// A baseline: the same calls for a second with no fan-out running (the machine's own noise).
	idle.Store(true)
	time.Sleep(time.Second)
	idle.Store(false)

	body := `{"type": "update_notification", "update_type": "message_created", "message": {"timestamp": "2018-10-16T17:23:49.000100Z", "user": "USERID", "content": "A new message."}}`
	stats0 := commandStats(ctx, rdb)
	window.Store(true)
	t0 := time.Now()
	resp, err := client.Post(base+"/channel/bench/notify", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t202 := time.Now()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("notify: %d %s", resp.StatusCode, raw)
	}
	var acc events.Accepted
	if err := json.Unmarshal(raw, &acc); err != nil {
		return err
	}
	// The last delivery is enqueued when the event is marked expanded (polled every 1 ms).
	var tEnq time.Time
	for {
		ev, err := svc.Get(ctx, acc.EventID)
		if err != nil {
			return err
		}
		if ev.Status == events.StatusExpanded {
			tEnq = time.Now()
			enqueued.Store(true)
			if ev.Enqueued != n {
				return fmt.Errorf("event expanded with %d deliveries, want %d", ev.Enqueued, n)
			}
			break
		}
		if time.Since(t202) > 2*time.Minute {
			return errors.New("the event was not expanded within 2 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	stats1 := commandStats(ctx, rdb)
	var tRecv time.Time
	select {
	case ns := <-done:
		tRecv = time.Unix(0, ns)
	case <-time.After(5 * time.Minute):
		return errors.New("the receiver did not get every delivery within 5 minutes")
	}
	window.Store(false)
	close(stopped)
	wg.Wait()

	slices.Sort(lat)
	var expanding []time.Duration
	for _, x := range sample {
		if x.at.Before(tEnq) {
			expanding = append(expanding, x.d)
		}
	}
	slices.Sort(expanding)
	mu.Lock()
	slices.Sort(idleLat)
	slices.Sort(pingIdle)
	slices.Sort(pingExp)
	slices.Sort(pingDel)
	mu.Unlock()
	fmt.Printf("run %d: event %s to %d subscribers (202 said %d)\n", run, acc.EventID, n, acc.Subscribers)
	fmt.Printf("  notify answered 202 in      %8.2f ms\n", ms(t202.Sub(t0)))
	fmt.Printf("  202 -> last enqueued        %8.2f ms  (target < 1000 ms)\n", ms(tEnq.Sub(t202)))
	fmt.Printf("  202 -> last received        %8.2f ms  (%.0f deliveries/s)\n", ms(tRecv.Sub(t202)), float64(n)/tRecv.Sub(t202).Seconds())
	fmt.Printf("  GET /channel/{id} idle:      %d calls, p50 %.2f ms, p99 %.2f ms, max %.2f ms (no fan-out running)\n",
		len(idleLat), ms(benchkit.Pct(idleLat, 0.50)), ms(benchkit.Pct(idleLat, 0.99)), ms(benchkit.Pct(idleLat, 1)))
	fmt.Printf("  GET /channel/{id} expanding: %d calls, p50 %.2f ms, p99 %.2f ms, max %.2f ms (202 to last enqueued)\n",
		len(expanding), ms(benchkit.Pct(expanding, 0.50)), ms(benchkit.Pct(expanding, 0.99)), ms(benchkit.Pct(expanding, 1)))
	fmt.Printf("  GET /channel/{id} whole run: %d calls, %d errors, p50 %.2f ms, p99 %.2f ms, max %.2f ms (202 to last received; target p99 < 10 ms)\n",
		len(lat), errs.Load(), ms(benchkit.Pct(lat, 0.50)), ms(benchkit.Pct(lat, 0.99)), ms(benchkit.Pct(lat, 1)))
	fmt.Printf("  Redis PING (own connection): idle p50 %.2f ms, p99 %.2f ms; expanding p50 %.2f ms, p99 %.2f ms, max %.2f ms; "+
		"delivering only p50 %.2f ms, p99 %.2f ms (the floor under any API call)\n",
		ms(benchkit.Pct(pingIdle, 0.5)), ms(benchkit.Pct(pingIdle, 0.99)), ms(benchkit.Pct(pingExp, 0.5)), ms(benchkit.Pct(pingExp, 0.99)), ms(benchkit.Pct(pingExp, 1)),
		ms(benchkit.Pct(pingDel, 0.5)), ms(benchkit.Pct(pingDel, 0.99)))
	printBusy(stats0, stats1, tEnq.Sub(t0))
	return nil
}

// slowLog prints the Redis commands that ran longer than 2 ms during the run, grouped by name
// (a script by its digest and the kind of its first key).
func slowLog(ctx context.Context, rdb redis.UniversalClient) {
	logs, err := rdb.SlowLogGet(ctx, 1000).Result()
	if err != nil {
		fmt.Println("  (no slow log:", err, ")")
		return
	}
	fmt.Printf("  Redis commands over 2 ms: %d\n", len(logs))
	for _, g := range benchkit.GroupSlowLog(logs) {
		fmt.Printf("    %-40s %5d  max %6.2f ms  mean %6.2f ms\n", g.Name, g.N, ms(g.Max), ms(g.Sum/time.Duration(g.N)))
	}
}

// commandStats reads INFO commandstats (Redis's own time spent per command; a script's time
// includes the commands it ran, which are counted again under their names) and, as "cpu", the
// CPU time of Redis's main thread (usec only).
func commandStats(ctx context.Context, rdb redis.UniversalClient) map[string]cmdStat {
	out, err := benchkit.CommandStats(ctx, rdb)
	if err != nil {
		return map[string]cmdStat{}
	}
	out["cpu"] = cmdStat{Usec: int64(benchkit.RedisMainThreadCPU(ctx, rdb) * 1e6)}
	return out
}

type cmdStat = benchkit.CmdStat

// printBusy prints how much of the window Redis spent executing commands, and on which.
func printBusy(before, after map[string]cmdStat, window time.Duration) {
	type row struct {
		name string
		cmdStat
	}
	var rows []row
	for name, a := range after {
		b := before[name]
		d := cmdStat{Calls: a.Calls - b.Calls, Usec: a.Usec - b.Usec}
		if d.Calls <= 0 || name == "cpu" {
			continue
		}
		rows = append(rows, row{name, d})
	}
	slices.SortFunc(rows, func(x, y row) int { return int(y.Usec - x.Usec) })
	cpu := float64(after["cpu"].Usec-before["cpu"].Usec) / 1000
	fmt.Printf("  Redis main thread CPU notify -> last enqueued: %.0f ms of %.0f ms (%.0f%%); by command (scripts include their commands):",
		cpu, ms(window), 100*cpu/max(ms(window), 1))
	for _, r := range rows[:min(len(rows), 7)] {
		fmt.Printf(" %s %d calls %.0f ms (%.0f µs/call);", strings.ToLower(r.name), r.Calls, float64(r.Usec)/1000, float64(r.Usec)/float64(r.Calls))
	}
	fmt.Println()
}

type timed struct {
	at time.Time
	d  time.Duration
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// makeSubscribers creates n subscribers through the store, records a successful handshake for
// each through the store's verification API and registers their engine endpoints.
func makeSubscribers(ctx context.Context, st *subscribers.Store, eng *notifier.Engine, n int, url string) error {
	work := make(chan int)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s, err := st.Create(ctx, &subscribers.Subscriber{ID: fmt.Sprintf("bench-%06d", i), URL: url, Token: fmt.Sprintf("tok-%d", i)})
				if err == nil {
					err = eng.PutEndpoint(ctx, notifier.Endpoint{ID: subscribers.EndpointID(s.ID), URL: s.URL, Secret: s.Secret})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("create subscribers: %w", err)
	}
	for verified := 0; verified < n; {
		tasks, err := st.ClaimVerifications(ctx, 1000, time.Minute)
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			return fmt.Errorf("only %d of %d handshakes were queued", verified, n)
		}
		var wg sync.WaitGroup
		ch := make(chan subscribers.VerifyTask)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for task := range ch {
					if _, err := st.FinishVerification(ctx, task, ""); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		for _, task := range tasks {
			ch <- task
		}
		close(ch)
		wg.Wait()
		verified += len(tasks)
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("verify subscribers: %w", err)
	}
	return nil
}

// receive is the receiver process: it answers handshakes, counts notifications and prints
// "done <k> <unix ns>" each time another expect of them has arrived.
func receive(args []string) int {
	fs := flag.NewFlagSet("receive", flag.ExitOnError)
	expect := fs.Int64("expect", 10000, "deliveries per event")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("listening", ln.Addr().String())
	var count atomic.Int64
	var out sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if benchkit.AnswerHandshake(w, b) {
			return
		}
		w.WriteHeader(http.StatusOK)
		if c := count.Add(1); c%*expect == 0 {
			now := time.Now().UnixNano()
			out.Lock()
			fmt.Println("done", c / *expect, now)
			out.Unlock()
		}
	})}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
