package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// The profiling listener (--pprof-addr) serves net/http/pprof, and nothing else, on an address of
// its own: never on the API listener, and never behind its API keys, so bind it to loopback or a
// private interface. New opens it, Serve serves it and closes it when it shuts down, and Close
// closes it when Serve never ran.

// listenPprof opens the profiling listener when --pprof-addr is set.
func (a *App) listenPprof() error {
	if a.Cfg.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.Cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: listen on %s: %w", a.Cfg.PprofAddr, err)
	}
	a.pprofLn, a.pprofAddr = ln, ln.Addr()
	return nil
}

// PprofAddr is the address the profiling listener is bound to, or nil when --pprof-addr is unset.
func (a *App) PprofAddr() net.Addr { return a.pprofAddr }

// servePprof serves the profiling listener, if any, until the returned stop is called; stop
// closes it (a profile being taken is cut short) and waits for its goroutine.
func (a *App) servePprof() (stop func()) {
	ln := a.pprofLn
	if ln == nil {
		return func() {}
	}
	a.pprofLn = nil // the server owns it now
	srv := &http.Server{
		Handler:           pprofHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: /debug/pprof/profile and /trace write for ?seconds= (30 by default).
		ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.Log.Warn("the profiling listener failed", "err", err)
		}
	}()
	a.Log.Info("profiling (pprof) is listening", "addr", ln.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}
}

// pprofHandler serves the runtime profiles under /debug/pprof/, as net/http/pprof registers them
// on http.DefaultServeMux (which herald does not serve).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
