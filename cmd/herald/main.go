// Command herald is the webhook fan-out daemon. `herald serve` (the default) runs it; `herald sink`
// runs a local receiver for trying it out. `herald --help` lists everything.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// gcPercent is herald's GOGC unless the environment sets one. herald's live heap is small (a few
// MB: the queue lives in Redis) while it allocates per delivery, so the default 100 collects
// thousands of times a second under load; 400 cut the engine's CPU per delivery by about a tenth
// in scripts/bench.sh, for a heap a few MB larger.
const gcPercent = 400

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

const usage = `herald fans webhook notifications out to verified endpoints and relays messages
between backends, channel servers and a sessions server.

Usage:
  herald [serve] [flags]   run the daemon (the default command)
  herald sink [flags]      run a local receiver that prints what herald sends
  herald version           print the version (also: herald --version)

With no --redis-url herald runs as a try-out: an embedded in-memory store (data is lost on exit),
listening on loopback, with http and loopback targets allowed. Point it at Redis for real use:
  herald serve --redis-url redis://localhost:6379/0 --api-key "$(openssl rand -hex 24)"

Run 'herald serve --help' or 'herald sink --help' for the flags. Every flag can also be set in
the environment as HERALD_<NAME>, e.g. HERALD_REDIS_URL, HERALD_API_KEY (comma-separated).
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) > 0 && args[0] == "--version":
		cmd = "version"
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "sink":
		return runSink(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	slog.SetDefault(log)
	if cfg.TryOut() {
		log.Warn("TRY-OUT MODE: no --redis-url given, so herald runs on an embedded in-memory store. " +
			"ALL DATA IS LOST ON EXIT. http and loopback/private targets are allowed. Use --redis-url for real use.")
	}
	if len(cfg.APIKeys) == 0 {
		log.Warn("no --api-key configured: the API is open to anyone who can reach " + cfg.Addr)
	}
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("herald failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// versionLine is what `herald version` and `herald --version` print: the version set at build
// time, and for a build without one the commit it was built from, when Go recorded it.
func versionLine() string {
	line := "herald " + version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return line
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if version == "dev" && rev != "" {
		line += " (commit " + rev[:min(12, len(rev))]
		if modified == "true" {
			line += ", modified"
		}
		line += ")"
	}
	return line + " " + info.GoVersion
}
