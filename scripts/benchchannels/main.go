// Command benchchannels measures the channel registry on a real Redis: create, get and tag-query
// throughput with p50/p99 latency, the same tag query at 10,000 and at 100,000 stored channels
// (its cost must follow the channels it returns, not the total), the tag query through the HTTP
// API on loopback, and, in the same run, the machine's own ceiling: raw GET and MGET round trips
// through the same client. scripts/bench-channels.sh starts a throwaway redis-server and runs it.
//
//	go run ./scripts/benchchannels -redis-url redis://127.0.0.1:6379/0 [-channels 100000] [-workers 8]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/redisx/redistest"
)

func main() { os.Exit(run()) }

func run() int {
	redisURL := flag.String("redis-url", "", "Redis to use (the benchmark writes under a fresh prefix and deletes it after)")
	total := flag.Int("channels", 100_000, "channels to store")
	workers := flag.Int("workers", 8, "concurrent clients")
	dur := flag.Duration("duration", 3*time.Second, "how long each read measurement runs")
	flag.Parse()
	if *redisURL == "" {
		fmt.Fprintln(os.Stderr, "benchchannels: -redis-url is required (scripts/bench-channels.sh starts one)")
		return 2
	}
	if *total < 10_000 || *total%100 != 0 {
		fmt.Fprintln(os.Stderr, "benchchannels: -channels must be a multiple of 100, at least 10000")
		return 2
	}
	if err := bench(*redisURL, *total, *workers, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "benchchannels:", err)
		return 1
	}
	return 0
}

// result is one measurement.
type result struct {
	ops  int
	took time.Duration
	lat  []time.Duration
}

func (r result) String() string {
	slices.Sort(r.lat)
	q := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
	}
	return fmt.Sprintf("%9.0f ops/s   p50 %7s   p99 %7s   max %7s", float64(r.ops)/r.took.Seconds(),
		q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond), q(1).Round(time.Microsecond)) // q(1) is the largest, 0 when no op completed
}

