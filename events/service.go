package events

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/subscribers"
)

// Channels is what the service needs of the channel store.
type Channels interface {
	Get(ctx context.Context, id string) (*channels.Channel, error)
}

// Subscribers is what the service needs of the subscriber store: Get for a targeted event,
// CountMatch for the count at acceptance, Targets (ids and tokens, paged by id) for expansion.
type Subscribers interface {
	Get(ctx context.Context, id string) (*subscribers.Subscriber, error)
	CountMatch(ctx context.Context, ch *channels.Channel, eventType string) (int, error)
	Targets(ctx context.Context, ch *channels.Channel, eventType string, after string, limit int) ([]subscribers.Target, string, error)
}

// Engine is what the service needs of the delivery engine.
type Engine interface {
	Enqueue(ctx context.Context, reqs ...notifier.Request) ([]string, error)
	List(ctx context.Context, q notifier.ListQuery) ([]*notifier.Delivery, string, error)
	// RaiseWatermark says every delivery with a Request.Seq below w is enqueued (order.go).
	RaiseWatermark(ctx context.Context, w int64) error
}

// Config tunes the service. Zero values take the defaults in brackets.
type Config struct {
	Prefix string // Redis key prefix ["herald"]
	// Retention is how long an event record is kept [7 days]: set it to the delivery retention.
	Retention time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered [24 h].
	IdempotencyTTL time.Duration
	// MaxBodyBytes bounds a notify request body (413 past it) [1 MiB].
	MaxBodyBytes int64
	// MaxMessageBytes bounds the "message" object, which is copied into every subscriber's body
	// (413 naming the field past it) [64 KiB].
	MaxMessageBytes int
	// MaxPending bounds the events accepted but not yet expanded; past it new events get 503 [10000].
	MaxPending int64
	// BatchSize is how many subscribers one expansion step matches and enqueues [1000, the most
	// subscribers.Store.Targets returns]. Each step ends by saving the cursor, after the step's
	// enqueue calls have all returned, so fewer, larger steps leave fewer gaps.
	BatchSize int
	// EnqueueChunk is how many deliveries one engine.Enqueue call takes [16]. The engine writes a
	// call in one Redis script, which holds Redis for everyone else while it runs: small chunks
	// keep the API answering quickly during a large fan-out.
	EnqueueChunk int
	// EnqueueInFlight is how many engine.Enqueue calls of one batch may be in flight at once [3].
	// Several keep Redis busy with the fan-out while the next chunks travel, with no round trip's
	// gap between chunks; an API call may then wait behind all of them, so keep
	// EnqueueInFlight × EnqueueChunk about what one call may hold Redis for. (Measured with
	// scripts/bench-fanout.sh, 10,000 subscribers: 16×3 expands as fast as 50×1 with a lower API
	// p99; 50×2 and 25×3 expand a little faster but double the API's wait behind Redis.)
	EnqueueInFlight int
	// Prefetch is how many pages of subscribers expansion matches ahead of the enqueueing [2].
	Prefetch int
	// Workers is how many events this process expands at once [2].
	Workers int
	// LeaseTTL is how long a worker's claim on an event lasts without renewal [10 s]; a crashed
	// worker's event is resumed by another after at most this long.
	LeaseTTL time.Duration
	// PollInterval is how often idle workers look for events accepted by other processes [500 ms].
	PollInterval time.Duration
	// FullBackoff is how long expansion waits when the engine's backlog is full; new events are
	// refused for as long [1 s].
	FullBackoff time.Duration
	// WatermarkInterval is how often a process reads the ordering watermark and passes it to
	// the engine anyway, besides after every batch of events it finishes (order.go) [2 s]: the
	// longest an ordered delivery waits when the process that finished the event before it died
	// before it could.
	WatermarkInterval time.Duration
	// ErrorBackoff is how long expansion waits after a store error [2 s].
	ErrorBackoff time.Duration
	// Replication, when it asks for replicas, answers 202 only once that many replicas hold the
	// event (redisx.Replication) [off].
	Replication redisx.Replication
	Logger      *slog.Logger
	Now         func() time.Time      // the clock [time.Now]
	Registerer  prometheus.Registerer // receives the service's metrics [none]

	// Test hooks. beforeBatch runs before each expansion batch (tests slow expansion down with
	// it); afterEnqueue runs after a batch is enqueued and before its cursor is saved (tests crash
	// there).
	beforeBatch  func(eventID, cursor string)
	afterEnqueue func(eventID string)
}

