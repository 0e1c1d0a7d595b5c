package notifier

import (
	"errors"
	"time"
)

// This file is the engine's public contract with the rest of herald (events, sessions, the API).
// Change it only together with its callers.

// Endpoint is a delivery target as the engine knows it: where to send, how to sign, and how hard
// the endpoint may be pushed. The engine stores endpoints in Redis; callers register one with
// Engine.PutEndpoint before they enqueue deliveries for it, and again whenever it changes.
//
// Endpoint ids are chosen by the caller and are stable: "sub:<subscriber id>" for a subscriber,
// "chan:<channel id>" for a channel server, "sessions" for the sessions server.
type Endpoint struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret signs requests (Standard Webhooks, "whsec_<base64>"). Empty means unsigned. When
	// PutEndpoint changes it, the previous secret keeps signing alongside the new one for 24 h.
	Secret string `json:"-"`
	// RateLimitPerMinute and MaxInFlight override the engine defaults when positive.
	RateLimitPerMinute int `json:"rate_limit_per_minute,omitempty"`
	MaxInFlight        int `json:"max_in_flight,omitempty"`
	// Ordered sends the endpoint's deliveries one at a time, in the order accepted.
	Ordered bool `json:"ordered,omitempty"`
	// Disabled turns the endpoint off, as DisableEndpoint does: it gets nothing, its pending
	// deliveries end as failed (endpoint_disabled), and putting it with Disabled false enables it
	// again (replay those with Engine.Retry).
	Disabled bool `json:"disabled,omitempty"`
	// DisableOnGone disables the endpoint when a try is answered 410 Gone, in the same step that
	// records that try, so that nothing more is sent to it, not even a delivery the try's end lets
	// go (the next in its ordering line, one waiting for its in-flight slot): begin dead-letters
	// them (endpoint_disabled). Its other pending deliveries are the owner's to end, with
	// DisableEndpoint (herald's subscribers do when they see the 410's Outcome).
	DisableOnGone bool `json:"disable_on_gone,omitempty"`
}

// Request is one delivery to enqueue.
type Request struct {
	// ID is the delivery id and the webhook-id header. Optional: the engine makes one when empty.
	// Enqueueing an id that already exists is a no-op that returns the same id, which is what makes
	// fan-out idempotent: give each (event, subscriber) a deterministic id.
	ID         string
	EndpointID string // must have been registered with PutEndpoint
	Body       []byte // the JSON body, sent as it is
	// OrderingKey, when set, makes deliveries with the same key go out one at a time in the order
	// accepted (the relay uses the session id). An Ordered endpoint uses its id as the key.
	OrderingKey string
	// Seq, when positive, is the delivery's place in a sequence its caller numbers at acceptance
	// (events numbers its events), for when the caller enqueues out of that order: a delivery
	// with an ordering line and a Seq waits until Engine.RaiseWatermark reaches its Seq, then
	// joins its line in Seq order. Deliveries without a line ignore it; 0 joins the line at once.
	Seq int64
	// EventID and SubscriberID group deliveries for inspection (GET /events/{id},
	// GET /deliveries?subscriber_id=). Kind says what the delivery is: "notification", "relay",
	// "callback". All three are optional metadata.
	EventID      string
	SubscriberID string
	Kind         string
}

// Status of a delivery.
type Status string

const (
	StatusPending   Status = "pending"   // waiting for its next try
	StatusDelivered Status = "delivered" // a 2xx was received
	StatusFailed    Status = "failed"    // dead-lettered: tries or age exhausted, or its endpoint gone; replayable
)

// Attempt is one try of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode int       `json:"status_code"`        // 0 when no HTTP answer came
	Error      string    `json:"error"`              // empty on success
	Response   string    `json:"response,omitempty"` // the first bytes of the response body
}

