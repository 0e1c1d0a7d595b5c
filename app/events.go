package app

import (
	"fmt"

	"github.com/heraldhq/herald/events"
)

// mountEvents builds the notification service (contract: Notifications): POST /channel/{id}/notify
// stores an event durably and GET /events/{id} shows it with its deliveries. Its expansion
// workers, which turn each event into one delivery per matching subscriber, run as a background
// service; services stop in reverse order, so they stop before the engine they enqueue into.
func mountEvents(a *App) error {
	svc, err := events.New(a.RDB, a.Channels, a.Subscribers, a.Engine, events.Config{
		Prefix:       a.Cfg.RedisPrefix,
		Retention:    a.Cfg.DeliveryRetention,
		MaxBodyBytes: a.Cfg.MaxBodyBytes,
		Replication:  a.Cfg.Replication,
		Logger:       a.Log,
		Registerer:   a.Registry,
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	a.Events = svc
	svc.Routes(a.API)
	a.addService(svc)
	return nil
}
