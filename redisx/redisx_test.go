package redisx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)

	c, err := redisx.Open(ctx, redisx.Options{URL: "redis://" + srv.Addr + "/0"})
	if err != nil {
		t.Fatalf("Open URL: %v", err)
	}
	if c.Embedded || c.Addr != srv.Addr {
		t.Fatalf("Conn = %+v", c)
	}
	c.Close()

	e, err := redisx.Open(ctx, redisx.Options{})
	if err != nil {
		t.Fatalf("Open embedded: %v", err)
	}
	if !e.Embedded {
		t.Fatal("not embedded")
	}
	if err := e.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.Close()
}

func TestOpenErrorsKeepSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := redisx.Open(ctx, redisx.Options{URL: "redis://u:hunter2@host:notaport/0"})
	if err == nil || !errors.Is(err, redisx.ErrConfig) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL: %v", err)
	}
	_, err = redisx.Open(ctx, redisx.Options{URL: "redis://x", Addrs: []string{"a:1"}})
	if !errors.Is(err, redisx.ErrConfig) {
		t.Fatalf("both: %v", err)
	}
	// Nothing listens on port 1.
	_, err = redisx.Open(ctx, redisx.Options{URL: "redis://u:hunter2@127.0.0.1:1/0"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("unreachable: %v", err)
	}
}
