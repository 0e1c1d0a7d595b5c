// Command benchpath measures the path users run: a herald binary (`herald serve`) on a real
// redis-server, a channel and subscribers made over the HTTP API, notify calls over HTTP, and a
// receiver process that answers the handshake and records when each delivery arrives.
// scripts/bench-path.sh builds herald and this program, starts Redis, the receiver and herald,
// and runs:
//
//	benchpath receive [-addr 127.0.0.1:0]      the receiver: prints its URL, answers 200
//	benchpath run -herald URL -herald-pid PID -receiver URL -redis HOST:PORT [flags]
//
// With -redis A:1,B:2,C:3 (a Redis Cluster; -queue-shards as herald's) the backlog is the sum of
// the shards' counters (notifier.BacklogKeys), Redis's CPU and commandstats are summed over the
// masters (each read and reset directly), each master's share of the CPU is printed, and the
// by-caller pass is skipped.
//
// Each shape (events × subscribers) gets a channel and subscribers of its own (the subscribers'
// channel_ids filter names only that channel, so earlier shapes' subscribers never match), a raw
// ceiling measured just before it (plain Go POSTs of a same-sized body to the same receiver), and
// Redis's statistics reset (CONFIG RESETSTAT). A shape ends once all its deliveries arrived and
// herald's queue is empty (the engine's backlog counter is 0); the figures per delivery divide
// CPU time and command counts taken before and at that end by the deliveries it made, and
// duplicates are counted then (and once more at the end of the run, by each shape's channel).
// run exits non-zero when a shape's deliveries did not arrive exactly once.
//
// For the shapes sent as fast as possible, the e2e percentiles measure how long the backlog takes
// to drain; only the steady shape (paced) measures latency.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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
		fmt.Fprintln(os.Stderr, "usage: benchpath receive|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "receive":
		err = receive(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpath:", err)
		os.Exit(1)
	}
}

// ---- the receiver ----

// receiver records every notification by the channel in its path (/hook/<channel>/<n>): its
// webhook-id (to find duplicates), the event it belongs to (the "seq" the bench puts in each
// notify's message) and when it arrived. Each shape has a channel of its own, so a copy that
// arrives late, during a later shape, still counts against the shape it belongs to; records are
// kept for the whole run (only /_reset?channel=C drops one).
type receiver struct {
	mu    sync.Mutex
	chans map[string]*chanRec
}

// chanRec is what arrived for one channel.
type chanRec struct {
	ids        map[string]uint32 // webhook-id -> copies received
	dups       int64             // copies past the first
	noID       int64             // notifications without a webhook-id
	handshakes int64             // url_verification handshakes answered
	seqs       []int32           // per arrival: the event's seq (-1: none in the body)
	at         []int64           // per arrival: unix ns
	bytes      int64             // body bytes of the notifications
}

// chanOf is the channel of a receiver path /hook/<channel>/<n> ("" for other paths).
func chanOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/hook/")
	if !ok {
		return ""
	}
	ch, _, _ := strings.Cut(rest, "/")
	return ch
}

// rec is channel ch's record, made on first use; r.mu is held.
func (r *receiver) rec(ch string) *chanRec {
	c := r.chans[ch]
	if c == nil {
		c = &chanRec{ids: map[string]uint32{}}
		r.chans[ch] = c
	}
	return c
}

func receive(args []string) error {
	fs := flag.NewFlagSet("receive", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	r := &receiver{chans: map[string]*chanRec{}}
	fmt.Println("http://" + ln.Addr().String())
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	return srv.Serve(ln)
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/_stats":
		r.stats(w, req.URL.Query().Get("channel"))
		return
	case "/_reset":
		r.mu.Lock()
		delete(r.chans, req.URL.Query().Get("channel"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case "/_dump":
		var d dump
		r.mu.Lock()
		if c := r.chans[req.URL.Query().Get("channel")]; c != nil {
			d = dump{Seqs: slices.Clone(c.seqs), At: slices.Clone(c.at)}
		}
		r.mu.Unlock()
		_ = json.NewEncoder(w).Encode(d)
		return
	}
	buf := bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = buf.ReadFrom(req.Body)
	now := time.Now().UnixNano()
	b := buf.Bytes()
	ch := chanOf(req.URL.Path)
	if benchkit.AnswerHandshake(w, b) {
		r.mu.Lock()
		r.rec(ch).handshakes++
		r.mu.Unlock()
		bufs.Put(buf)
		return
	}
	seq := parseSeq(b)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	c := r.rec(ch)
	if id == "" {
		c.noID++
	} else {
		n := c.ids[id]
		if n > 0 {
			c.dups++
		}
		c.ids[id] = n + 1
	}
	c.seqs = append(c.seqs, seq)
	c.at = append(c.at, now)
	c.bytes += int64(len(b))
	r.mu.Unlock()
	bufs.Put(buf)
	w.WriteHeader(http.StatusOK)
}

// parseSeq reads the number after the first `"seq":` in b, or -1.
func parseSeq(b []byte) int32 {
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return -1
	}
	b = b[i+6:]
	n, digits := int32(0), 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int32(c-'0')
		digits++
	}
	if digits == 0 {
		return -1
	}
	return n
}

type recvStats struct {
	Count      int64   `json:"count"`      // the channel's notifications
	Unique     int64   `json:"unique"`     // distinct webhook-ids
	Dups       int64   `json:"dups"`       // copies past the first
	NoID       int64   `json:"no_id"`      // notifications without a webhook-id
	Handshakes int64   `json:"handshakes"` // url_verification handshakes answered
	Bytes      int64   `json:"bytes"`
	CPU        float64 `json:"cpu_seconds"` // the receiver process's CPU time so far
}

