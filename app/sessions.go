package app

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald/sessions"
)

// mountSessions builds the message relay on the channel store and the delivery engine, and mounts
// POST /channel/message, POST /webhook-response (open: no API key, guarded by the per-session
// token) and GET /sessions/{id} on the API router.
func mountSessions(a *App) error {
	if a.Channels == nil || a.Engine == nil {
		return errors.New("app: the relay needs the channel store and the delivery engine mounted first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := sessions.New(ctx, a.RDB, a.Channels, a.Engine, sessions.Config{
		Prefix:        a.Cfg.RedisPrefix,
		PublicURL:     a.Cfg.PublicURL,
		SessionsURL:   a.Cfg.SessionsURL,
		SigningSecret: a.Cfg.SigningSecret,
		TTL:           a.Cfg.SessionTTL,
		MaxBodyBytes:  a.Cfg.MaxBodyBytes,
		Log:           a.Log,
		Registerer:    a.Registry,
	})
	if err != nil {
		return err
	}
	svc.Routes(a.API)
	a.Sessions = svc
	a.Channels.OnDelete(func(ctx context.Context, id string) {
		if err := svc.ChannelDeleted(ctx, id); err != nil {
			a.Log.Warn("channel deleted, but its relay endpoint was not", "channel_id", id, "err", err)
		}
	})
	return nil
}
