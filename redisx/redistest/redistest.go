// Package redistest gives tests a real Redis.
//
// Shared returns a client on a throwaway redis-server that this test binary starts on a free port
// (or on HERALD_TEST_REDIS_ADDR when that is set) together with a key prefix unique to the test, so
// tests in one package can run in parallel without seeing each other's keys. Start launches a
// private redis-server for tests that must stop, kill or restart Redis.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvAddr names the environment variable that points tests at an existing Redis instead of a
// throwaway one.
const EnvAddr = "HERALD_TEST_REDIS_ADDR"

var (
	sharedOnce sync.Once
	sharedAddr string
	sharedErr  error
)

// Shared returns a client on the package's shared test Redis and a fresh key prefix for this test.
// The client is closed and the prefix's keys deleted when the test ends.
func Shared(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	sharedOnce.Do(func() {
		if a := os.Getenv(EnvAddr); a != "" {
			sharedAddr = a
			return
		}
		// The server outlives any one test; the kernel kills it when the test binary exits
		// (see sysProcAttr).
		var s *Server
		s, sharedErr = startServer("")
		if sharedErr == nil {
			sharedAddr = s.Addr
		}
	})
	if sharedErr != nil {
		t.Fatalf("redistest: %v", sharedErr)
	}
	c := redis.NewClient(&redis.Options{Addr: sharedAddr})
	prefix := "t" + randHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		DeletePrefix(ctx, c, prefix)
		c.Close()
	})
	return c, prefix
}

// DeletePrefix removes every key that starts with prefix, using SCAN (never KEYS).
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
}

// Server is a redis-server process owned by one test.
type Server struct {
	Addr string
	Port int
	dir  string
	cmd  *exec.Cmd
	args []string
}

// Start launches a private redis-server on a free port for this test and stops it when the test
// ends. extra arguments are passed to redis-server (for example "--appendonly", "yes").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s, err := startServer(t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

func startServer(dir string, extra ...string) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not installed (scripts/test.sh installs it): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// A server without persistence writes nothing but its log; the shared one, which outlives the
	// tests that could clean up after it, keeps that log in one fixed folder instead of a new one
	// per test binary.
	d := dir
	if d == "" {
		d = filepath.Join(os.TempDir(), "herald-redistest")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, dir: d}
	s.args = append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", d,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(d, "redis-"+strconv.Itoa(port)+".log"),
	}, extra...)
	return s, s.start()
}

func (s *Server) start() error {
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis-"+strconv.Itoa(s.Port)+".log"))
			return fmt.Errorf("redis-server on %s did not answer: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new client on this server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server with SIGKILL and waits for it. Safe to call twice.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts a new, empty one on the same port (no persistence unless
// the extra arguments asked for it).
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
