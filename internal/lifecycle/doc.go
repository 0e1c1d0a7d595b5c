// Package lifecycle gives herald's background services one rule for Start and Stop, and one way
// to own the goroutines they start.
//
// A component's life has three states, each entered once:
//
//	state    entered by                 Start                 Stop
//	new      the zero State             runs start → started  → stopped (started = false)
//	started  a Start whose start is nil ErrStarted            → stopped (started = true)
//	stopped  the first Stop             ErrStopped            no-op (first = false)
//
// A Start whose start function fails leaves the state new, so it may be tried again. A stopped
// component is not restarted: build a new one. Stop is safe to call any number of times.
//
// A Group owns goroutines until they return: every goroutine a service starts is started with
// Group.Go, and the service's Stop waits for the group (Wait, or Drain with a deadline).
//
// The package is a leaf: it imports no herald package.
package lifecycle
