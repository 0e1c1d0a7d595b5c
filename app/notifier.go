package app

import (
	"fmt"

	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// mountNotifier builds the delivery engine every outgoing request goes through (contract:
// Delivery), mounts the delivery inspection and replay API, and registers the engine as a
// background service (its workers start with Serve and drain on shutdown) and as a readiness
// check (its consumer group must exist).
func mountNotifier(a *App) error {
	cfg := a.Cfg.notifierConfig()
	cfg.Registerer = a.Registry
	cfg.Logger = a.Log.With("component", "notifier")
	// a subscriber's deliveries all go to its endpoint: the engine indexes them once, there
	cfg.SubscriberEndpoint = subscribers.EndpointID
	e, err := notifier.New(a.RDB, cfg)
	if err != nil {
		return fmt.Errorf("delivery engine: %w", err)
	}
	a.Engine = e
	e.Routes(a.API)
	a.addService(e)
	a.addReadiness(e.Ready)
	return nil
}