func (c *Config) fill() {
	c.Prefix = cmp.Or(c.Prefix, "herald")
	c.Retention = cmp.Or(c.Retention, 7*24*time.Hour)
	c.IdempotencyTTL = cmp.Or(c.IdempotencyTTL, 24*time.Hour)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, httpx.DefaultMaxBody)
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, 64<<10)
	c.MaxPending = cmp.Or(c.MaxPending, 10000)
	c.BatchSize = cmp.Or(c.BatchSize, subscribers.MaxLimit)
	c.EnqueueChunk = cmp.Or(c.EnqueueChunk, 16)
	c.EnqueueInFlight = cmp.Or(c.EnqueueInFlight, 3)
	c.Prefetch = cmp.Or(c.Prefetch, 2)
	c.Workers = cmp.Or(c.Workers, 2)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, 10*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, 500*time.Millisecond)
	c.FullBackoff = cmp.Or(c.FullBackoff, time.Second)
	c.ErrorBackoff = cmp.Or(c.ErrorBackoff, 2*time.Second)
	c.WatermarkInterval = cmp.Or(c.WatermarkInterval, 2*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service accepts notifications, stores them as events and expands each event, in the background,
// into one delivery per matching subscriber. Start/Stop run the expansion workers.
type Service struct {
	rdb  redis.UniversalClient
	ch   Channels
	subs Subscribers
	eng  Engine
	cfg  Config
	keys keys
	log  *slog.Logger
	m    *metrics

	kick chan struct{} // wakes an idle worker when this process accepts an event

	// raised is the highest ordering watermark this process passed to the engine (order.go).
	raised atomic.Int64

	// life owns the expansion workers from Start until Stop; its Stopping signal asks them to
	// finish the current batch, release and exit.
	life *lifecycle.Service
}

// New builds the service.
func New(rdb redis.UniversalClient, ch Channels, subs Subscribers, eng Engine, cfg Config) (*Service, error) {
	if rdb == nil || ch == nil || subs == nil || eng == nil {
		return nil, errors.New("events: New needs Redis, the channel store, the subscriber store and the engine")
	}
	cfg.fill()
	s := &Service{
		rdb: rdb, ch: ch, subs: subs, eng: eng, cfg: cfg,
		keys: newKeys(cfg.Prefix), log: cfg.Logger.With("component", "events"),
		kick: make(chan struct{}, 1), life: lifecycle.NewService("events", "workers"),
	}
	s.m = newMetrics(s, cfg.Registerer)
	return s, nil
}

// Start launches the expansion workers. A service starts once: a second Start returns an error
// wrapping lifecycle.ErrStarted, a Start after Stop one wrapping lifecycle.ErrStopped.
func (s *Service) Start(ctx context.Context) error {
	return s.life.Start(ctx, func(wctx context.Context) error {
		for range s.cfg.Workers {
			s.life.Go(func() { s.work(wctx, s.life.Stopping()) })
		}
		s.life.Go(func() { s.watermarkLoop(wctx, s.life.Stopping()) })
		return nil
	})
}

// Stop asks the workers to finish the batch they are on, hand their events back (so another
// process resumes them at once) and return. When ctx ends first they are cancelled mid-batch;
// their events are then resumed after the lease runs out. Only the first call does anything:
// later ones, and a Stop before Start, return nil.
func (s *Service) Stop(ctx context.Context) error { return s.life.Stop(ctx) }

// Notification is a notify request.
type Notification struct {
	Type         string
	UpdateType   string          // update_notification only; "" sends null
	Message      json.RawMessage // update_notification only: a JSON object, or nil for null
	SubscriberID string          // "" fans out to every matching subscriber
}

// Validate checks n as the API does and returns a 400 (or 413) naming the field at fault. It
// normalises n on the way: a null message becomes nil and an object is compacted.
func (n *Notification) Validate(maxMessage int) error {
	switch n.Type {
	case "":
		return httpx.Missing("type")
	case TypeUpdate:
		switch n.UpdateType {
		case "", UpdateCreated, UpdateChanged, UpdateDeleted:
		default:
			return httpx.Invalid("update_type", "update_type must be %s, %s or %s, not %q",
				UpdateCreated, UpdateChanged, UpdateDeleted, httpx.Truncate(n.UpdateType, 64))
		}
		if n.Message != nil {
			if t := bytes.TrimSpace(n.Message); len(t) == 0 || t[0] != '{' {
				if !bytes.Equal(t, []byte("null")) {
					return httpx.Invalid("message", "message must be a JSON object or null")
				}
				n.Message = nil
			} else {
				var buf bytes.Buffer
				if err := json.Compact(&buf, t); err != nil {
					return httpx.Invalid("message", "message is not valid JSON")
				}
				n.Message = buf.Bytes()
			}
		}
		if len(n.Message) > maxMessage {
			return &httpx.Error{Status: 413, Code: httpx.CodeTooLarge, Field: "message",
				Message: fmt.Sprintf("message is larger than the limit of %d bytes", maxMessage)}
		}
	case TypeRepublish, TypeUnpublish:
		if n.UpdateType != "" {
			return httpx.Invalid("update_type", "update_type is only for %s, not %s", TypeUpdate, n.Type)
		}
		if n.Message != nil && !bytes.Equal(bytes.TrimSpace(n.Message), []byte("null")) {
			return httpx.Invalid("message", "message is only for %s, not %s", TypeUpdate, n.Type)
		}
		n.Message = nil
	default:
		return httpx.Invalid("type", "type must be %s, %s or %s, not %q",
			TypeUpdate, TypeRepublish, TypeUnpublish, httpx.Truncate(n.Type, 64))
	}
	if n.SubscriberID != "" {
		if err := httpx.CheckID("subscriber_id", n.SubscriberID); err != nil {
			return err
		}
	}
	return nil
}

// hash identifies a request for idempotency: two calls with one key must send the same type,
// update type, target and message (compared as JSON values, so whitespace and key order do not
// count).
func (n *Notification) hash() string {
	h := sha256.New()
	for _, s := range []string{n.Type, n.UpdateType, n.SubscriberID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(canonicalJSON(n.Message))
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalJSON re-encodes a JSON value with sorted object keys and no whitespace (numbers kept as
// written); nil stays nil.
func canonicalJSON(raw json.RawMessage) []byte {
	if raw == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

// Notify accepts a notification for a channel: it validates it, counts the matching subscribers
// and stores the event durably together with its entry in the expansion queue, in one atomic step.
// The deliveries are made in the background. With an idempotency key, a repeated call returns the
// first call's answer (replayed = true) and creates nothing.
//
// Errors: a *httpx.Error for invalid input, ErrUnknownChannel, ErrUnknownSubscriber,
// ErrSubscriberNotVerified, ErrIdempotencyConflict, *BacklogError, or a store error.
func (s *Service) Notify(ctx context.Context, channelID string, n Notification, idemKey string) (acc Accepted, replayed bool, err error) {
	if err := httpx.CheckID("channel_id", channelID); err != nil {
		return acc, false, err
	}
	if err := n.Validate(s.cfg.MaxMessageBytes); err != nil {
		return acc, false, err
	}
	reqHash := n.hash()
	var idemKeyName string
	if idemKey != "" {
		idemKeyName = s.keys.idem(channelID, idemKey)
		// A replay is answered without looking at the channel or counting anything; the script
		// below checks again atomically for calls that race.
		raw, err := s.rdb.Get(ctx, idemKeyName).Result()
		if err == nil {
			return s.replay(raw, reqHash)
		} else if !errors.Is(err, redis.Nil) {
			return acc, false, err
		}
	}

	ch, count, err := s.lookup(ctx, channelID, &n)
	if err != nil {
		return acc, false, err
	}

	doc, err := json.Marshal(ch)
	if err != nil {
		return acc, false, fmt.Errorf("encode channel: %w", err)
	}
	tail, err := bodyTail(n.Type, ch, doc, n.UpdateType, n.Message)
	if err != nil {
		return acc, false, err
	}
	ev := &Event{
		ID: ids.New("evt"), Type: n.Type, ChannelID: ch.ChannelID, UpdateType: n.UpdateType,
		SubscriberID: n.SubscriberID, CreatedAt: s.cfg.Now().UTC(), Status: StatusExpanding,
		Subscribers: count, channel: doc, tail: tail,
	}
	return s.accept(ctx, ev, reqHash, idemKeyName)
}

// lookup finds the channel and counts the subscribers an event goes to: the one it names,
// which must be verified, or every match.
func (s *Service) lookup(ctx context.Context, channelID string, n *Notification) (*channels.Channel, int, error) {
	ch, err := s.ch.Get(ctx, channelID)
	if errors.Is(err, channels.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrUnknownChannel, channelID)
	} else if err != nil {
		return nil, 0, err
	}
	if n.SubscriberID == "" {
		count, err := s.subs.CountMatch(ctx, ch, n.Type)
		return ch, count, err
	}
	sub, err := s.subs.Get(ctx, n.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrUnknownSubscriber, n.SubscriberID)
	} else if err != nil {
		return nil, 0, err
	}
	if !sub.Active() {
		return nil, 0, fmt.Errorf("%w: subscriber %s has status %q", ErrSubscriberNotVerified, sub.ID, sub.Status)
	}
	return ch, 1, nil
}

// accept stores ev with its entry in the expansion queue (and the idempotency record, when
// idemKeyName is set) in one script, unless the key was used meanwhile or the queue is full.
func (s *Service) accept(ctx context.Context, ev *Event, reqHash, idemKeyName string) (Accepted, bool, error) {
	acc := Accepted{EventID: ev.ID, Subscribers: ev.Subscribers}
	keys := []string{s.keys.event(ev.ID), s.keys.expand(), s.keys.backlogFull(), s.keys.seq(), s.keys.expanding()}
	if idemKeyName != "" {
		keys = append(keys, idemKeyName)
	}
	args := append([]any{
		ev.ID, s.cfg.Now().UnixMilli(), s.cfg.Retention.Milliseconds(), s.cfg.IdempotencyTTL.Milliseconds(),
		idemRecord{RequestHash: reqHash, Accepted: acc}.encode(), s.cfg.MaxPending,
	}, ev.fields()...)
	res, err := s.cfg.Replication.RunScript(ctx, s.rdb, acceptScript, keys, args...).StringSlice()
	if err != nil {
		return Accepted{}, false, err
	}
	switch res[0] {
	case "ok":
		s.m.accepted.WithLabelValues(ev.Type).Inc()
		s.wake()
		s.log.Debug("event accepted", "event_id", ev.ID, "type", ev.Type, "channel_id", ev.ChannelID, "subscribers", ev.Subscribers)
		return acc, false, nil
	case "replay":
		return s.replay(res[1], reqHash)
	case "full":
		var ms int64
		_, _ = fmt.Sscan(res[1], &ms)
		s.m.refused.Inc()
		return Accepted{}, false, &BacklogError{RetryAfter: time.Duration(ms) * time.Millisecond}
	}
	return Accepted{}, false, fmt.Errorf("events: accept script answered %q", res[0])
}

func (s *Service) replay(raw, reqHash string) (Accepted, bool, error) {
	var rec idemRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Accepted{}, false, fmt.Errorf("events: idempotency record: %w", err)
	}
	if rec.RequestHash != reqHash {
		return Accepted{}, false, ErrIdempotencyConflict
	}
	return rec.Accepted, true, nil
}

// Get returns an event (without its deliveries); ErrNotFound when unknown or expired.
func (s *Service) Get(ctx context.Context, id string) (*Event, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.event(id)).Result()
	if err != nil {
		return nil, err
	}
	ev, err := parseEvent(h)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, ErrNotFound
	}
	return ev, nil
}

// Deliveries pages through an event's deliveries, as the engine lists them.
func (s *Service) Deliveries(ctx context.Context, eventID string, limit int, after string) ([]*notifier.Delivery, string, error) {
	return s.eng.List(ctx, notifier.ListQuery{EventID: eventID, Limit: limit, After: after})
}

// wake tells an idle worker of this process that an event is waiting.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
