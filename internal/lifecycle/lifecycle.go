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

// Group owns goroutines until they return. Zero value ready.
//
// Go may be called from one of the group's own goroutines at any time, and from elsewhere until
// Wait or Drain is called.
type Group struct {
	wg sync.WaitGroup
}

// Go runs f in a new goroutine owned by the group.
func (g *Group) Go(f func()) { g.wg.Go(f) }

// Wait returns once every goroutine of the group has returned.
func (g *Group) Wait() { g.wg.Wait() }

// Drain waits for the group's goroutines until ctx ends. Then it calls cancel, which must make
// them return promptly, waits for them, and returns ctx.Err(). It returns nil when they all
// returned in time; cancel is not called then.
func (g *Group) Drain(ctx context.Context, cancel func()) error {
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-done: // they returned as ctx ended: no need to cancel
		return nil
	default:
		cancel()
		<-done
		return ctx.Err()
	}
}

// Service is a background service's life in one piece: its State, the Group of its goroutines,
// the Stopping signal they watch, and the Context they work in, which outlives Start's ctx and
// which Stop cancels only when its own deadline passes. Build one with NewService.
type Service struct {
	State
	Group
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
	return s.State.Start(s.name, func() error {
		s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
		if err := start(s.ctx); err != nil {
			s.cancel()
			return err
		}
		return nil
	})
}

// Stopping is closed when Stop begins: the goroutines take no new work.
func (s *Service) Stopping() <-chan struct{} { return s.stopping }

// Context is the goroutines' context (nil before Start).
func (s *Service) Context() context.Context { return s.ctx }

// Stop closes Stopping and waits for the goroutines until ctx ends; then it cancels their
// context and waits for them to return. Only the first call does anything: later ones, and a
// Stop before Start, return nil.
func (s *Service) Stop(ctx context.Context) error {
	first, started := s.State.Stop()
	if !first || !started {
		return nil
	}
	close(s.stopping)
	defer s.cancel()
	if err := s.Drain(ctx, s.cancel); err != nil {
		return fmt.Errorf("%s: %s cancelled at the stop deadline: %w", s.name, s.what, err)
	}
	return nil
}
