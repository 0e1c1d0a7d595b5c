package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/sink"
	"github.com/heraldhq/herald/webhooksig"
)

// runSink runs `herald sink`: a local receiver that prints what herald sends, answers handshakes,
// plays seed 000's channel server on POST /incoming and can inject failures.
func runSink(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, addr, err := parseSink(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald sink: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "herald sink: listen on %s: %v\n", addr, err)
		return 1
	}
	fmt.Fprintf(stdout, "herald sink listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "  channel server:  POST http://%s/incoming (calls back response_url)\n", ln.Addr())
	fmt.Fprintf(stdout, "  anything else:   printed and answered 200; url_verification handshakes are answered\n")
	if cfg.Secret != "" {
		fmt.Fprintln(stdout, "  checking Standard Webhooks signatures with the given secret")
	}
	if cfg.FailRate > 0 {
		fmt.Fprintf(stdout, "  failing %.0f%% of requests with %d\n", cfg.FailRate*100, cfg.Status)
	}
	cfg.Out = stdout
	if err := sink.New(cfg).Run(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "herald sink: %v\n", err)
		return 1
	}
	return 0
}

func parseSink(args []string, stdout, stderr io.Writer) (sink.Config, string, error) {
	var cfg sink.Config
	fs := pflag.NewFlagSet("herald sink", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	addr := fs.String("addr", sink.DefaultAddr, "listen address (the seed's channel server address)")
	fs.StringVar(&cfg.Secret, "secret", "", "whsec_ secret to check each request's signature with (herald's --signing-secret)")
	fs.StringVar(&cfg.Token, "token", "", "verification token payloads must carry (403 otherwise, like the seed's Django view)")
	fs.DurationVar(&cfg.ReplyDelay, "reply-delay", 0, "wait this long before calling back response_url")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "share of requests (0..1) answered with --status instead")
	fs.IntVar(&cfg.Status, "status", http.StatusInternalServerError, "status of injected failures")
	fs.DurationVar(&cfg.Delay, "delay", 0, "sleep this long before answering each request")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: herald sink [flags]\n\nA local receiver for trying herald out: it prints every request, answers\nurl_verification handshakes, acts as seed 000's channel server on POST /incoming (it calls\nback response_url) and as a sessions server on any other path, and can inject failures.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		return cfg, "", fmt.Errorf("--fail-rate must be between 0 and 1, got %g", cfg.FailRate)
	}
	if cfg.Status < 100 || cfg.Status > 599 {
		return cfg, "", fmt.Errorf("--status must be an HTTP status (100-599), got %d", cfg.Status)
	}
	if cfg.Delay < 0 || cfg.ReplyDelay < 0 {
		return cfg, "", errors.New("--delay and --reply-delay must not be negative")
	}
	if err := webhooksig.CheckSecret(cfg.Secret); err != nil {
		return cfg, "", errors.New("--secret must be whsec_ followed by base64, as herald prints or is given with --signing-secret")
	}
	return cfg, *addr, nil
}
