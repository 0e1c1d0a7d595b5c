package app

import (
	"context"
	"errors"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/sessions"
)

// mountChannels builds the channel registry and mounts its API (contract: Channels). endpoint_url
// is checked against the operator's target rules from the moment a channel is created.
// GET /channel/{id}?include=health adds the health of the channel's relay endpoint.
func mountChannels(a *App) error {
	a.Channels = channels.NewStore(a.RDB, a.Cfg.RedisPrefix,
		channels.WithPolicy(egress.Policy{AllowHTTP: a.Cfg.AllowHTTP, AllowPrivate: a.Cfg.AllowPrivate}))
	channels.NewHandler(a.Channels, a.Cfg.MaxBodyBytes).WithHealth(a.relayHealth).Routes(a.API)
	return nil
}

// relayHealth is the health of a channel's relay endpoint (sessions.ChannelEndpointID). The
// delivery engine is mounted after the channels, so it is looked up when asked.
func (a *App) relayHealth(ctx context.Context, channelID string) (any, error) {
	if a.Engine == nil {
		return nil, errors.New("app: the delivery engine is not mounted")
	}
	hs, err := a.Engine.Health(ctx, sessions.ChannelEndpointID(channelID))
	if err != nil {
		return nil, err
	}
	return hs[0], nil
}
