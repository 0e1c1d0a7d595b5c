// Command signdemo has the real delivery engine sign requests and prints them as JSON, so that
// scripts/verify-signature.sh can check them with the official Standard Webhooks library.
//
// It runs the engine on the embedded store against a loopback receiver: one delivery signed with
// secret A, then, after the endpoint's secret is rotated to B, one signed with both A and B (the
// previous secret keeps signing for 24 h). Each case lists the secrets that must verify it and
// one that must not.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/webhooksig"
)

type signedCase struct {
	Name     string            `json:"name"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Verify   []string          `json:"verify"`    // secrets that must verify the request
	NoVerify []string          `json:"no_verify"` // secrets that must not
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "signdemo:", err)
		os.Exit(1)
	}
}

func secret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := redisx.Open(ctx, redisx.Options{}) // embedded store
	if err != nil {
		return err
	}
	defer conn.Close()

	got := make(chan *http.Request, 4)
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	e, err := notifier.New(conn.Client, notifier.Config{
		AllowHTTP: true, AllowPrivate: true, Version: "signdemo",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer e.Stop(context.Background())

	a, b, other := secret(), secret(), secret()
	deliver := func(name, sec string, body string, verify, noVerify []string) (signedCase, error) {
		if err := e.PutEndpoint(ctx, notifier.Endpoint{ID: "demo", URL: srv.URL + "/hook", Secret: sec}); err != nil {
			return signedCase{}, err
		}
		if _, err := e.Enqueue(ctx, notifier.Request{EndpointID: "demo", Body: []byte(body)}); err != nil {
			return signedCase{}, err
		}
		select {
		case r := <-got:
			c := signedCase{Name: name, Body: string(<-bodies), Headers: map[string]string{}, Verify: verify, NoVerify: noVerify}
			for _, h := range []string{webhooksig.HeaderID, webhooksig.HeaderTimestamp, webhooksig.HeaderSignature} {
				c.Headers[h] = r.Header.Get(h)
			}
			return c, nil
		case <-ctx.Done():
			return signedCase{}, fmt.Errorf("%s: no request received", name)
		}
	}
	var cases []signedCase
	c, err := deliver("one secret", a, `{"type":"update_notification","message":{"text":"héllo ✓"}}`, []string{a}, []string{b, other})
	if err != nil {
		return err
	}
	cases = append(cases, c)
	c, err = deliver("during rotation A->B", b, `{"type":"republish_request","channel":"c1"}`, []string{a, b}, []string{other})
	if err != nil {
		return err
	}
	cases = append(cases, c)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(cases)
}
