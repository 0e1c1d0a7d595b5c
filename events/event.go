package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/subscribers"
)

// Event types (seed 002): the ones subscribers filter on.
const (
	TypeUpdate    = subscribers.TypeUpdateNotification
	TypeRepublish = subscribers.TypeRepublishRequest
	TypeUnpublish = subscribers.TypeUnpublishRequest
)

// Update types of an update_notification.
const (
	UpdateCreated = "message_created"
	UpdateChanged = "message_changed"
	UpdateDeleted = "message_deleted"
)

// Status of an event's fan-out.
const (
	StatusExpanding = "expanding" // deliveries are still being created
	StatusExpanded  = "expanded"  // every matching subscriber has its delivery
)

// KindNotification is the notifier.Request Kind of every delivery an event makes.
const KindNotification = "notification"

// Event is an accepted notification as GET /events/{id} shows it (without its deliveries).
type Event struct {
	ID           string    `json:"event_id"`
	Type         string    `json:"type"`
	ChannelID    string    `json:"channel_id"`
	UpdateType   string    `json:"update_type,omitempty"`
	SubscriberID string    `json:"subscriber_id,omitempty"` // set when the event targets one subscriber
	CreatedAt    time.Time `json:"created_at"`
	Status       string    `json:"status"`
	// Subscribers is the number of matching subscribers counted when the event was accepted (the
	// "subscribers" of the 202). Enqueued is the number of deliveries made so far; once the event is
	// expanded they differ only if subscribers changed in between.
	Subscribers int        `json:"subscribers"`
	Enqueued    int        `json:"enqueued"`
	ExpandedAt  *time.Time `json:"expanded_at,omitempty"`

	channel []byte // the channel document at acceptance (JSON), matched against filters
	tail    []byte // the body after the token (see bodyTail)
	cursor  string // the last subscriber id expanded
	seq     int64  // its number in the order of acceptance (order.go); 0 when accepted before numbering
}

// Fields of an event's HASH (keys.event).
const (
	fID           = "id"
	fType         = "type"
	fChannelID    = "channel_id"
	fUpdateType   = "update_type"
	fSubscriberID = "subscriber_id"
	fCreatedAt    = "created_at"
	fStatus       = "status"
	fSubscribers  = "subscribers"
	fEnqueued     = "enqueued"
	fExpandedAt   = "expanded_at"
	fChannel      = "channel"
	fTail         = "tail"
	fCursor       = "cursor"
	fOwner        = "owner" // the lease holder's token while a worker expands the event
	fSeq          = "seq"   // its number in the order of acceptance, written by acceptScript
)

// fields flattens a new event into HSET arguments.
func (e *Event) fields() []any {
	return []any{
		fID, e.ID, fType, e.Type, fChannelID, e.ChannelID, fUpdateType, e.UpdateType,
		fSubscriberID, e.SubscriberID, fCreatedAt, e.CreatedAt.UTC().Format(time.RFC3339Nano),
		fStatus, e.Status, fSubscribers, e.Subscribers, fEnqueued, 0,
		fChannel, string(e.channel), fTail, string(e.tail), fCursor, "",
	}
}

// parseEvent reads an event's HASH; nil for an empty one (no such event).
func parseEvent(h map[string]string) (*Event, error) {
	if len(h) == 0 || h[fID] == "" {
		return nil, nil
	}
	e := &Event{
		ID: h[fID], Type: h[fType], ChannelID: h[fChannelID], UpdateType: h[fUpdateType],
		SubscriberID: h[fSubscriberID], Status: h[fStatus],
		channel: []byte(h[fChannel]), tail: []byte(h[fTail]), cursor: h[fCursor],
	}
	var err error
	if e.CreatedAt, err = time.Parse(time.RFC3339Nano, h[fCreatedAt]); err != nil {
		return nil, fmt.Errorf("event %s: created_at: %w", e.ID, err)
	}
	if e.Subscribers, err = strconv.Atoi(h[fSubscribers]); err != nil {
		return nil, fmt.Errorf("event %s: subscribers: %w", e.ID, err)
	}
	if v := h[fSeq]; v != "" {
		if e.seq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("event %s: seq: %w", e.ID, err)
		}
	}
	if v := h[fEnqueued]; v != "" {
		if e.Enqueued, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("event %s: enqueued: %w", e.ID, err)
		}
	}
	if v := h[fExpandedAt]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fmt.Errorf("event %s: expanded_at: %w", e.ID, err)
		}
		e.ExpandedAt = &t
	}
	return e, nil
}

// Accepted is the 202 answer to a notify call, and what an idempotent replay answers again.
type Accepted struct {
	EventID     string `json:"event_id"`
	Subscribers int    `json:"subscribers"`
}

// idemRecord is what an Idempotency-Key remembers: a hash of the request it came with and the
// answer it got.
type idemRecord struct {
	RequestHash string   `json:"h"`
	Accepted    Accepted `json:"a"`
}

func (r idemRecord) encode() string {
	b, _ := json.Marshal(r) // two strings and an int always encode
	return string(b)
}

var (
	// ErrNotFound is returned for an unknown (or expired) event id.
	ErrNotFound = errors.New("events: event not found")
	// ErrUnknownChannel is returned when the channel to notify does not exist.
	ErrUnknownChannel = errors.New("events: unknown channel")
	// ErrUnknownSubscriber is returned when the subscriber_id to target does not exist.
	ErrUnknownSubscriber = errors.New("events: unknown subscriber")
	// ErrSubscriberNotVerified is returned when the subscriber_id to target is not verified or is
	// disabled: it would never receive the event.
	ErrSubscriberNotVerified = errors.New("events: subscriber is not verified or is disabled")
	// ErrIdempotencyConflict is returned when an Idempotency-Key is reused with a different request.
	ErrIdempotencyConflict = errors.New("events: idempotency key reused with a different request")
)

// BacklogError is returned when new events are refused because the delivery backlog is full. It
// wraps notifier.ErrBacklogFull.
type BacklogError struct {
	RetryAfter time.Duration
}

func (e *BacklogError) Error() string {
	return fmt.Sprintf("events: the delivery backlog is full, retry in %s", e.RetryAfter)
}

func (e *BacklogError) Unwrap() error { return notifier.ErrBacklogFull }

// snapshot is the channel as it was when the event was accepted: what expansion matches.
func (e *Event) snapshot() (*channels.Channel, error) {
	var ch channels.Channel
	if err := json.Unmarshal(e.channel, &ch); err != nil {
		return nil, fmt.Errorf("event %s: channel snapshot: %w", e.ID, err)
	}
	return &ch, nil
}
