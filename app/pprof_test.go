package app_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/app"
)

// get returns the status and body of a GET, or fails the test.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// --pprof-addr serves the profiles on a listener of its own, which shuts down with the daemon;
// the API listener never serves them.
func TestPprofListener(t *testing.T) {
	t.Parallel()
	base, a, stop := serve(t, func() app.Config {
		cfg := testConfig(t)
		cfg.PprofAddr = "127.0.0.1:0"
		return cfg
	}())
	if a.PprofAddr() == nil {
		t.Fatal("PprofAddr() = nil with --pprof-addr set")
	}
	pprofBase := "http://" + a.PprofAddr().String()
	if code, body := get(t, pprofBase+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ on the profiling listener: %d %.200q", code, body)
	}
	if code, _ := get(t, pprofBase+"/healthz"); code != 404 {
		t.Errorf("the profiling listener serves the API: /healthz %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code == 200 {
		t.Error("the API listener serves /debug/pprof/")
	}
	stop()
	if c, err := net.DialTimeout("tcp", a.PprofAddr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the profiling listener still accepts after shutdown")
	}
}

func TestPprofOffByDefault(t *testing.T) {
	t.Parallel()
	base, a := start(t, nil)
	if a.PprofAddr() != nil {
		t.Fatalf("PprofAddr() = %v with --pprof-addr unset", a.PprofAddr())
	}
	if code, _ := get(t, base+"/debug/pprof/"); code == 200 {
		t.Error("the API listener serves /debug/pprof/")
	}
}
