package app

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/redisx"
)

// readyBudget is how long /readyz's checks may take together before it answers 503.
const readyBudget = 2 * time.Second

// errNoAnswer is a readiness run that did not finish within readyBudget.
var errNoAnswer = readinessError("redis did not answer within " + readyBudget.String())

type readinessError string

func (r readinessError) Error() string           { return string(r) }
func (r readinessError) ReadinessReason() string { return string(r) }

// readiness runs the checks /readyz answers with: Redis answers, Redis takes writes, and each
// component's own check (the delivery queue's consumer group). One run at a time: a probe that
// comes while a run is under way waits for that run, so a hung Redis holds one goroutine, not one
// per probe. A probe waits readyBudget at most, however long the client takes to give up on
// Redis.
type readiness struct {
	checks []func(context.Context) error

	mu  sync.Mutex
	run *readyRun // the run under way, nil when none
}

type readyRun struct {
	done chan struct{} // closed when err is set
	err  error
}

// storeChecks are the checks on Redis itself: it answers, and it takes writes.
func storeChecks(rdb redis.UniversalClient, prefix string) []func(context.Context) error {
	key := readyKey(prefix)
	return []func(context.Context) error{
		func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		func(ctx context.Context) error { return rdb.Set(ctx, key, "1", time.Minute).Err() },
	}
}

// check returns the first error of the checks (of the run under way, or of a new one), or
// errNoAnswer when they have not finished within readyBudget or before ctx ends.
func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	run := r.run
	if run == nil {
		run = &readyRun{done: make(chan struct{})}
		r.run = run
		go r.runChecks(run)
	}
	r.mu.Unlock()
	timer := time.NewTimer(readyBudget)
	defer timer.Stop()
	select {
	case <-run.done:
		return run.err
	case <-timer.C:
	case <-ctx.Done():
	}
	return errNoAnswer
}

func (r *readiness) runChecks(run *readyRun) {
	ctx, cancel := context.WithTimeout(context.Background(), readyBudget)
	defer cancel()
	for _, c := range r.checks {
		if run.err = c(ctx); run.err != nil {
			break
		}
	}
	r.mu.Lock()
	r.run = nil
	r.mu.Unlock()
	close(run.done)
}

// readyzBody is the answer of /readyz. Warnings are risks that do not make herald unready: unsafe
// Redis settings (redisCheck).
type readyzBody struct {
	Status   string   `json:"status"`           // ready or unavailable
	Reason   string   `json:"reason,omitempty"` // why it is unavailable
	Warnings []string `json:"warnings,omitempty"`
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	var warnings []string
	if a.redisCheck != nil {
		warnings = a.redisCheck.Warnings()
	}
	if err := a.ready.check(r.Context()); err != nil {
		a.Log.Warn("not ready", "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.WriteJSON(w, http.StatusServiceUnavailable, readyzBody{"unavailable", readinessReason(err), warnings})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, readyzBody{Status: "ready", Warnings: warnings})
}

// readinessReason describes a failed check without leaking addresses or credentials.
func readinessReason(err error) string {
	var re interface{ ReadinessReason() string }
	if errors.As(err, &re) {
		return re.ReadinessReason()
	}
	if r := redisx.TransientReason(err); r != "" {
		return r
	}
	return "redis refused a readiness check (the log says why)"
}
