package app

import (
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

// mountChannels builds the channel registry and mounts its API (contract: Channels). endpoint_url
// is checked against the operator's target rules from the moment a channel is created.
func mountChannels(a *App) error {
	a.Channels = channels.NewStore(a.RDB, a.Cfg.RedisPrefix,
		channels.WithPolicy(egress.Policy{AllowHTTP: a.Cfg.AllowHTTP, AllowPrivate: a.Cfg.AllowPrivate}))
	channels.NewHandler(a.Channels, a.Cfg.MaxBodyBytes).Routes(a.API)
	return nil
}
