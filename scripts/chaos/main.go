// Command chaos runs herald as users run it in production, with real binaries and a real Redis,
// and breaks things while it works: two herald processes share one Redis (AOF, fsync always); a
// receiver fails a share of requests; in the middle of the run one herald is killed with SIGKILL
// and started again, and then Redis itself is killed with SIGKILL and started again from its AOF.
// Publishers keep publishing throughout, retrying on 503 as the API asks them to.
//
// At the end it counts, per (event, subscriber), what the receiver got. Lost deliveries make it exit
// 1; duplicates are allowed (delivery is at-least-once) and reported.
//
//	bash scripts/chaos.sh            # builds herald and runs this
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	herald := flag.String("herald", "./bin/herald", "herald binary")
	subs := flag.Int("subscribers", 20, "verified subscribers")
	events := flag.Int("events", 300, "notify events to publish")
	failRate := flag.Float64("fail-rate", 0.2, "share of notifications the receiver answers 500")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up waiting for deliveries after this")
	flag.BoolVar(&keep, "keep", false, "keep the logs and Redis data even when nothing was lost")
	flag.Parse()
	if err := run(*herald, *subs, *events, *failRate, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

var keep bool

type proc struct {
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

func (p *proc) start() error {
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return p.cmd.Start()
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// receiver answers handshakes and counts notifications by webhook-id.
type receiver struct {
	failRate float64
	mu       sync.Mutex
	got      map[string]int
	failed   atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	if m["type"] == "url_verification" {
		_ = json.NewEncoder(w).Encode(m["challenge"]) // as the seed's Django view does
		return
	}
	if rand.Float64() < rc.failRate {
		rc.failed.Add(1)
		w.WriteHeader(500)
		return
	}
	rc.mu.Lock()
	rc.got[r.Header.Get("webhook-id")]++
	rc.mu.Unlock()
	w.WriteHeader(200)
}

func run(heraldBin string, nSubs, nEvents int, failRate float64, timeout time.Duration) error {
	dir, err := os.MkdirTemp("", "herald-chaos-")
	if err != nil {
		return err
	}
	fmt.Println("logs and Redis data in", dir)
	logf := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			panic(err)
		}
		return f
	}

	redisPort := freePort()
	redis := &proc{log: logf("redis"), args: []string{"redis-server", "--bind", "127.0.0.1",
		"--port", strconv.Itoa(redisPort), "--dir", dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--maxmemory-policy", "noeviction"}}
	if err := redis.start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	defer redis.kill()
	time.Sleep(300 * time.Millisecond)

	rc := &receiver{failRate: failRate, got: map[string]int{}}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rsrv := &http.Server{Handler: rc}
	go func() { _ = rsrv.Serve(rl) }()
	defer rsrv.Close()
	recvURL := "http://" + rl.Addr().String() + "/hook"

	heraldArgs := func(port int) []string {
		return []string{heraldBin, "serve", "--addr", "127.0.0.1:" + strconv.Itoa(port),
			"--redis-url", "redis://127.0.0.1:" + strconv.Itoa(redisPort) + "/0",
			"--allow-http", "--allow-private-targets", "--api-rate-limit", "0",
			"--retry-schedule", "200ms,500ms,1s,2s,3s,5s,5s,5s", "--rate-limit-per-minute", "60000",
			"--request-timeout", "5s", "--log-level", "warn"}
	}
	pa, pb := freePort(), freePort()
	hA := &proc{log: logf("herald-a"), args: heraldArgs(pa)}
	hB := &proc{log: logf("herald-b"), args: heraldArgs(pb)}
	for _, h := range []*proc{hA, hB} {
		if err := h.start(); err != nil {
			return err
		}
		defer h.kill()
	}
	bases := []string{"http://127.0.0.1:" + strconv.Itoa(pa), "http://127.0.0.1:" + strconv.Itoa(pb)}
	for _, b := range bases {
		if err := waitReady(b, 20*time.Second); err != nil {
			return err
		}
	}

	ctx := context.Background()
	if _, err := call(ctx, bases[0], "POST", "/channel", map[string]any{"channel_id": "chaos",
		"channel_tags": []string{"chaos"}, "channel_metadata": map[string]any{"endpoint_url": recvURL, "chat_type": "slack"}}); err != nil {
		return err
	}
	var subIDs []string
	for i := 0; i < nSubs; i++ {
		out, err := call(ctx, bases[i%2], "POST", "/subscribers", map[string]any{
			"url": recvURL + "?s=" + strconv.Itoa(i), "token": "t", "channel_tags": []string{"chaos"}})
		if err != nil {
			return err
		}
		subIDs = append(subIDs, out["id"].(string))
	}
	if err := waitVerified(ctx, bases[0], subIDs, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("%d subscribers verified; publishing %d events through both processes\n", nSubs, nEvents)

	start := time.Now()
	var eventIDs []string
	var retried503 int
	for i := 0; i < nEvents; i++ {
		switch i {
		case nEvents / 3:
			fmt.Println("kill -9 herald-a, start it again")
			hA.kill()
			if err := hA.start(); err != nil {
				return err
			}
		case 2 * nEvents / 3:
			fmt.Println("kill -9 redis-server, start it again from its AOF")
			redis.kill()
			time.Sleep(500 * time.Millisecond)
			if err := redis.start(); err != nil {
				return err
			}
		}
		body := map[string]any{"type": "update_notification", "update_type": "message_created",
			"message": map[string]any{"n": i}}
		for attempt := 0; ; attempt++ {
			out, err := call(ctx, bases[i%2], "POST", "/channel/chaos/notify", body)
			if err == nil {
				eventIDs = append(eventIDs, out["event_id"].(string))
				break
			}
			// Redis down, a process restarting: a publisher retries, as 503/Retry-After asks.
			retried503++
			if attempt > 200 {
				return fmt.Errorf("event %d never accepted: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("%d events accepted in %s (%d publisher retries while things were down)\n", len(eventIDs), time.Since(start).Round(time.Millisecond), retried503)

	expected := map[string]bool{}
	for _, e := range eventIDs {
		for _, s := range subIDs {
			expected[e+"."+s] = false
		}
	}
	deadline := time.Now().Add(timeout)
	var missing, dups int
	lastReport := time.Now()
	for {
		missing, dups = 0, 0
		rc.mu.Lock()
		for id := range expected {
			n := rc.got[id]
			if n == 0 {
				missing++
			} else if n > 1 {
				dups += n - 1
			}
		}
		rc.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Printf("  %s: %d of %d delivered\n", time.Since(start).Round(time.Second), len(expected)-missing, len(expected))
		}
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("deliveries expected %d, received %d distinct, %d duplicates (at-least-once), %d answered 500 and retried, %d lost; all in %s\n",
		len(expected), len(expected)-missing, dups, rc.failed.Load(), missing, time.Since(start).Round(time.Millisecond))
	if missing > 0 {
		return fmt.Errorf("%d deliveries lost (see the logs in %s)", missing, dir)
	}
	fmt.Println("PASS: nothing lost")
	if !keep {
		os.RemoveAll(dir)
	}
	return nil
}

func call(ctx context.Context, base, method, path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	var out map[string]any
	_ = json.Unmarshal(rb, &out)
	return out, nil
}

func waitReady(base string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", base, d)
}

func waitVerified(ctx context.Context, base string, ids []string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, id := range ids {
		for {
			out, err := call(ctx, base, "GET", "/subscribers/"+id, nil)
			if err == nil && out["status"] == "verified" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("subscriber %s not verified: %v %v", id, out["last_verification_error"], err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