// measure runs op from workers goroutines, either n times in all (n > 0) or for d.
func measure(workers, n int, d time.Duration, op func(worker, i int) error) (result, error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []time.Duration
		next    atomic.Int64
		firstEr error
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for {
				i := int(next.Add(1) - 1)
				if n > 0 && i >= n || n == 0 && time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				if err := op(w, i); err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return result{ops: len(all), took: time.Since(start), lat: all}, firstEr
}

func channelID(i int) string { return fmt.Sprintf("bench-%06d", i) }

// newChannel gives channel i the tag g<i%1000> (100 channels each at 100,000), p<i%10> (10,000
// each) and, for every 100th of the first 10,000, "hot" (100 channels whatever the total).
func newChannel(i int) *channels.Channel {
	tags := []string{fmt.Sprintf("g%03d", i%1000), fmt.Sprintf("p%d", i%10)}
	if i < 10_000 && i%100 == 0 {
		tags = append(tags, "hot")
	}
	return &channels.Channel{
		ChannelID:          channelID(i),
		ChannelName:        fmt.Sprintf("Channel %d", i),
		ChannelDescription: "Sends messages to a chat platform",
		ChannelTags:        tags,
		ChannelMetadata: map[string]any{
			"endpoint_url": fmt.Sprintf("https://chat-%d.example.com/incoming", i%50),
			"chat_type":    []string{"slack", "teams", "discord"}[i%3],
		},
	}
}

func bench(redisURL string, total, workers int, dur time.Duration) error {
	ctx := context.Background()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("bad -redis-url")
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	version := "?"
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			version = v
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "bench" + hex.EncodeToString(b)
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		redistest.DeletePrefix(dctx, rdb, prefix)
	}()
	store := channels.NewStore(rdb, prefix, channels.WithPolicy(egress.Policy{}))
	fmt.Printf("channel registry benchmark: redis %s at %s, GOMAXPROCS=%d, %d workers, %d channels\n\n",
		version, opt.Addr, runtime.GOMAXPROCS(0), workers, total)
	row := func(name string, r result) { fmt.Printf("%-50s %s\n", name, r) }
	// both measures a read with one client (latency) and with workers clients (throughput).
	both := func(name string, op func(worker, i int) error) (one result, err error) {
		if one, err = measure(1, 0, dur, op); err != nil {
			return one, err
		}
		row(name+", 1 client", one)
		many, err := measure(workers, 0, dur, op)
		if err != nil {
			return one, err
		}
		row(fmt.Sprintf("%s, %d clients", name, workers), many)
		return one, nil
	}

	// The ceiling: what one round trip to this Redis costs through this client.
	for i := range 100 {
		if err := rdb.Set(ctx, fmt.Sprintf("%s:raw:%d", prefix, i), strings.Repeat("x", 400), 0).Err(); err != nil {
			return err
		}
	}
	rawKeys := make([]string, 100)
	for i := range rawKeys {
		rawKeys[i] = fmt.Sprintf("%s:raw:%d", prefix, i)
	}
	if _, err := both("ceiling: redis GET, 400 B", func(_, i int) error { return rdb.Get(ctx, rawKeys[i%100]).Err() }); err != nil {
		return err
	}
	if _, err := both("ceiling: redis MGET 100 x 400 B", func(_, _ int) error { return rdb.MGet(ctx, rawKeys...).Err() }); err != nil {
		return err
	}
	fmt.Println()

	create := func(from, to int) (result, error) {
		return measure(workers, to-from, 0, func(_, i int) error {
			_, err := store.Create(ctx, newChannel(from+i))
			return err
		})
	}
	hot, _ := channels.ParseFilter([]byte(`{"channel_tags": {"$in": ["hot"]}}`))
	queryHot := func(name string) (result, error) {
		return both(name, func(_, _ int) error {
			got, _, err := store.Query(ctx, hot, 100, "")
			if err == nil && len(got) != 100 {
				err = fmt.Errorf("hot query returned %d channels, want 100", len(got))
			}
			return err
		})
	}

	r, err := create(0, 10_000)
	if err != nil {
		return err
	}
	row("create (0 to 10,000 stored)", r)
	hot10k, err := queryHot(`query "hot" tag: 100 of 10,000`)
	if err != nil {
		return err
	}

	r, err = create(10_000, total)
	if err != nil {
		return err
	}
	row(fmt.Sprintf("create (10,000 to %d stored)", total), r)
	hot100k, err := queryHot(fmt.Sprintf(`query "hot" tag: 100 of %d`, total))
	if err != nil {
		return err
	}
	fmt.Println()

	if _, err := both("get one channel", func(_, i int) error {
		_, err := store.Get(ctx, channelID((i*7919)%total))
		return err
	}); err != nil {
		return err
	}
	per := total / 1000
	if _, err := both(fmt.Sprintf(`query {"$in": ["g<n>"]}: %d of %d`, min(per, 100), total), func(_, i int) error {
		f, _ := channels.ParseFilter(fmt.Appendf(nil, `{"channel_tags": {"$in": ["g%03d"]}}`, i%1000))
		got, _, err := store.Query(ctx, f, 100, "")
		if err == nil && len(got) != min(per, 100) {
			err = fmt.Errorf("g-tag query returned %d channels", len(got))
		}
		return err
	}); err != nil {
		return err
	}
	if _, err := both(`query 2 tags + metadata: first 100 of 200`, func(_, i int) error {
		f, _ := channels.ParseFilter(fmt.Appendf(nil, `{"channel_tags": {"$in": ["g%03d", "g%03d"]}, "channel_metadata.chat_type": {"$exists": true}}`, i%1000, (i+1)%1000))
		got, _, err := store.Query(ctx, f, 100, "")
		if err == nil && len(got) != 100 {
			err = fmt.Errorf("two-tag query returned %d channels", len(got))
		}
		return err
	}); err != nil {
		return err
	}
	if _, err := both(`query $and p<n> (10%) with g<n> (0.1%)`, func(_, i int) error {
		f, _ := channels.ParseFilter(fmt.Appendf(nil, `{"$and": [{"channel_tags": "p%d"}, {"channel_tags": "g%03d"}]}`, i%10, (i%100)*10+i%10))
		got, _, err := store.Query(ctx, f, 100, "")
		if err == nil && len(got) != min(per, 100) {
			err = fmt.Errorf("$and query returned %d channels", len(got))
		}
		return err
	}); err != nil {
		return err
	}
	scan, _ := channels.ParseFilter([]byte(`{"channel_name": "no such name"}`))
	if _, err := both("unindexed page (budget 5,000 examined, 0 hits)", func(_, _ int) error {
		_, next, err := store.Query(ctx, scan, 100, "")
		if err == nil && next == "" {
			err = fmt.Errorf("the scan page did not stop at its budget")
		}
		return err
	}); err != nil {
		return err
	}

	// The same tag query through the HTTP API on loopback.
	router := httpx.NewRouter()
	router.Use(httpx.Recover)
	channels.NewHandler(store, httpx.DefaultMaxBody).Routes(router)
	srv := httptest.NewServer(router)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	if _, err := both(fmt.Sprintf(`HTTP POST /channels g<n>: %d of %d`, min(per, 100), total), func(_, i int) error {
		body := fmt.Sprintf(`{"channel_tags": {"$in": ["g%03d"]}}`, i%1000)
		resp, err := client.Post(srv.URL+"/channels", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("POST /channels: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return err
	}

	fmt.Printf("\nsame hot-tag query, 1 client, 10,000 vs %d stored: p99 %s vs %s, p50 %s vs %s\n", total,
		pct(hot10k, 0.99), pct(hot100k, 0.99), pct(hot10k, 0.5), pct(hot100k, 0.5))
	return nil
}

func pct(r result, p float64) time.Duration {
	l := slices.Clone(r.lat)
	slices.Sort(l)
	return l[min(len(l)-1, int(p*float64(len(l))))].Round(time.Microsecond)
}