func (r *receiver) stats(w http.ResponseWriter, ch string) {
	var s recvStats
	r.mu.Lock()
	if c := r.chans[ch]; c != nil {
		s = recvStats{Count: int64(len(c.at)), Unique: int64(len(c.ids)), Dups: c.dups, NoID: c.noID,
			Handshakes: c.handshakes, Bytes: c.bytes}
	}
	r.mu.Unlock()
	s.CPU = benchkit.CPUSeconds()
	_ = json.NewEncoder(w).Encode(s)
}

type dump struct {
	Seqs []int32 `json:"seqs"`
	At   []int64 `json:"at"`
}

// ---- the bench ----

type shape struct {
	name   string
	events int
	subs   int
	rate   int           // events per second; 0: as fast as the 8 connections go
	dur    time.Duration // with rate
}

func (s shape) deliveries() int { return s.events * s.subs }

// parseShapes reads "EVENTSxSUBS" and "steady" items, comma-separated.
func parseShapes(list string, steady shape) ([]shape, error) {
	var out []shape
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == "steady" {
			out = append(out, steady)
			continue
		}
		e, s, ok := strings.Cut(item, "x")
		ne, err1 := strconv.Atoi(e)
		ns, err2 := strconv.Atoi(s)
		if !ok || err1 != nil || err2 != nil || ne < 1 || ns < 1 {
			return nil, fmt.Errorf("shape %q: want EVENTSxSUBSCRIBERS (e.g. 200x100) or steady", item)
		}
		out = append(out, shape{name: item, events: ne, subs: ns})
	}
	return out, nil
}

type bench struct {
	herald, recv string
	heraldPID    int
	rdb          *redis.Client         // the one Redis; nil on a Redis Cluster
	nodes        []*redis.Client       // whose statistics are read: the one Redis, or each master of the Cluster
	nodeAddrs    []string              // their addresses
	kv           redis.UniversalClient // reads the backlog counters: rdb, or a Cluster client
	shards       int                   // herald's --queue-shards
	api          *http.Client          // set-up calls
	notify       *http.Client          // the notify calls: 8 keep-alive connections
	ceilingN     int
	stamp        string
	seq          int // channels made so far: each shape's channel id is new
	timeout      time.Duration
	prefix       string        // herald's Redis key prefix (--redis-prefix)
	drainTimeout time.Duration // how long the queue may take to empty after the last delivery arrived

	pprofURL, pprofOut, pprofShape string
	pprofSeconds                   int
}