// Delivery is a delivery's record as GET /deliveries/{id} shows it.
type Delivery struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	SubscriberID  string     `json:"subscriber_id"`
	EndpointID    string     `json:"endpoint_id"`
	Kind          string     `json:"kind,omitempty"`
	Target        string     `json:"target"` // the URL, with any userinfo and query removed
	Status        Status     `json:"status"`
	Attempts      []Attempt  `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	DeadReason    string     `json:"dead_reason,omitempty"`
	// Waiting says why a pending delivery is not being tried yet; null once it is finished.
	Waiting *Waiting `json:"waiting"`
}

// Waiting is why a pending delivery waits, and which try comes next.
type Waiting struct {
	Reason WaitReason `json:"reason"`
	// Retry and Of: the next try is retry Retry of the Of retries of the schedule (the first
	// try's failure makes the next retry 1). Both are left out before a try has failed.
	Retry int `json:"retry,omitempty"`
	Of    int `json:"of,omitempty"`
}

// WaitReason says what a pending delivery waits for. Next_attempt_at is when it goes next: the
// due time of a retry or a deferral; for in_flight_full and ordered it is already past, and the
// delivery goes as soon as a slot frees or the delivery ahead of it finishes.
type WaitReason string

const (
	// WaitDue: nothing holds it back; it is being tried, or will be as soon as a worker is free
	// (from next_attempt_at on).
	WaitDue WaitReason = "due"
	// WaitRetry: its last try failed; the next is due at next_attempt_at (the retry schedule).
	WaitRetry WaitReason = "retry"
	// WaitBreakerOpen: the endpoint's circuit breaker was open in the process that picked the
	// delivery up; it comes back when the breaker lets a probe through. No try is used.
	WaitBreakerOpen WaitReason = ReasonBreakerOpen
	// WaitRateLimited: the endpoint's rate limit is spent; it comes back at its next free slot.
	// No try is used.
	WaitRateLimited WaitReason = ReasonRateLimited
	// WaitInFlightFull: every in-flight slot of the endpoint (max_in_flight, shared by every
	// process) is taken; it goes when one is released.
	WaitInFlightFull WaitReason = "in_flight_full"
	// WaitOrdered: it is behind the head of its ordering line; it goes when the delivery ahead of
	// it is delivered or dead-lettered. Or it is in its line's gate, waiting for deliveries
	// accepted before it to be enqueued (Request.Seq, RaiseWatermark).
	WaitOrdered WaitReason = "ordered"
)

// Outcome is reported after every try, so owners of endpoints (subscribers) can track health.
// It is also reported, with StatusCode 0 and Delivered false, when a delivery is deferred without
// a try (Reason breaker_open or rate_limited) and when it is dead-lettered without one (Reason
// max_age, endpoint_deleted or endpoint_disabled, Dead true): tell those apart by Reason.
type Outcome struct {
	DeliveryID   string
	EndpointID   string
	EventID      string
	SubscriberID string
	StatusCode   int    // 0 without an HTTP answer
	Reason       string // "" on success, else timeout, network, http_4xx, http_5xx, ...
	Delivered    bool
	Dead         bool // this outcome dead-lettered the delivery
	// Tried: a request was sent (whatever came of it). An outcome without one is a delivery
	// deferred (breaker open, rate limit) or dead-lettered before a try (max age, endpoint deleted
	// or disabled).
	Tried bool
	At    time.Time
}

// BreakerState is an endpoint circuit breaker's state: "closed", "open" or "half_open".
type BreakerState string

// EndpointHealth is an endpoint's health as Engine.Health reports it, from what every process
// records (health.go): its breakers, its last success and failure, and its tries of the last hour.
type EndpointHealth struct {
	// Breaker is the worst state of the breakers in Breakers (open, then half_open), closed when
	// none is listed. Breakers are per process: one process may hold the endpoint's breaker open
	// while another's is closed.
	Breaker BreakerState `json:"breaker"`
	// Breakers are the breakers of the live processes that have changed state for the endpoint,
	// each as its process last recorded it (the answering process's as it is now). A process
	// not listed has a closed breaker for it.
	Breakers      []ProcessBreaker `json:"breakers"`
	LastSuccessAt *time.Time       `json:"last_success_at"`
	LastFailureAt *time.Time       `json:"last_failure_at"`
	// LastError is the last failed try's error ("HTTP 503", "... connection refused", ...), and
	// LastStatusCode its status code (left out when no answer came).
	LastError      string      `json:"last_error"`
	LastStatusCode int         `json:"last_status_code,omitempty"`
	Recent         RecentTries `json:"recent"`
}

// ProcessBreaker is one process's breaker of an endpoint.
type ProcessBreaker struct {
	Process string       `json:"process"` // the process's consumer name (Config.Consumer)
	State   BreakerState `json:"state"`
	Since   time.Time    `json:"since"` // when it took that state
	// Until is when an open breaker lets a probe through; an open breaker past it reads half_open.
	Until *time.Time `json:"until,omitempty"`
}

// RecentTries counts an endpoint's tries (every process's) in the last WindowSeconds, by five
// minute buckets. A process writes a healthy endpoint's counts once a minute, so the last minute's
// successes may be missing; failures are written within a second.
type RecentTries struct {
	WindowSeconds int `json:"window_seconds"`
	Tries         int `json:"tries"`
	Failures      int `json:"failures"`
	// SuccessRate is (Tries - Failures) / Tries, null without tries.
	SuccessRate *float64 `json:"success_rate"`
}

var (
	// ErrBacklogFull is returned by Enqueue when the backlog is past its bound; the API answers 503
	// with Retry-After.
	ErrBacklogFull = errors.New("notifier: delivery backlog is full")
	// ErrUnknownEndpoint is returned by Enqueue for an endpoint id never registered.
	ErrUnknownEndpoint = errors.New("notifier: unknown endpoint")
	// ErrNotFound is returned for an unknown delivery id.
	ErrNotFound = errors.New("notifier: delivery not found")
	// ErrInvalidTarget is returned (wrapped, with the reason) by PutEndpoint for a URL the target
	// rules refuse: not absolute http(s), http when not allowed, a private address when not allowed.
	ErrInvalidTarget = errors.New("notifier: invalid target")
)

// ErrPending is returned by Retry for a delivery that is still pending: it will be tried anyway,
// so a replay would only duplicate it. The API answers 409.
var ErrPending = errors.New("notifier: delivery is still pending")

// ListQuery selects deliveries for Engine.List. Every non-empty field must match. Results are
// newest first (by the time the delivery was last accepted: enqueued or replayed).
type ListQuery struct {
	Status       Status
	SubscriberID string
	EventID      string
	EndpointID   string
	// Limit is the page size: default 100, at most 1000.
	Limit int
	// After is the cursor returned as next by the previous page ("" for the first page).
	After string
}
