package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/notifier"
)

func TestFlagsEnvAndPrecedence(t *testing.T) {
	t.Setenv("HERALD_ADDR", "127.0.0.1:9000")
	t.Setenv("HERALD_API_KEY", "aaaaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbb")
	t.Setenv("HERALD_RETRY_SCHEDULE", "1s,2s")
	t.Setenv("HERALD_REDIS_URL", "redis://127.0.0.1:6379/0")
	t.Setenv("SESSIONS_SERVER", "http://sessions.example/in")
	t.Setenv("HERALD_QUEUE_SHARDS", "6")
	cfg, err := parseServe([]string{"--addr", "127.0.0.1:9100"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9100" {
		t.Errorf("flag must win over env: %q", cfg.Addr)
	}
	if len(cfg.APIKeys) != 2 {
		t.Errorf("APIKeys from env: %v", cfg.APIKeys)
	}
	if len(cfg.RetrySchedule) != 2 || cfg.RetrySchedule[1] != 2*time.Second {
		t.Errorf("RetrySchedule from env: %v", cfg.RetrySchedule)
	}
	if cfg.QueueShards != 6 {
		t.Errorf("QueueShards from env: %d", cfg.QueueShards)
	}
	if cfg.SessionsURL != "http://sessions.example/in" {
		t.Errorf("SESSIONS_SERVER not read: %q", cfg.SessionsURL)
	}
	if cfg.AllowHTTP || cfg.AllowPrivate {
		t.Errorf("with a Redis URL the strict target rules hold")
	}
	if cfg.PprofAddr != "" {
		t.Errorf("--pprof-addr must default to off, got %q", cfg.PprofAddr)
	}
}

func TestFlagsPprofAddr(t *testing.T) {
	t.Setenv("HERALD_PPROF_ADDR", "127.0.0.1:6060")
	cfg, err := parseServe(nil, io.Discard, io.Discard)
	if err != nil || cfg.PprofAddr != "127.0.0.1:6060" {
		t.Fatalf("HERALD_PPROF_ADDR: %q %v", cfg.PprofAddr, err)
	}
	cfg, err = parseServe([]string{"--pprof-addr", "127.0.0.1:6061"}, io.Discard, io.Discard)
	if err != nil || cfg.PprofAddr != "127.0.0.1:6061" {
		t.Fatalf("--pprof-addr: %q %v", cfg.PprofAddr, err)
	}
}

// The flags' defaults are the components': a default is written once.
func TestFlagsDefaultsFromEngine(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := notifier.DefaultConfig()
	if cfg.Workers != n.Workers || cfg.QueueShards != n.QueueShards || cfg.RequestTimeout != n.RequestTimeout || !slices.Equal(cfg.RetrySchedule, n.RetrySchedule) {
		t.Fatalf("flag defaults %+v differ from the engine's", cfg)
	}
}

func TestFlagsTryOutRelaxesTargets(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.TryOut() || !cfg.AllowHTTP || !cfg.AllowPrivate {
		t.Fatalf("try-out: %+v", cfg)
	}
	cfg, err = parseServe([]string{"--allow-private-targets=false"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AllowPrivate {
		t.Fatal("an explicit --allow-private-targets=false must hold in the try-out")
	}
}

func TestFlagsBadEnvDoesNotEchoValue(t *testing.T) {
	t.Setenv("HERALD_MAX_IN_FLIGHT", "s3cret-not-a-number")
	_, err := parseServe(nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HERALD_MAX_IN_FLIGHT") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunHelpAndUnknown(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "herald sink") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"serve", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--redis-url") {
		t.Fatalf("serve --help: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
	errb.Reset()
	if code := run([]string{"serve", "--retry-schedule", "soon"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "retry-schedule") {
		t.Fatalf("bad flag: %d %q", code, errb.String())
	}
}

// `herald --version` and `herald version` print the same line, naming the version.
func TestRunVersion(t *testing.T) {
	var a, b, errb bytes.Buffer
	if code := run([]string{"--version"}, &a, &errb); code != 0 || !strings.HasPrefix(a.String(), "herald "+version) {
		t.Fatalf("--version: %d %q %q", code, a.String(), errb.String())
	}
	if code := run([]string{"version"}, &b, &errb); code != 0 || b.String() != a.String() {
		t.Fatalf("version: %d %q, want %q", code, b.String(), a.String())
	}
}
