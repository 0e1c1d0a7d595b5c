package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx"
)

// reply is a Redis error reply, as go-redis returns it.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

var _ redis.Error = reply("")

// timeout is a net.Error that timed out.
type timeout struct{}

func (timeout) Error() string   { return "i/o timeout" }
func (timeout) Timeout() bool   { return true }
func (timeout) Temporary() bool { return true }

func TestIsTransient(t *testing.T) {
	t.Parallel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"redis.Nil", redis.Nil, false},
		{"wrapped redis.Nil", fmt.Errorf("get: %w", redis.Nil), false},

		{"net.OpError", opErr, true},
		{"net timeout", timeout{}, true},
		{"deadline exceeded", context.DeadlineExceeded, true},
		{"wrapped deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), true},
		{"EOF", io.EOF, true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"ECONNREFUSED", syscall.ECONNREFUSED, true},
		{"ECONNRESET", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"EPIPE", syscall.EPIPE, true},
		{"pool closed", redis.ErrClosed, true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"pool exhausted", redis.ErrPoolExhausted, true},

		{"LOADING", reply("LOADING Redis is loading the dataset in memory"), true},
		{"CLUSTERDOWN", reply("CLUSTERDOWN The cluster is down"), true},
		{"TRYAGAIN", reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"MASTERDOWN", reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{"READONLY", reply("READONLY You can't write against a read only replica."), true},
		{"BUSY", reply("BUSY Redis is busy running a script."), true},
		{"NOREPLICAS", reply("NOREPLICAS Not enough good replicas to write."), true},
		{"OOM", reply("OOM command not allowed when used memory > 'maxmemory'."), true},
		{"max clients", reply("ERR max number of clients reached"), true},
		{"wrapped LOADING", fmt.Errorf("script: %w", reply("LOADING Redis is loading")), true},
		{"OOM from a script", reply("OOM command not allowed when used memory > 'maxmemory'. script: 0552, on @user_script:5."), true},
		{"EXECABORT", fmt.Errorf("read: %w", reply("EXECABORT Transaction discarded because of previous errors.")), true},

		{"ERR", reply("ERR unknown command 'FOO'"), false},
		{"ERR from a script", reply("ERR user_script:1: Script attempted to access a non local key"), false},
		{"WRONGTYPE", reply("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"NOSCRIPT", redis.ErrNoScript, false},
		{"NOGROUP", reply("NOGROUP No such key 'q' or consumer group 'g'"), false},
		{"BUSYGROUP is not BUSY", reply("BUSYGROUP Consumer Group name already exists"), false},
		{"unknown reply", reply("FROBNICATED"), false},
		{"unknown error", errors.New("something else"), false},
		{"canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redisx.IsTransient(tt.err); got != tt.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got := redisx.TransientReason(tt.err); (got != "") != tt.want {
				t.Errorf("TransientReason(%v) = %q, want a reason: %v", tt.err, got, tt.want)
			}
		})
	}
}

// TransientReason names the condition for an operator, and never repeats the error's text (which
// holds addresses).
func TestTransientReason(t *testing.T) {
	t.Parallel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 6379},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  error
		want string
	}{
		{reply("OOM command not allowed when used memory > 'maxmemory'."), "maxmemory"},
		{reply("EXECABORT Transaction discarded because of previous errors."), "transaction"},
		{reply("READONLY You can't write against a read only replica."), "read-only"},
		{reply("LOADING Redis is loading the dataset in memory"), "loading"},
		{reply("ERR max number of clients reached"), "maxclients"},
		{opErr, "unreachable"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "unreachable"},
		{timeout{}, "in time"},
		{context.DeadlineExceeded, "in time"},
		{fmt.Errorf("script: %w", io.EOF), "closed the connection"},
		{redis.ErrPoolTimeout, "busy"},
		{redis.ErrClosed, "shutting down"},
	}
	for _, tt := range tests {
		got := redisx.TransientReason(tt.err)
		if !strings.Contains(got, tt.want) || strings.Contains(got, "10.1.2.3") {
			t.Errorf("TransientReason(%v) = %q, want it to say %q and no address", tt.err, got, tt.want)
		}
	}
}
