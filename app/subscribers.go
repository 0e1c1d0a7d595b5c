package app

import (
	"github.com/heraldhq/herald/egress"
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
	a.Engine.OnOutcome(subscribers.NewHealth(store, a.Cfg.DisableAfter, log).Observe)
	a.addService(v)
	a.Subscribers = store
	return nil
}
