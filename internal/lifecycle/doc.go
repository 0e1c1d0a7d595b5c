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
// A Service owns a background service's goroutines until they return: every goroutine it starts
// is started with Service.Go, and Service.Stop signals them (Stopping), waits for them until its
// deadline, then cancels their Context and waits again.
//
// The package is a leaf: it imports no herald package.
package lifecycle