const (
	notifyConns  = 8
	ceilingConns = 64
	token        = "tok-bench-path"
)

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	b := &bench{}
	fs.StringVar(&b.herald, "herald", "", "herald's base URL")
	fs.IntVar(&b.heraldPID, "herald-pid", 0, "herald's process id (its CPU time is read from /proc)")
	fs.StringVar(&b.recv, "receiver", "", "the receiver's base URL (benchpath receive)")
	redisAddr := fs.String("redis", "", "the Redis herald uses, host:port (statistics are read and reset there); several, comma-separated: a Redis Cluster (statistics summed over its masters)")
	fs.IntVar(&b.shards, "queue-shards", 1, "herald's --queue-shards: the backlog is the sum of the shards' counters")
	quick := fs.Bool("quick", false, "smaller shapes and a shorter steady phase (a smoke run of about a minute)")
	shapesFlag := fs.String("shapes", "", "shapes to run, comma-separated: EVENTSxSUBSCRIBERS or steady "+
		"(default 2000x10,200x100,10000x2,1x10000,steady; with -quick 500x10,100x100,2000x2,1x2000,steady)")
	steadyRate := fs.Int("steady-rate", 100, "events per second of the steady shape")
	steadySubs := fs.Int("steady-subscribers", 10, "subscribers of the steady shape")
	steadyFor := fs.Duration("steady-duration", 10*time.Second, "how long the steady shape sends (default 3s with -quick)")
	fs.IntVar(&b.ceilingN, "ceiling-n", 20000, "POSTs of each raw ceiling measurement (default 5000 with -quick)")
	fs.DurationVar(&b.timeout, "shape-timeout", 90*time.Second, "a shape's deliveries must all arrive within this long after its last notify")
	fs.DurationVar(&b.drainTimeout, "drain-timeout", 30*time.Second, "after a shape's last delivery arrived, herald's queue must be empty within this long")
	fs.StringVar(&b.prefix, "redis-prefix", "herald", "herald's Redis key prefix (--redis-prefix): its backlog counter tells when the queue is empty")
	fs.StringVar(&b.pprofURL, "pprof", "", "herald's pprof base URL (--pprof-addr); empty: no profile")
	fs.StringVar(&b.pprofOut, "pprof-out", "herald.pprof", "where the CPU profile goes")
	fs.StringVar(&b.pprofShape, "pprof-shape", "200x100", "the shape during which the profile is taken")
	fs.IntVar(&b.pprofSeconds, "pprof-seconds", 5, "length of the CPU profile")
	topLevel := fs.Bool("by-caller", true, "finish with a 100x100 pass that logs every Redis command (SLOWLOG at 0 µs) to show what herald sends and what each of its scripts runs")
	_ = fs.Parse(args)
	if b.herald == "" || b.recv == "" || *redisAddr == "" || b.heraldPID == 0 {
		return errors.New("-herald, -herald-pid, -receiver and -redis are required (scripts/bench-path.sh sets them)")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	list := "2000x10,200x100,10000x2,1x10000,steady"
	if *quick {
		list = "500x10,100x100,2000x2,1x2000,steady"
		if !set["steady-duration"] {
			*steadyFor = 3 * time.Second
		}
		if !set["ceiling-n"] {
			b.ceilingN = 5000
		}
		if !set["pprof-shape"] {
			b.pprofShape = "100x100"
		}
	}
	if *shapesFlag != "" {
		list = *shapesFlag
	}
	steady := shape{name: "steady", rate: *steadyRate, subs: *steadySubs, dur: *steadyFor}
	steady.events = max(1, int(float64(steady.rate)*steady.dur.Seconds()))
	shapes, err := parseShapes(list, steady)
	if err != nil {
		return err
	}
	if b.pprofURL != "" && !slices.ContainsFunc(shapes, func(s shape) bool { return s.name == b.pprofShape }) {
		fmt.Fprintf(os.Stderr, "benchpath: no CPU profile will be taken: the shapes run leave out the profiled shape %s (-pprof-shape picks another)\n", b.pprofShape)
		b.pprofURL = ""
	}

	ctx := context.Background()
	if addrs := strings.Split(*redisAddr, ","); len(addrs) == 1 {
		b.rdb = redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: 4})
		defer b.rdb.Close()
		b.nodes, b.nodeAddrs, b.kv = []*redis.Client{b.rdb}, addrs, b.rdb
	} else {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 4})
		defer cc.Close()
		b.kv = cc
		// Each master directly: its CPU and commandstats are read, and reset, one by one.
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			b.nodeAddrs = append(b.nodeAddrs, m.Options().Addr)
			return nil
		})
		if err != nil {
			return fmt.Errorf("the Cluster's masters: %w", err)
		}
		slices.Sort(b.nodeAddrs)
		for _, a := range b.nodeAddrs {
			c := redis.NewClient(&redis.Options{Addr: a, PoolSize: 2})
			defer c.Close()
			b.nodes = append(b.nodes, c)
		}
		fmt.Printf("Redis Cluster: %d masters (%s), %d queue shards; Redis figures are summed over the masters", len(b.nodes), strings.Join(b.nodeAddrs, ", "), b.shards)
		if *topLevel {
			fmt.Print("; the by-caller pass (SLOWLOG) is skipped on a Cluster")
			*topLevel = false
		}
		fmt.Println()
	}
	b.api = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 30 * time.Second}
	b.notify = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: notifyConns, MaxConnsPerHost: notifyConns}, Timeout: 30 * time.Second}
	b.stamp = strconv.FormatInt(time.Now().Unix()%1e6, 10)

	// Warm up: herald's connections to the receiver and the API's, the notify connections, and
	// Redis's scripts, so the first shape does not pay for them.
	warm := shape{name: "warmup", events: 100, subs: 10}
	if _, err := b.shape(ctx, warm, true); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	var results []result
	for _, sh := range shapes {
		res, err := b.shape(ctx, sh, false)
		if err != nil {
			return fmt.Errorf("shape %s: %w", sh.name, err)
		}
		results = append(results, res)
	}
	if *topLevel {
		tl := shape{name: "100x100", events: 100, subs: 100}
		if *quick {
			tl.events = 50
		}
		if err := b.topLevel(ctx, tl); err != nil {
			return fmt.Errorf("commands by caller: %w", err)
		}
	}
	// A copy that arrived after its shape ended (during a later shape or the by-caller pass) is
	// in its channel's record: count it against its own shape.
	for i := range results {
		r := &results[i]
		s, err := b.recvStats(r.ch)
		if err != nil {
			return err
		}
		r.lateDups = s.Dups - r.dups
		if late := s.Count - r.arrived; late > 0 {
			fmt.Printf("\n!! %s: %d more notifications arrived after the shape ended: %d duplicates, %d first copies of deliveries counted missing\n",
				r.shape.name, late, r.lateDups, late-r.lateDups)
		}
	}
	printSummary(results)
	var bad []string
	for _, r := range results {
		if !r.exact() {
			bad = append(bad, r.shape.name)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("not exactly once in shape %s (see above)", strings.Join(bad, ", "))
	}
	return nil
}

// result is one shape's figures.
type result struct {
	shape                     shape
	ch                        string // its channel: the receiver's record of it
	arrived                   int64  // copies received when the shape ended (a later one is a late duplicate)
	missing, dups, stray      int64
	lateDups                  int64 // copies that arrived after the shape ended (found at the end of the run)
	backlog                   int64 // deliveries still queued when the drain timeout passed
	perSec, ceiling, ratio    float64
	p50, p99, max             time.Duration
	notifyP50, notifyP99      time.Duration
	heraldUS, redisUS, recvUS float64
	scriptCalls, otherCalls   float64 // Redis calls per delivery: scripts herald sent; other commands
	ceilCPU                   float64
	bodyBytes, ceilBodyBytes  int
	subsMismatch              int64
	masterShares              string // on a Redis Cluster: each master's share of the Redis CPU
}

// exact reports whether every delivery of the shape arrived exactly once.
func (r result) exact() bool {
	return r.missing == 0 && r.dups == 0 && r.stray == 0 && r.lateDups == 0 && r.backlog == 0
}

