package subscribers

import (
	"errors"
	"slices"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
)

// Subscriber is a webhook endpoint that wants notifications about channels, as the API shows it
// and as Store.Get returns it.
type Subscriber struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Token is the verification token put in every payload. Lists leave it out.
	Token string `json:"token,omitempty"`
	// Secret signs deliveries ("whsec_<base64>"). Only an explicit read of one subscriber shows it.
	Secret      string `json:"secret,omitempty"`
	Description string `json:"description"`

	// Filters: a subscriber matches when every non-empty filter matches (see Matches).
	ChannelIDs  []string `json:"channel_ids"`
	ChannelTags []string `json:"channel_tags"`
	ChatTypes   []string `json:"chat_types"`
	Types       []string `json:"types"`

	// RateLimitPerMinute and MaxInFlight override the daemon's defaults when positive; zero (left
	// out of the JSON) means the default.
	RateLimitPerMinute int  `json:"rate_limit_per_minute,omitempty"`
	MaxInFlight        int  `json:"max_in_flight,omitempty"`
	Ordered            bool `json:"ordered"`

	// Verified says the current URL answered the url_verification handshake.
	Verified bool `json:"verified"`
	// Status is pending, verified, failed or disabled. Only verified subscribers get notifications.
	Status                string `json:"status"`
	LastVerificationError string `json:"last_verification_error"`
	DisabledReason        string `json:"disabled_reason"`
	// BreakerState is the endpoint's circuit breaker state (Health.Breaker: open when a process
	// holds it open); the API fills it in, the store does not keep it.
	BreakerState string `json:"breaker_state,omitempty"`
	// Health is the endpoint's health as the delivery engine records it (its breakers, last
	// success and failure, recent tries); the API fills it in, the store does not keep it.
	Health *notifier.EndpointHealth `json:"health,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Subscriber statuses.
const (
	StatusPending  = "pending"  // waiting for the handshake
	StatusVerified = "verified" // the handshake succeeded; gets notifications
	StatusFailed   = "failed"   // the handshake failed; see LastVerificationError
	StatusDisabled = "disabled" // turned off for its health; see DisabledReason; PATCH re-enables
)

// Event types a subscriber may filter on (contract: Notifications).
const (
	TypeUpdateNotification = "update_notification"
	TypeRepublishRequest   = "republish_request"
	TypeUnpublishRequest   = "unpublish_request"
)

// EventTypes lists the event types, in the order the API names them.
var EventTypes = []string{TypeUpdateNotification, TypeRepublishRequest, TypeUnpublishRequest}

// endpoints derives the delivery engine's endpoint ids of subscribers.
var endpoints = ids.NewDeriver("sub:", "subh:")

// EndpointID is the delivery engine's endpoint id for a subscriber: "sub:<id>", or for an id too
// long for that (only a caller-chosen one can be), "subh:<hex SHA-256 of the id>" (see
// ids.Deriver).
func EndpointID(subscriberID string) string { return endpoints.ID(subscriberID) }

// SubscriberOf returns the subscriber an engine outcome is about: the delivery's SubscriberID
// (every delivery to a subscriber carries it), when the outcome is of that subscriber's endpoint;
// ok is false for outcomes of other endpoints (channel servers, the sessions server).
func SubscriberOf(o notifier.Outcome) (id string, ok bool) {
	return o.SubscriberID, o.SubscriberID != "" && EndpointID(o.SubscriberID) == o.EndpointID
}

var (
	// ErrNotFound: no subscriber has that id.
	ErrNotFound = errors.New("subscribers: subscriber not found")
	// ErrConflict: the subscriber kept changing under a read-modify-write; try again.
	ErrConflict = errors.New("subscribers: concurrent update, try again")
)

// Active reports whether s gets notifications: its URL is verified and it is not disabled.
func (s *Subscriber) Active() bool { return s.Verified && s.Status == StatusVerified }

// Matches reports whether s's filters match the channel and the event type: every non-empty
// filter must match (channel_ids contains the channel id; channel_tags shares a tag with the
// channel; chat_types contains the channel's chat_type; types contains the event type). It does
// not look at the status; see Active.
func (s *Subscriber) Matches(ch *channels.Channel, eventType string) bool {
	if len(s.ChannelIDs) > 0 && !slices.Contains(s.ChannelIDs, ch.ChannelID) {
		return false
	}
	if len(s.ChannelTags) > 0 && !slices.ContainsFunc(ch.ChannelTags, func(t string) bool { return slices.Contains(s.ChannelTags, t) }) {
		return false
	}
	if len(s.ChatTypes) > 0 {
		ct, ok := ch.ChatType().(string)
		if !ok || !slices.Contains(s.ChatTypes, ct) {
			return false
		}
	}
	if len(s.Types) > 0 && !slices.Contains(s.Types, eventType) {
		return false
	}
	return true
}

// Public returns a copy of s fit for a list: without the secret and the token.
func (s *Subscriber) Public() *Subscriber {
	c := *s
	c.Secret = ""
	c.Token = ""
	return &c
}

// normalize makes nil lists empty, so the JSON shows [] rather than null.
func (s *Subscriber) normalize() {
	for _, p := range []*[]string{&s.ChannelIDs, &s.ChannelTags, &s.ChatTypes, &s.Types} {
		if *p == nil {
			*p = []string{}
		}
	}
}
