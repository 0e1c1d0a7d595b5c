package app

import (
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/events"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/sessions"
	"github.com/heraldhq/herald/subscribers"
)

// components holds what the mount functions build, for the functions that come after them and for
// tests that drive the daemon in-process.
type components struct {
	Channels    *channels.Store
	Engine      *notifier.Engine
	Subscribers *subscribers.Store
	Events      *events.Service
	Sessions    *sessions.Service
}

// mounts build the components in dependency order. Each lives in its own file (channels.go,
// notifier.go, ...) so that a component's wiring is read in one place.
var mounts = []func(*App) error{
	mountChannels,
	mountNotifier,
	mountSubscribers,
	mountEvents,
	mountSessions,
}
