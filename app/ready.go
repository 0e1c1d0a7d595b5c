package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/redisx"
)

// readyBudget is how long /readyz's checks may take together before it answers 503 (the Redis
// client honours the deadline: redisx.Open).
const readyBudget = 2 * time.Second

// errNoAnswer is a readiness check that did not finish within readyBudget.
var errNoAnswer = readinessError("redis did not answer within " + readyBudget.String())

type readinessError string

func (r readinessError) Error() string           { return string(r) }
func (r readinessError) ReadinessReason() string { return string(r) }

// readiness is the checks /readyz answers with: each component's own (the delivery engine's
// proves that every queue shard's master takes writes and has its consumer group).
type readiness struct {
	checks []func(context.Context) error
}

// check returns the first error of the checks, errNoAnswer when they have not finished within
// readyBudget.
func (r *readiness) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyBudget)
	defer cancel()
	for _, c := range r.checks {
		if err := c(ctx); err != nil {
			if ctx.Err() != nil {
				return errNoAnswer
			}
			return err
		}
	}
	return nil
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