// scriptCmd reports whether a commandstats name is a script call (its usec includes the
// commands the script ran, which Redis counts again under their own names).
func scriptCmd(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// setup makes the shape's channel and subscribers over the API and waits until every subscriber
// is verified. It returns the channel id.
func (b *bench) setup(ctx context.Context, sh shape) (string, error) {
	b.seq++
	ch := fmt.Sprintf("bench-%s-%d-%s", b.stamp, b.seq, strings.ReplaceAll(sh.name, "x", "-"))
	chBody := map[string]any{"channel_id": ch, "channel_name": "bench " + sh.name,
		"channel_metadata": map[string]any{"endpoint_url": b.recv + "/channel", "chat_type": "bench"}}
	if err := b.call(ctx, http.MethodPost, "/channel", chBody, http.StatusCreated, nil); err != nil {
		return "", fmt.Errorf("create channel: %w", err)
	}
	ids := make([]string, sh.subs)
	var firstErr atomic.Value
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < sh.subs; i = int(next.Add(1) - 1) {
				var created struct {
					ID string `json:"id"`
				}
				body := map[string]any{"url": fmt.Sprintf("%s/hook/%s/%d", b.recv, ch, i), "token": token,
					"channel_ids": []string{ch}, "rate_limit_per_minute": 1_000_000, "max_in_flight": 64,
					"description": "benchpath " + sh.name}
				if err := b.call(ctx, http.MethodPost, "/subscribers", body, http.StatusCreated, &created); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("create subscriber: %w", err))
					return
				}
				ids[i] = created.ID
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return "", err
	}
	// Wait until every one is verified, reading the list (the whole list: it is ordered by id).
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		verified, failed := 0, ""
		after := ""
		for {
			var page struct {
				Subscribers []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
					Err    string `json:"last_verification_error"`
				} `json:"subscribers"`
				Next *string `json:"next"`
			}
			path := "/subscribers?limit=1000"
			if after != "" {
				path += "&after=" + after
			}
			if err := b.call(ctx, http.MethodGet, path, nil, http.StatusOK, &page); err != nil {
				return "", fmt.Errorf("list subscribers: %w", err)
			}
			for _, s := range page.Subscribers {
				if !want[s.ID] {
					continue
				}
				switch s.Status {
				case "verified":
					verified++
				case "failed", "disabled":
					failed = s.ID + " " + s.Status + ": " + s.Err
				}
			}
			if page.Next == nil {
				break
			}
			after = *page.Next
		}
		if failed != "" {
			return "", fmt.Errorf("subscriber %s", failed)
		}
		if verified == len(ids) {
			return ch, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("only %d of %d subscribers verified after 2 minutes", verified, len(ids))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call sends an API request with a JSON body (nil: none) and decodes a JSON answer into out.
func (b *bench) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.herald+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.api.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// message is the notify call's message for event seq; the receiver reads seq back.
func message(seq int) string {
	return `{"seq":` + strconv.Itoa(seq) + `,"timestamp":"2018-10-16T17:23:49.000100Z","user":"U024BE7LH","content":"Hello from herald's path benchmark"}`
}

func notifyBody(seq int) []byte {
	return []byte(`{"type":"update_notification","update_type":"message_created","message":` + message(seq) + `}`)
}

// deliveryBody is what herald sends a subscriber for event seq (events/payload.go: the six keys
// slackchat renderers parse), for the ceiling's POSTs to have the same size.
func deliveryBody(ch string, seq int) []byte {
	return []byte(`{"token":"` + token + `","type":"update_notification","channel":"` + ch +
		`","chat_type":"bench","update_type":"message_created","message":` + message(seq) + `}`)
}

// recvStats is what the receiver recorded for channel ch.
func (b *bench) recvStats(ch string) (recvStats, error) {
	var s recvStats
	resp, err := http.Get(b.recv + "/_stats?channel=" + url.QueryEscape(ch))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// recvReset drops the receiver's record of channel ch.
func (b *bench) recvReset(ch string) error {
	resp, err := http.Post(b.recv+"/_reset?channel="+url.QueryEscape(ch), "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// recvDump is each arrival of channel ch: its event's seq and its time.
func (b *bench) recvDump(ch string) (dump, error) {
	var d dump
	resp, err := http.Get(b.recv + "/_dump?channel=" + url.QueryEscape(ch))
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	return d, json.NewDecoder(resp.Body).Decode(&d)
}

// ceiling POSTs n same-sized bodies to the receiver from 64 goroutines over 64 keep-alive
// connections, with headers like herald's, and returns POSTs per second and this process's CPU
// time per POST (µs). Its POSTs go to a channel path of their own (ceiling-<ch>), whose record
// the receiver drops afterwards, so they never count as the shape's deliveries.
func (b *bench) ceiling(ch string, subs int) (perSec, cpuUS float64, bodyLen int, err error) {
	path := b.recv + "/hook/ceiling-" + ch + "/"
	defer func() {
		if rerr := b.recvReset("ceiling-" + ch); err == nil {
			err = rerr
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: ceilingConns, MaxConnsPerHost: ceilingConns}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	sig := "v1," + strings.Repeat("A", 43) + "=" // the size of herald's signature header
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	bodyLen = len(deliveryBody(ch, b.ceilingN))
	cpu0 := benchkit.CPUSeconds()
	start := time.Now()
	for range ceilingConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= b.ceilingN; i = int(next.Add(1)) {
				req, _ := http.NewRequest(http.MethodPost, path+strconv.Itoa(i%subs), bytes.NewReader(deliveryBody(ch, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "herald/dev")
				req.Header.Set("webhook-id", fmt.Sprintf("ceil_%026d", i))
				req.Header.Set("webhook-timestamp", ts)
				req.Header.Set("webhook-signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpuUS = (benchkit.CPUSeconds() - cpu0) * 1e6 / float64(b.ceilingN)
	if f := failed.Load(); f > 0 {
		return 0, 0, 0, fmt.Errorf("ceiling: %d of %d POSTs failed", f, b.ceilingN)
	}
	return float64(b.ceilingN) / el.Seconds(), cpuUS, bodyLen, nil
}

// sendNotifies calls notify for events 0..n-1 over the 8 connections: as fast as they go, or
// paced at rate per second. It returns each event's 202 time (unix ns, 0 for a failed call), the
// calls' own latencies, and how many calls failed or reported another subscriber count than subs.
func (b *bench) sendNotifies(ctx context.Context, ch string, n, subs, rate int) (t202 []int64, lat []time.Duration, errs, mismatch int64, firstErr error) {
	t202 = make([]int64, n)
	lat = make([]time.Duration, n)
	jobs := make(chan int, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var nErr, nMis atomic.Int64
	url := b.herald + "/channel/" + ch + "/notify"
	for range notifyConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(notifyBody(seq)))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := b.notify.Do(req)
				var raw []byte
				if err == nil {
					raw, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				t1 := time.Now()
				if err == nil && resp.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("notify: %d %s", resp.StatusCode, bytes.TrimSpace(raw))
				}
				if err != nil {
					nErr.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				var acc struct {
					Subscribers int `json:"subscribers"`
				}
				if json.Unmarshal(raw, &acc) != nil || acc.Subscribers != subs {
					nMis.Add(1)
				}
				t202[seq] = t1.UnixNano()
				lat[seq] = t1.Sub(t0)
			}
		}()
	}
	if rate <= 0 {
		for i := range n {
			jobs <- i
		}
	} else {
		interval := time.Second / time.Duration(rate)
		start := time.Now()
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	return t202, lat, nErr.Load(), nMis.Load(), firstErr
}

// waitArrivals polls the receiver until want distinct deliveries of channel ch arrived or
// timeout passed.
func (b *bench) waitArrivals(ch string, want int64, timeout time.Duration) (recvStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := b.recvStats(ch)
		if err != nil || s.Unique >= want || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDrained waits until herald's delivery queue is empty: the engine's backlog counter (pending
// deliveries, notifier/keys.go) is 0, so every try has been recorded and no copy of a delivery is
// still to come. It returns the backlog left when drainTimeout passes first (0: drained).
func (b *bench) waitDrained(ctx context.Context) (int64, error) {
	keys := notifier.BacklogKeys(b.prefix, b.shards)
	deadline := time.Now().Add(b.drainTimeout)
	for {
		var n int64
		var err error
		for _, key := range keys {
			// GETRANGE, not GET: herald never sends it, so the shape's statistics can leave it out.
			var v string
			if v, err = b.kv.GetRange(ctx, key, 0, -1).Result(); err != nil {
				break
			}
			if v != "" {
				var c int64
				if c, err = strconv.ParseInt(v, 10, 64); err != nil {
					break
				}
				n += max(c, 0)
			}
		}
		if err != nil || n <= 0 || time.Now().After(deadline) {
			return max(n, 0), err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// redisSnapshot reads the CPU time of each of b.nodes and their commandstats, summed.
func (b *bench) redisSnapshot(ctx context.Context) ([]float64, map[string]benchkit.CmdStat, error) {
	cpus := make([]float64, len(b.nodes))
	sum := map[string]benchkit.CmdStat{}
	for i, c := range b.nodes {
		cpus[i] = benchkit.RedisCPU(ctx, c)
		st, err := benchkit.CommandStats(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		for name, x := range st {
			y := sum[name]
			sum[name] = benchkit.CmdStat{Calls: x.Calls + y.Calls, Usec: x.Usec + y.Usec}
		}
	}
	return cpus, sum, nil
}

// shares formats each master's share of the Redis CPU used between cpu0 and cpu1.
func shares(cpu0, cpu1 []float64) string {
	var total float64
	for i := range cpu1 {
		total += cpu1[i] - cpu0[i]
	}
	parts := make([]string, len(cpu1))
	for i := range cpu1 {
		parts[i] = fmt.Sprintf("%.0f%%", 100*(cpu1[i]-cpu0[i])/max(total, 1e-9))
	}
	return strings.Join(parts, " / ")
}

// shape runs one shape and prints its figures (one line for the warm-up). The shape ends when
// all its deliveries arrived and herald's queue is empty (waitDrained): the final CPU and command
// readings are taken then, so the tail of the work (the last finishes) is in them, and
// duplicates are counted then.
func (b *bench) shape(ctx context.Context, sh shape, warmup bool) (result, error) {
	res := result{shape: sh}
	setupStart := time.Now()
	ch, err := b.setup(ctx, sh)
	if err != nil {
		return res, err
	}
	res.ch = ch
	setupTook := time.Since(setupStart)
	if !warmup {
		if res.ceiling, res.ceilCPU, res.ceilBodyBytes, err = b.ceiling(ch, sh.subs); err != nil {
			return res, err
		}
	}
	// Statistics start here: Redis's command counts from zero, CPU times as differences.
	for _, c := range b.nodes {
		if err := c.ConfigResetStat(ctx).Err(); err != nil {
			return res, err
		}
	}
	rcpu0, cmd0, err := b.redisSnapshot(ctx)
	if err != nil {
		return res, err
	}
	hcpu0, err := benchkit.ProcCPUSeconds(b.heraldPID)
	if err != nil {
		return res, err
	}
	recv0, err := b.recvStats(ch) // the handshakes so far, and the receiver's CPU
	if err != nil {
		return res, err
	}
	var profDone chan error
	if b.pprofURL != "" && sh.name == b.pprofShape && !warmup {
		profDone = make(chan error, 1)
		go func() { profDone <- b.fetchProfile() }()
		time.Sleep(50 * time.Millisecond) // the profile is running when the first notify goes
	}

	start := time.Now()
	t202, lat, errs, mismatch, firstErr := b.sendNotifies(ctx, ch, sh.events, sh.subs, sh.rate)
	sent := time.Now()
	if errs > 0 {
		return res, fmt.Errorf("%d of %d notify calls failed, the first with: %w", errs, sh.events, firstErr)
	}
	res.subsMismatch = mismatch
	want := int64(sh.deliveries())
	if _, err := b.waitArrivals(ch, want, b.timeout); err != nil {
		return res, err
	}
	waited := time.Since(sent)
	if res.backlog, err = b.waitDrained(ctx); err != nil {
		return res, err
	}
	drained := time.Since(sent)
	hcpu1, err := benchkit.ProcCPUSeconds(b.heraldPID)
	if err != nil {
		return res, err
	}
	rcpu1, cmd1, err := b.redisSnapshot(ctx)
	if err != nil {
		return res, err
	}
	rs, err := b.recvStats(ch)
	if err != nil {
		return res, err
	}
	if profDone != nil {
		if err := <-profDone; err != nil {
			fmt.Fprintf(os.Stderr, "benchpath: no CPU profile: %v (is herald serving /debug/pprof? --pprof-addr, HERALD_PPROF_ADDR)\n", err)
		}
	}
	d, err := b.recvDump(ch)
	if err != nil {
		return res, err
	}

	// End-to-end latency of each delivery: from its event's 202 to its arrival.
	e2e := make([]time.Duration, 0, len(d.At))
	var last int64
	for i, seq := range d.Seqs {
		if seq < 0 || int(seq) >= len(t202) || t202[seq] == 0 {
			res.stray++
			continue
		}
		e2e = append(e2e, time.Duration(d.At[i]-t202[seq]))
		last = max(last, d.At[i])
	}
	slices.Sort(e2e)
	slices.Sort(lat)
	res.arrived, res.dups = rs.Count, rs.Dups
	res.missing = max(0, want-rs.Unique)
	res.stray += rs.NoID
	res.p50, res.p99, res.max = benchkit.Pct(e2e, 0.5), benchkit.Pct(e2e, 0.99), benchkit.Pct(e2e, 1)
	res.notifyP50, res.notifyP99 = benchkit.Pct(lat, 0.5), benchkit.Pct(lat, 0.99)
	if last > 0 {
		res.perSec = float64(len(e2e)) / time.Duration(last-start.UnixNano()).Seconds()
	}
	n := float64(max(1, rs.Unique))
	if rs.Count > 0 {
		res.bodyBytes = int(rs.Bytes / rs.Count)
	}
	res.heraldUS = (hcpu1 - hcpu0) * 1e6 / n
	for i := range rcpu1 {
		res.redisUS += (rcpu1[i] - rcpu0[i]) * 1e6 / n
	}
	if len(b.nodes) > 1 {
		res.masterShares = shares(rcpu0, rcpu1)
	}
	res.recvUS = (rs.CPU - recv0.CPU) * 1e6 / n
	type row struct {
		name string
		benchkit.CmdStat
	}
	var rows []row
	var scriptCalls, otherCalls int64
	for name, a := range cmd1 {
		c := benchkit.CmdStat{Calls: a.Calls - cmd0[name].Calls, Usec: a.Usec - cmd0[name].Usec}
		if c.Calls <= 0 || name == "info" || name == "config|resetstat" || name == "getrange" {
			continue // the bench's own (getrange: waitDrained's reads)
		}
		if scriptCmd(name) {
			scriptCalls += c.Calls
		} else {
			otherCalls += c.Calls
		}
		rows = append(rows, row{name, c})
	}
	res.scriptCalls = float64(scriptCalls) / n
	res.otherCalls = float64(otherCalls) / n
	if res.ceiling > 0 {
		res.ratio = res.perSec / res.ceiling
	}

	if warmup {
		fmt.Printf("warm-up %s: %d/%d delivered in %s, queue empty after %s (set-up %s)\n", sh.name, rs.Unique, want,
			time.Since(start).Round(time.Millisecond), drained.Round(time.Millisecond), setupTook.Round(time.Millisecond))
		if !res.exact() {
			return res, fmt.Errorf("not exactly once: %d missing, %d duplicates, %d stray, %d still queued", res.missing, res.dups, res.stray, res.backlog)
		}
		return res, nil
	}
	kind := fmt.Sprintf("%d events × %d subscribers, as fast as 8 connections send", sh.events, sh.subs)
	if sh.rate > 0 {
		kind = fmt.Sprintf("%d events/s × %d subscribers for %s (%d deliveries/s offered)", sh.rate, sh.subs, sh.dur, sh.rate*sh.subs)
	}
	fmt.Printf("\n== %s: %s\n", sh.name, kind)
	fmt.Printf("  set-up: channel + %d subscribers over the API, all verified (%d handshakes answered), in %s\n",
		sh.subs, recv0.Handshakes, setupTook.Round(time.Millisecond))
	fmt.Printf("  raw ceiling: %.0f POST/s (64 keep-alive connections, %d POSTs of %d bytes); client CPU %.1f µs/POST\n",
		res.ceiling, b.ceilingN, res.ceilBodyBytes, res.ceilCPU)
	ratio := fmt.Sprintf("%.2f of the ceiling", res.ratio)
	if sh.rate > 0 {
		ratio = "paced: " + ratio + " is the offered rate's share"
	}
	fmt.Printf("  deliveries/s: %.0f (%s); notify calls %s for %d events, their 202 in p50 %.2f ms, p99 %.2f ms; last delivery %s after the last 202, queue empty after %s\n",
		res.perSec, ratio, sent.Sub(start).Round(time.Millisecond), sh.events, ms(res.notifyP50), ms(res.notifyP99),
		waited.Round(time.Millisecond), drained.Round(time.Millisecond))
	what := "latency"
	if sh.rate <= 0 {
		what = "sent as fast as possible, so this is how long the backlog takes to drain, not latency (only the steady shape measures latency)"
	}
	fmt.Printf("  e2e (notify 202 -> arrival): p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d deliveries; %s\n", ms(res.p50), ms(res.p99), ms(res.max), len(e2e), what)
	if sh.rate > 0 {
		// Where the tail sits: the share of slow deliveries, and per second of the run how many
		// of its deliveries took over 100 ms (a periodic stall shows as a pattern).
		over := func(d time.Duration) float64 {
			i, _ := slices.BinarySearch(e2e, d)
			return 100 * float64(len(e2e)-i) / float64(max(1, len(e2e)))
		}
		perSec := make([]int, int(sh.dur.Seconds())+2)
		for i, seq := range d.Seqs {
			if seq >= 0 && int(seq) < len(t202) && t202[seq] != 0 && d.At[i]-t202[seq] > int64(100*time.Millisecond) {
				perSec[min(len(perSec)-1, int((t202[seq]-start.UnixNano())/1e9))]++
			}
		}
		fmt.Printf("  e2e tail: %.1f%% over 10 ms, %.1f%% over 100 ms, %.1f%% over 500 ms; deliveries over 100 ms by second of their 202: %v\n",
			over(10*time.Millisecond), over(100*time.Millisecond), over(500*time.Millisecond), perSec)
	}
	fmt.Printf("  exactly once (counted once herald's queue was empty): %d expected, %d arrived, %d distinct webhook-ids, %d missing, %d duplicates, %d stray; 202s with another subscriber count: %d; body %d bytes\n",
		want, rs.Count, rs.Unique, res.missing, res.dups, res.stray, res.subsMismatch, res.bodyBytes)
	fmt.Printf("  CPU per delivery: herald %.1f µs, Redis %.1f µs (process: the Redis figure to trust), receiver %.1f µs\n", res.heraldUS, res.redisUS, res.recvUS)
	if res.masterShares != "" {
		fmt.Printf("  Redis CPU per master: %s (%s)\n", res.masterShares, strings.Join(b.nodeAddrs, " / "))
	}
	fmt.Printf("  Redis calls per delivery (INFO commandstats): %.2f script calls herald sent, %.2f other commands, sent by herald or run inside its scripts (Redis counts them alike; the by-caller pass at the end splits them)\n",
		res.scriptCalls, res.otherCalls)
	slices.SortFunc(rows, func(x, y row) int { return int(y.Calls - x.Calls) })
	for _, r := range rows[:min(len(rows), 10)] {
		note := ""
		if scriptCmd(r.name) {
			note = "  script: its µs include the commands it ran, counted again below"
		}
		fmt.Printf("    %-22s %7.3f calls/delivery (%6.1f µs/call)%s\n", r.name, float64(r.Calls)/n, float64(r.Usec)/float64(r.Calls), note)
	}
	if res.backlog > 0 {
		fmt.Printf("  !! herald's queue still held %d deliveries %s after the last arrival\n", res.backlog, b.drainTimeout)
	}
	if !res.exact() {
		fmt.Printf("  !! not exactly once: %d missing, %d duplicates, %d stray\n", res.missing, res.dups, res.stray)
	}
	return res, nil
}

// fetchProfile saves herald's CPU profile of the next pprofSeconds to pprofOut.
func (b *bench) fetchProfile() error {
	c := &http.Client{Timeout: time.Duration(b.pprofSeconds+30) * time.Second}
	resp, err := c.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.pprofURL, b.pprofSeconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %d", resp.StatusCode)
	}
	f, err := os.Create(b.pprofOut)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// topLevel runs one more shape with every Redis command logged (SLOWLOG at 0 µs) to tell what
// herald sends from what its scripts run: the slow log marks a command run by a script with the
// client "?:0" and lists it just before the script's own entry, so each script is shown with the
// commands one call of it runs. Scripts are named by their digest (benchkit.ScriptNames: the
// engine's from notifier.ScriptDigests, the others' read from the source; a script of neither, such
// as the rate limiter's, is an "unnamed script"). Its timings are not compared with the shapes': logging every command costs
// Redis some.
func (b *bench) topLevel(ctx context.Context, sh shape) error {
	names, err := benchkit.ScriptNames(".")
	if err != nil {
		return err
	}
	ch, err := b.setup(ctx, sh)
	if err != nil {
		return err
	}
	cfg, _ := b.rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err := b.rdb.ConfigSet(ctx, "slowlog-max-len", "2000000").Err(); err != nil {
		return err
	}
	if err := b.rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		return err
	}
	defer func() {
		for k, v := range cfg {
			_ = b.rdb.ConfigSet(ctx, k, v).Err()
		}
	}()
	if err := b.rdb.Do(ctx, "SLOWLOG", "RESET").Err(); err != nil {
		return err
	}
	_, _, errs, _, firstErr := b.sendNotifies(ctx, ch, sh.events, sh.subs, 0)
	if errs > 0 {
		return firstErr
	}
	if _, err := b.waitArrivals(ch, int64(sh.deliveries()), b.timeout); err != nil {
		return err
	}
	if _, err := b.waitDrained(ctx); err != nil { // the last finishes are logged too
		return err
	}
	if err := b.rdb.ConfigSet(ctx, "slowlog-log-slower-than", "-1").Err(); err != nil {
		return err
	}
	logs, err := b.rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		return err
	}
	slices.SortFunc(logs, func(x, y redis.SlowLog) int { return int(x.ID - y.ID) })
	type agg struct {
		name  string
		calls int
		dur   time.Duration
		inner map[string]int
	}
	by := map[string]*agg{}
	var pending []string
	top, inner := 0, 0
	for _, l := range logs {
		if len(l.Args) == 0 {
			continue
		}
		if l.ClientAddr == "?:0" { // run by a script: belongs to the next top-level entry
			pending = append(pending, benchkit.SlowName(l.Args))
			inner++
			continue
		}
		if c := strings.ToLower(l.Args[0]); c == "config" || c == "slowlog" || c == "getrange" { // the bench's own
			pending = pending[:0]
			continue
		}
		name := benchkit.SlowName(l.Args)
		if up := strings.ToUpper(l.Args[0]); up == "EVALSHA" && len(l.Args) > 1 {
			if n, ok := names[strings.ToLower(l.Args[1])]; ok {
				name = n + " (EVALSHA, first key " + benchkit.KeyKind(l.Args[min(3, len(l.Args)-1)]) + ")"
			} else {
				name += " (unnamed script)"
			}
		}
		a := by[name]
		if a == nil {
			a = &agg{name: name, inner: map[string]int{}}
			by[name] = a
		}
		a.calls++
		a.dur += l.Duration
		for _, p := range pending {
			a.inner[p]++
		}
		pending = pending[:0]
		top++
	}
	rows := make([]*agg, 0, len(by))
	var total time.Duration
	for _, a := range by {
		rows = append(rows, a)
		total += a.dur
	}
	slices.SortFunc(rows, func(x, y *agg) int { return int(y.dur - x.dur) })
	n := float64(sh.deliveries())
	fmt.Printf("\n== Redis calls by caller, %s (SLOWLOG at 0 µs; µs inflated by the logging, compare them with each other only)\n", sh.name)
	fmt.Printf("  per delivery: %.2f calls herald sends, %.2f more run inside its scripts; %.1f µs of Redis time\n", float64(top)/n, float64(inner)/n, float64(total.Microseconds())/n)
	for _, a := range rows[:min(len(rows), 16)] {
		fmt.Printf("    %-58s %7.3f calls/delivery %7.2f µs/delivery (%6.1f µs/call)\n", a.name, float64(a.calls)/n,
			float64(a.dur.Microseconds())/n, float64(a.dur.Microseconds())/float64(a.calls))
		if len(a.inner) > 0 {
			type kv struct {
				k string
				v int
			}
			var in []kv
			for k, v := range a.inner {
				in = append(in, kv{k, v})
			}
			slices.SortFunc(in, func(x, y kv) int { return y.v - x.v })
			var parts []string
			for _, x := range in[:min(len(in), 8)] {
				parts = append(parts, fmt.Sprintf("%.1f %s", float64(x.v)/float64(a.calls), x.k))
			}
			fmt.Printf("      each call runs: %s\n", strings.Join(parts, ", "))
		}
	}
	return nil
}

func printSummary(rs []result) {
	fmt.Printf("\n== summary (ratios to the ceiling measured just before each shape; CPU and Redis figures per delivery)\n")
	fmt.Printf("%-9s %9s %6s %9s %9s %9s %9s %8s %8s %8s %9s\n", "shape", "deliv/s", "ratio", "e2e p50", "e2e p99", "herald", "redis", "scripts", "cmds", "missing", "dups")
	for _, r := range rs {
		ratio := fmt.Sprintf("%.2f", r.ratio)
		if r.shape.rate > 0 {
			ratio = "paced"
		}
		fmt.Printf("%-9s %9.0f %6s %7.2fms %7.2fms %7.1fµs %7.1fµs %8.2f %8.2f %8d %9d\n", r.shape.name, r.perSec, ratio,
			ms(r.p50), ms(r.p99), r.heraldUS, r.redisUS, r.scriptCalls, r.otherCalls, r.missing, r.dups+r.lateDups)
	}
	for _, r := range rs {
		if r.masterShares != "" {
			fmt.Printf("%-9s Redis CPU per master: %s\n", r.shape.name, r.masterShares)
		}
	}
	fmt.Println("herald, redis: CPU time of the process. scripts: script calls herald sent; cmds: other commands, sent by herald or run")
	fmt.Println("inside its scripts (Redis counts both alike; the by-caller pass splits them). e2e of a shape sent as fast as possible is")
	fmt.Println("how long its backlog takes to drain; only the steady shape measures latency.")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
