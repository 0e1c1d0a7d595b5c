package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrStarted is returned, wrapped with the component's name, by a second Start.
var ErrStarted = errors.New("already started")

// ErrStopped is returned, wrapped with the component's name, by a Start after Stop.
var ErrStopped = errors.New("stopped; build a new one")

// State tracks a component's life: new → started → stopped, each step once. Zero value ready.
type State struct {
	mu      sync.Mutex
	started bool
	stopped bool
}

// Start runs start (under the state's lock) and marks the component started if it returns nil.
// A second Start returns ErrStarted, a Start after Stop ErrStopped, wrapped with name. The error
// of start is returned as it is, and the component stays new.
func (s *State) Start(name string, start func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return fmt.Errorf("%s: %w", name, ErrStopped)
	case s.started:
		return fmt.Errorf("%s: %w", name, ErrStarted)
	}
	if err := start(); err != nil {
		return err
	}
	s.started = true
	return nil
}

// Stop marks the component stopped. first is true for the first call only; started tells whether
// a Start had succeeded. A Stop that runs while Start's function does waits for it to return.
func (s *State) Stop() (first, started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first = !s.stopped
	s.stopped = true
	return first, s.started
}

// Service is a background service's life in one piece: its State, the goroutines it owns, the
// Stopping signal they watch, and the Context they work in, which outlives Start's ctx and which
// Stop cancels only when its own deadline passes. Build one with NewService.
type Service struct {
	state      State
	wg         sync.WaitGroup
	name, what string // "events", "workers": for Stop's error
	stopping   chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
}

// NewService returns the lifecycle of service name whose goroutines are what ("workers").
func NewService(name, what string) *Service {
	return &Service{name: name, what: what, stopping: make(chan struct{})}
}

// Start runs start once (see State.Start) with the goroutines' context; start launches them
// with Go.
func (s *Service) Start(ctx context.Context, start func(ctx context.Context) error) error {
	return s.state.Start(s.name, func() error {
		s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
		if err := start(s.ctx); err != nil {
			s.cancel()
			return err
		}
		return nil
	})
}

// Go runs f in a goroutine the service owns: Stop waits for it. Call it from Start's function or
// from one of the service's goroutines.
func (s *Service) Go(f func()) { s.wg.Go(f) }

// Stopping is closed when Stop begins: the goroutines take no new work.
func (s *Service) Stopping() <-chan struct{} { return s.stopping }

// Context is the goroutines' context (nil before Start).
func (s *Service) Context() context.Context { return s.ctx }

// Stop closes Stopping and waits for the goroutines until ctx ends; then it cancels their
// context, waits for them to return and reports ctx's error. Only the first call does anything:
// later ones, and a Stop before Start, return nil.
func (s *Service) Stop(ctx context.Context) error {
	first, started := s.state.Stop()
	if !first || !started {
		return nil
	}
	close(s.stopping)
	defer s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	<-done
	return fmt.Errorf("%s: %s cancelled at the stop deadline: %w", s.name, s.what, ctx.Err())
}
