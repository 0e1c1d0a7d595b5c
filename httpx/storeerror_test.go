package httpx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/httpx"
)

// reply is a Redis error reply, as go-redis returns it.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

// ErrorFor is the one rule from an error to its answer: an *Error as it is, a store that cannot
// serve now (or work that was stopped) 503 with Retry-After, anything else 500.
func TestErrorFor(t *testing.T) {
	t.Parallel()
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"an *Error", httpx.Invalid("x", "bad"), 400},
		{"a wrapped *Error", fmt.Errorf("create: %w", httpx.NotFound("no channel")), 404},
		{"a wrapped 503 *Error keeps its Retry-After", fmt.Errorf("x: %w", httpx.Unavailable(5, "backlog full")), 503},

		{"EOF mid-reply", fmt.Errorf("channels: create: %w", io.EOF), 503},
		{"unexpected EOF", io.ErrUnexpectedEOF, 503},
		{"connection reset", reset, 503},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, 503},
		{"deadline", context.DeadlineExceeded, 503},
		{"pool timeout", redis.ErrPoolTimeout, 503},
		{"client closed", redis.ErrClosed, 503},
		{"OOM", reply("OOM command not allowed when used memory > 'maxmemory'."), 503},
		{"OOM in a script", fmt.Errorf("record session: %w", reply("OOM command not allowed when used memory > 'maxmemory'. script: 32, on @user_script:5.")), 503},
		{"EXECABORT", fmt.Errorf("subscribers: read: %w", reply("EXECABORT Transaction discarded because of previous errors.")), 503},
		{"READONLY", reply("READONLY You can't write against a read only replica."), 503},
		{"LOADING", reply("LOADING Redis is loading the dataset in memory"), 503},

		{"NOSCRIPT", redis.ErrNoScript, 500},
		{"WRONGTYPE", reply("WRONGTYPE Operation against a key holding the wrong kind of value"), 500},
		{"redis.Nil leaked", redis.Nil, 500},
		{"a bug", errors.New("a bug"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := httpx.ErrorFor(tt.err)
			if e.Status != tt.want {
				t.Fatalf("ErrorFor(%v) = %d, want %d", tt.err, e.Status, tt.want)
			}
			if tt.want == 503 && (e.Code != httpx.CodeUnavailable || e.RetryAfter < 1) {
				t.Errorf("ErrorFor(%v) = %+v, want code unavailable with a Retry-After", tt.err, e)
			}
			if tt.want == 500 && (e.Code != httpx.CodeInternal || strings.Contains(e.Message, tt.err.Error())) {
				t.Errorf("ErrorFor(%v) = %+v, want a bare internal error", tt.err, e)
			}
			rec := httptest.NewRecorder()
			httpx.WriteError(rec, httptest.NewRequest("GET", "/x", nil), tt.err)
			if rec.Code != tt.want || (rec.Header().Get("Retry-After") != "") != (e.RetryAfter > 0) {
				t.Errorf("WriteError(%v) = %d, Retry-After %q", tt.err, rec.Code, rec.Header().Get("Retry-After"))
			}
			decodeErr(t, rec)
		})
	}
}

// WriteError logs to the request's logger: a store that cannot serve at warn level, a server
// fault at error level, an *Error not at all.
func TestWriteErrorLogLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := httpx.WithLogger(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, map[string]error{
			"/down": io.EOF, "/bug": errors.New("a bug"), "/bad": httpx.Invalid("x", "bad"),
		}[r.URL.Path])
	}))
	for path, want := range map[string]string{"/down": "level=WARN", "/bug": "level=ERROR", "/bad": ""} {
		buf.Reset()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
		if got := buf.String(); (want == "" && got != "") || !strings.Contains(got, want) {
			t.Errorf("%s logged %q, want %q", path, got, want)
		}
	}
}

// A client that half-closes its connection after its request still waits for the answer; Go's
// server cancels the request's context when it reads that EOF, Detach keeps the handler's alive.
func TestDetachSurvivesHalfClose(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(detachProbe())
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
	_ = c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	if !bytes.HasPrefix(out, []byte("HTTP/1.1 200")) || !bytes.HasSuffix(out, []byte("alive")) {
		t.Fatalf("half-closed request: %q, want 200 alive", out)
	}
}

// detachProbe waits until the server has cancelled the request's own context (it read the
// client's EOF), then answers 200 "alive" if the context Detach gave the handler is still live.
func detachProbe() http.Handler {
	inner := httpx.Detach(time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Value(serverCtx{}).(context.Context).Done():
		case <-time.After(10 * time.Second):
			http.Error(w, "the server never saw the client's EOF", http.StatusGatewayTimeout)
			return
		}
		if r.Context().Err() != nil {
			http.Error(w, "cancelled", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "alive")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), serverCtx{}, r.Context())))
	})
}

type serverCtx struct{}
