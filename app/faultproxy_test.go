package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
)

// faultProxy sits between herald and a test's redis-server so that the test chooses the moment
// Redis fails: Hang makes it accept connections and pass nothing on (a Redis stuck in a long
// command or a stopped process); Drop ends every connection at once, with a reset or a plain
// close (the EOF herald sees when Redis dies mid-reply), and ends every later one the same way as
// soon as the client sends its first command, so that retries and reconnects meet the same fault.
type faultProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu      sync.Mutex
	hung    bool
	resume  chan struct{} // closed when Hang ends (or at Drop)
	dropped bool          // connections are ended at their first command
	reset   bool          // ... with a TCP reset rather than a plain close
	conns   []net.Conn    // both sides of every open pair
	held    []byte        // what clients sent while the proxy was hung
	heldSig chan struct{}
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Addr: ln.Addr().String(), target: target, ln: ln, resume: make(chan struct{}), heldSig: make(chan struct{}, 1)}
	close(p.resume)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Drop(false)
	})
	return p
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		dropped, reset := p.dropped, p.reset
		p.mu.Unlock()
		if dropped {
			go endAtFirstRead(c, reset)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c, true)
		go p.pipe(c, up, false)
	}
}

// pipe copies src to dst; while the proxy is hung it holds what it read (recording what clients
// sent) until Hang ends or the connection is dropped.
func (p *faultProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			resume, hung := p.resume, p.hung
			if hung && fromClient {
				p.held = append(p.held, buf[:n]...)
				select {
				case p.heldSig <- struct{}{}:
				default:
				}
			}
			p.mu.Unlock()
			<-resume
			p.mu.Lock()
			dropped := p.dropped // what was held when Redis died never reaches it
			p.mu.Unlock()
			if dropped {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Hang stops passing data on, in both directions, until Resume.
func (p *faultProxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hung {
		p.hung, p.resume, p.held = true, make(chan struct{}), nil
	}
}

// Resume passes data on again, including what was held.
func (p *faultProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung {
		p.hung = false
		close(p.resume)
	}
}

// Holding reports whether a client sent something containing b while the proxy was hung.
func (p *faultProxy) Holding(b string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.held, []byte(b))
}

// Drop ends every connection (with a TCP reset when reset is set, else a plain close), and every
// later connection at its first command.
func (p *faultProxy) Drop(reset bool) {
	p.mu.Lock()
	p.dropped, p.reset = true, reset
	conns := p.conns
	p.conns = nil
	if p.hung {
		p.hung = false
		close(p.resume)
	}
	p.mu.Unlock()
	for _, c := range conns {
		end(c, reset)
	}
}

func end(c net.Conn, reset bool) {
	if tc, ok := c.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func endAtFirstRead(c net.Conn, reset bool) {
	_, _ = c.Read(make([]byte, 1))
	end(c, reset)
}

// logRecorder is a slog.Handler that keeps every record at or above Warn, for tests that check
// what herald logged.
type logRecorder struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecorder() logRecorder { return logRecorder{mu: new(sync.Mutex), recs: new([]slog.Record)} }

func (l logRecorder) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.recs = append(*l.recs, r.Clone())
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

// messages returns the messages of the records at level lv or above.
func (l logRecorder) messages(lv slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if r.Level >= lv {
			out = append(out, r.Message)
		}
	}
	return out
}
