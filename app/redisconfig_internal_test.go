package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
)

// lockedBuffer is a log destination tests read while the checks write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newTestCheck(t *testing.T, srv *redistest.Server, every time.Duration) (*redisCheck, *lockedBuffer) {
	t.Helper()
	var buf lockedBuffer
	c := newRedisCheck(srv.Client(t), slog.New(slog.NewTextHandler(&buf, nil)), prometheus.NewRegistry(), every)
	return c, &buf
}

// The checks run again while herald runs: a Redis whose settings are put right (or that comes back
// from a failover with other ones) is noticed, and each finding is logged once, not every check.
func TestRedisCheckFollowsChanges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--maxmemory-policy", "volatile-lru")
	c, log := newTestCheck(t, srv, 10*time.Millisecond)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if w := c.Warnings(); len(w) != 2 {
		t.Fatalf("warnings after Start: %q, want eviction and persistence", w)
	}
	ctx := context.Background()
	rdb := srv.Client(t)
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the eviction warning to go", func() bool { return len(c.Warnings()) == 1 })
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "every warning to go", func() bool { return len(c.Warnings()) == 0 })
	if n := log.count("maxmemory-policy is volatile-lru"); n != 1 {
		t.Errorf("the eviction warning was logged %d times, want once", n)
	}
	if n := log.count("redis settings are safe"); n != 1 {
		t.Errorf("the all-clear was logged %d times, want once", n)
	}
}

// A Redis that refuses CONFIG is said once however many checks run; a Redis that cannot answer
// keeps the last findings.
func TestRedisCheckRefusedOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--rename-command", "CONFIG", "CONFIG-RENAMED")
	c, log := newTestCheck(t, srv, time.Hour)
	for range 3 {
		c.check(context.Background())
	}
	if n := log.count("cannot check the Redis settings"); n != 1 {
		t.Errorf("logged %d times that CONFIG is refused, want once", n)
	}
	srv.Kill()
	c.check(context.Background())
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "refused") {
		t.Errorf("warnings with Redis down: %q, want the last findings kept", w)
	}
}

func TestUnsafeSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		policy, aof, save string
		want              map[string]string // setting -> what its warning says
	}{
		{"noeviction", "yes", "", map[string]string{}},
		{"noeviction", "yes", "3600 1", map[string]string{}},
		{"allkeys-lru", "yes", "", map[string]string{settingEviction: "allkeys-lru"}},
		{"noeviction", "no", "3600 1 300 100", map[string]string{settingPersistence: "snapshots only"}},
		{"noeviction", "no", "", map[string]string{settingPersistence: "no persistence"}},
		{"volatile-ttl", "no", " ", map[string]string{settingEviction: "volatile-ttl", settingPersistence: "no persistence"}},
	} {
		got := unsafeSettings(map[string]string{settingEviction: c.policy, settingPersistence: c.aof, "save": c.save})
		if len(got) != len(c.want) {
			t.Errorf("%s/%s/%q: %q, want %d warnings", c.policy, c.aof, c.save, got, len(c.want))
		}
		for s, w := range c.want {
			if !strings.Contains(got[s], w) {
				t.Errorf("%s/%s/%q: %s = %q, want it to say %q", c.policy, c.aof, c.save, s, got[s], w)
			}
		}
	}
}
