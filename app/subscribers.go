package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/verifier"
)

// mountSubscribers builds the subscriber store and API (contract: Subscribers and verification),
// the verifier service that runs the url_verification handshakes in the background, and the health
// listener that disables subscribers whose endpoints answer 410 Gone or fail every delivery for
// --disable-after. It needs the delivery engine (mountNotifier) first.
func mountSubscribers(a *App) error {
	log := a.Log.With("component", "subscribers")
	store := subscribers.NewStore(a.RDB, a.Cfg.RedisPrefix)
	policy := egress.Policy{AllowHTTP: a.Cfg.AllowHTTP, AllowPrivate: a.Cfg.AllowPrivate}
	v := verifier.New(verifier.Config{
		Store:      store,
		OnVerified: registerVerified(store, a.Engine, log),
		Policy:     policy,
		Version:    a.Cfg.Version,
		Registerer: a.Registry,
		Log:        a.Log.With("component", "verifier"),
	})
	subscribers.NewHandlers(subscribers.HandlerConfig{
		Store:        store,
		Engine:       a.Engine,
		Policy:       policy,
		DefaultToken: a.Cfg.VerificationToken,
		MaxBody:      a.Cfg.MaxBodyBytes,
		Nudge:        v.Nudge,
		Log:          log,
	}).Routes(a.API)
	health := subscribers.NewHealth(store, a.Engine, a.Cfg.DisableAfter, log)
	a.Engine.OnOutcome(health.Observe)
	// First of the services, so it starts before the engine and stops after it, recording the
	// outcomes the engine reports while it drains.
	a.services = append([]service{health}, a.services...)
	a.addService(v)
	a.Subscribers = store
	return nil
}

// registerVerified registers a subscriber's URL with the delivery engine once its handshake has
// passed; until then a changed URL's subscriber keeps its previous, verified endpoint.
func registerVerified(store *subscribers.Store, engine *notifier.Engine, log *slog.Logger) func(context.Context, string) {
	return func(ctx context.Context, id string) {
		sub, err := store.Get(ctx, id)
		if err == nil {
			err = engine.PutEndpoint(ctx, subscribers.Endpoint(sub))
		}
		if err != nil && !errors.Is(err, subscribers.ErrNotFound) {
			log.Warn("could not register a verified subscriber's URL with the delivery engine; PATCH or /verify registers it again",
				"subscriber_id", id, "err", err)
		}
	}
}
