package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
)

var errBoom = errors.New("boom")

// step is one call on a State: a Start whose function returns err, or a Stop.
type step struct {
	stop bool
	err  error // what the start function returns

	wantErr     error // Start: the error wanted (errors.Is), nil for success
	wantRan     bool  // Start: whether the start function must run
	wantFirst   bool  // Stop
	wantStarted bool  // Stop
}

func start(err error, wantErr error, ran bool) step {
	return step{err: err, wantErr: wantErr, wantRan: ran}
}

func stop(first, started bool) step {
	return step{stop: true, wantFirst: first, wantStarted: started}
}

func TestState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []step
	}{
		{"start then stop", []step{start(nil, nil, true), stop(true, true)}},
		{"second start", []step{start(nil, nil, true), start(nil, lifecycle.ErrStarted, false)}},
		{"start after stop", []step{start(nil, nil, true), stop(true, true), start(nil, lifecycle.ErrStopped, false)}},
		{"stop twice", []step{start(nil, nil, true), stop(true, true), stop(false, true)}},
		{"stop never started", []step{stop(true, false), stop(false, false)}},
		{"start after stop, never started", []step{stop(true, false), start(nil, lifecycle.ErrStopped, false)}},
		{"failed start stays new", []step{start(errBoom, errBoom, true), start(nil, nil, true), stop(true, true)}},
		{"stop after failed start", []step{start(errBoom, errBoom, true), stop(true, false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s lifecycle.State
			for i, st := range tt.steps {
				if st.stop {
					first, started := s.Stop()
					if first != st.wantFirst || started != st.wantStarted {
						t.Fatalf("step %d: Stop() = %v, %v; want %v, %v", i, first, started, st.wantFirst, st.wantStarted)
					}
					continue
				}
				ran := false
				err := s.Start("thing", func() error { ran = true; return st.err })
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
					t.Fatalf("step %d: Start() = %v, want %v", i, err, st.wantErr)
				}
				if ran != st.wantRan {
					t.Fatalf("step %d: start ran = %v, want %v", i, ran, st.wantRan)
				}
				if st.wantErr != nil && st.wantErr != errBoom && !strings.HasPrefix(err.Error(), "thing: ") {
					t.Errorf("step %d: %q does not name the component", i, err)
				}
			}
		})
	}
}

// A Stop racing a Start waits for the start function, so it sees started = true or prevents it.
func TestStateStopWaitsForStart(t *testing.T) {
	t.Parallel()
	var s lifecycle.State
	entered, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.Start("thing", func() error { close(entered); <-release; return nil })
	}()
	<-entered
	stopped := make(chan bool, 1)
	go func() { _, started := s.Stop(); stopped <- started }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while Start's function ran")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !<-stopped {
		t.Fatal("Stop after a successful Start must report started")
	}
}

// A Service's goroutines see Stopping when Stop begins; those that return in time end Stop with
// nil, and those that do not are cancelled at Stop's deadline, which Stop reports.
func TestServiceStopsItsGoroutines(t *testing.T) {
	t.Run("in time", func(t *testing.T) {
		s := lifecycle.NewService("svc", "workers")
		ctxErr := make(chan error, 2)
		if err := s.Start(context.Background(), func(ctx context.Context) error {
			s.Go(func() {
				<-s.Stopping()
				// A goroutine of the service may start another, which Stop waits for too.
				s.Go(func() { ctxErr <- ctx.Err() })
				ctxErr <- ctx.Err()
			})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if len(ctxErr) != 2 || <-ctxErr != nil || <-ctxErr != nil {
			t.Error("the goroutines' context was cancelled before they returned, or Stop did not wait for both")
		}
		if s.Context().Err() == nil {
			t.Error("the goroutines' context outlives Stop")
		}
	})
	t.Run("past the deadline", func(t *testing.T) {
		s := lifecycle.NewService("svc", "workers")
		startCtx, cancelStart := context.WithCancel(context.Background())
		if err := s.Start(startCtx, func(ctx context.Context) error {
			s.Go(func() { <-ctx.Done() }) // ignores Stopping
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		cancelStart() // the goroutines' context outlives Start's
		if s.Context().Err() != nil {
			t.Fatal("the goroutines' context ended with Start's")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Stop(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "svc: workers cancelled") {
			t.Errorf("Stop past its deadline: %v", err)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
	t.Run("a failed start leaves it new", func(t *testing.T) {
		s := lifecycle.NewService("svc", "workers")
		boom := errors.New("boom")
		if err := s.Start(context.Background(), func(context.Context) error { return boom }); err != boom {
			t.Fatalf("Start: %v", err)
		}
		if err := s.Start(context.Background(), func(context.Context) error { return nil }); err != nil {
			t.Errorf("Start after a failed one: %v", err)
		}
		_ = s.Stop(context.Background())
	})
}
