package app

import (
	"fmt"

	"github.com/heraldhq/herald/notifier"
)

// mountNotifier builds the delivery engine every outgoing request goes through (contract:
// Delivery), mounts the delivery inspection and replay API, and registers the engine as a
// background service (its workers start with Serve and drain on shutdown) and as a readiness
// check (its consumer group must exist).
func mountNotifier(a *App) error {
	e, err := notifier.New(a.RDB, notifier.Config{
		Prefix:             a.Cfg.RedisPrefix,
		Version:            a.Cfg.Version,
		RequestTimeout:     a.Cfg.RequestTimeout,
		RetrySchedule:      a.Cfg.RetrySchedule,
		MaxDeliveryAge:     a.Cfg.MaxDeliveryAge,
		RateLimitPerMinute: a.Cfg.RateLimitPerMinute,
		MaxInFlight:        a.Cfg.MaxInFlight,
		MaxConnsPerHost:    a.Cfg.MaxConnsPerHost,
		AllowHTTP:          a.Cfg.AllowHTTP,
		AllowPrivate:       a.Cfg.AllowPrivate,
		MaxBacklog:         a.Cfg.MaxBacklog,
		Workers:            a.Cfg.Workers,
		Retention:          a.Cfg.DeliveryRetention,
		Registerer:         a.Registry,
		Logger:             a.Log.With("component", "notifier"),
	})
	if err != nil {
		return fmt.Errorf("delivery engine: %w", err)
	}
	a.Engine = e
	e.Routes(a.API)
	a.addService(e)
	a.addReadiness(e.Ready)
	return nil
}
