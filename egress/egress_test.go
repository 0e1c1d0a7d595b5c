package egress_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/egress"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := egress.Policy{}
	open := egress.Policy{AllowHTTP: true, AllowPrivate: true}
	for _, c := range []struct {
		url     string
		p       egress.Policy
		wantErr string
	}{
		{"https://hooks.example.com/x", strict, ""},
		{"http://hooks.example.com/x", strict, "uses http"},
		{"http://hooks.example.com/x", egress.Policy{AllowHTTP: true}, ""},
		{"ftp://example.com", open, "absolute http or https"},
		{"/relative", open, "absolute http or https"},
		{"https://", open, "no host"},
		{"https://127.0.0.1/x", strict, "loopback"},
		{"https://localhost:5001/x", strict, "loopback"},
		{"https://10.1.2.3/x", strict, "private"},
		{"https://192.168.0.1/x", strict, "private"},
		{"https://169.254.169.254/latest", strict, "link-local"},
		{"https://[::1]/x", strict, "loopback"},
		{"https://[fd00::1]/x", strict, "private"},
		{"https://0.0.0.0/x", strict, "unspecified"},
		{"https://100.64.1.1/x", strict, "carrier-grade"},
		{"https://[::ffff:127.0.0.1]/x", strict, "loopback"},
		{"http://127.0.0.1:5001/incoming", open, ""},
		{"%zz", open, "not a valid URL"},
	} {
		_, err := c.p.CheckURL(c.url)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("CheckURL(%q): %v", c.url, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || !egress.IsRefused(err) {
			t.Errorf("CheckURL(%q) = %v, want an ErrRefused mentioning %q", c.url, err, c.wantErr)
		}
	}
}

// A name that resolves to loopback passes CheckURL (only literals are checked there) but the dialer
// refuses it: this is what stops DNS rebinding.
func TestDialerRefusesPrivateAfterResolution(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	target := "http://localhost:" + port + "/"

	c := egress.NewClient(egress.ClientOptions{Policy: egress.Policy{AllowHTTP: true}, Timeout: 2 * time.Second})
	req, _ := http.NewRequestWithContext(context.Background(), "POST", target, nil)
	_, err := c.Do(req)
	if err == nil || !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("dial to loopback: %v, want ErrRefused", err)
	}

	allowed := egress.NewClient(egress.ClientOptions{Policy: egress.Policy{AllowHTTP: true, AllowPrivate: true}, Timeout: 2 * time.Second})
	req, _ = http.NewRequestWithContext(context.Background(), "POST", srv.URL, nil)
	resp, err := allowed.Do(req)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	resp.Body.Close()
}

func TestRedirectsNotFollowed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
	}))
	defer srv.Close()
	c := egress.NewClient(egress.ClientOptions{Policy: egress.Policy{AllowHTTP: true, AllowPrivate: true}})
	resp, err := c.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d: the redirect was followed", resp.StatusCode)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	got := egress.Redact("https://user:pw@example.com/hook?token=s3cret#frag")
	if strings.Contains(got, "pw") || strings.Contains(got, "s3cret") || strings.Contains(got, "frag") || got != "https://example.com/hook" {
		t.Fatalf("Redact = %q", got)
	}
}
