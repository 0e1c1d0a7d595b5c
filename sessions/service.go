package sessions

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/notifier"
	"github.com/heraldhq/herald/webhooksig"
)

// Engine is what the relay needs of the delivery engine (*notifier.Engine).
type Engine interface {
	PutEndpoint(ctx context.Context, ep notifier.Endpoint) error
	DeleteEndpoint(ctx context.Context, id string) error
	Enqueue(ctx context.Context, reqs ...notifier.Request) ([]string, error)
	GetMany(ctx context.Context, ids []string) ([]*notifier.Delivery, error)
}

// Channels is what the relay needs of the channel store (*channels.Store).
type Channels interface {
	Get(ctx context.Context, id string) (*channels.Channel, error)
}

// SessionsEndpointID is the engine endpoint id of the sessions server.
const SessionsEndpointID = "sessions"

// channelEndpoints derives the engine endpoint ids of channel servers.
var channelEndpoints = ids.NewDeriver("chan:", "chanh:")

// ChannelEndpointID is the engine endpoint id of a channel's server: "chan:<channel id>", or for
// channel ids too long for that, "chanh:<hex SHA-256 of the channel id>" (see ids.Deriver).
func ChannelEndpointID(channelID string) string { return channelEndpoints.ID(channelID) }

// Defaults of Config.
const (
	DefaultTTL                = 24 * time.Hour
	DefaultMaxMessageBytes    = 256 << 10
	DefaultMaxMessages        = 1000
	DefaultMaxResponses       = 1000
	DefaultMaxIdempotencyKeys = 10000
	maxURLLen                 = 2048
	maxIdempotencyKeyLen      = 255
)

// Config configures a Service. Zero values take the defaults above.
type Config struct {
	Prefix      string // Redis key prefix (required)
	PublicURL   string // base of the response_url herald makes, e.g. http://127.0.0.1:8000 (required)
	SessionsURL string // where callbacks are forwarded; "" keeps them only (GET /sessions/{id})
	// SigningSecret signs relayed messages and forwarded callbacks ("whsec_..."). Empty: one is
	// generated once and shared by every herald process through Redis.
	SigningSecret string
	TTL           time.Duration // a session expires after this long without a message or response
	// MaxMessageBytes bounds the JSON of one message and of one response_data.
	MaxMessageBytes    int
	MaxBodyBytes       int64 // request body limit (httpx.DefaultMaxBody when 0)
	MaxMessages        int   // messages kept per session (the newest)
	MaxResponses       int   // responses kept per session (the newest)
	MaxIdempotencyKeys int   // callback Idempotency-Keys remembered per session (the newest)
	Log                *slog.Logger
	Registerer         prometheus.Registerer // optional: where the relay's counters go
	Now                func() time.Time      // the clock; time.Now when nil
}

// Service is the message relay: it sends messages to channel servers, takes their callbacks and
// forwards them to the sessions server, remembering each session in Redis.
type Service struct {
	cfg      Config
	rdb      redis.UniversalClient
	keys     keys
	channels Channels
	engine   Engine
	log      *slog.Logger
	secret   string
	tokenKey []byte

	// locks serialize the enqueueing of one session's messages and responses in this process, so
	// that the order they are recorded in is the order they are enqueued (and so delivered) in.
	locks [64]sync.Mutex

	epMu          sync.Mutex
	endpoints     map[string]registered // what this process last registered with the engine
	maxRegistered int                   // bound of endpoints (tests lower it)

	messages  *prometheus.CounterVec
	callbacks *prometheus.CounterVec
}

// New builds the relay. It reads (or creates, once for all processes) the signing secret and the
// callback token key in Redis, and registers the sessions server with the engine when one is
// configured.
func New(ctx context.Context, rdb redis.UniversalClient, ch Channels, eng Engine, cfg Config) (*Service, error) {
	if cfg.Prefix == "" {
		return nil, errors.New("sessions: Config.Prefix is required")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("sessions: Config.PublicURL is required")
	}
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, httpx.DefaultMaxBody)
	cfg.MaxMessages = cmp.Or(cfg.MaxMessages, DefaultMaxMessages)
	cfg.MaxResponses = cmp.Or(cfg.MaxResponses, DefaultMaxResponses)
	cfg.MaxIdempotencyKeys = cmp.Or(cfg.MaxIdempotencyKeys, DefaultMaxIdempotencyKeys)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg: cfg, rdb: rdb, keys: keys{prefix: cfg.Prefix}, channels: ch, engine: eng, log: cfg.Log,
		endpoints: map[string]registered{}, maxRegistered: maxRegistered,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_relay_messages_total",
			Help: "Messages POSTed to /channel/message, by result (queued, invalid, unknown_channel, refused).",
		}, []string{"result"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_relay_callbacks_total",
			Help: "Callbacks POSTed to /webhook-response, by result (accepted, duplicate, unknown_session, forbidden, invalid, refused).",
		}, []string{"result"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.messages, s.callbacks} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("sessions: register metrics: %w", err)
			}
		}
	}

	if err := webhooksig.CheckSecret(cfg.SigningSecret); err != nil {
		return nil, fmt.Errorf("sessions: the signing secret is not usable: %w", err)
	}
	s.secret = cfg.SigningSecret
	if s.secret == "" {
		secret, generated, err := sharedSecret(ctx, rdb, s.keys.signingSecret(), webhooksig.NewSecret)
		if err != nil {
			return nil, fmt.Errorf("sessions: relay signing secret: %w", err)
		}
		s.secret = secret
		if generated {
			s.log.Info("generated the relay signing secret and stored it in Redis; pass --signing-secret to choose your own",
				"redis_key", s.keys.signingSecret())
		}
	}
	tk, _, err := sharedSecret(ctx, rdb, s.keys.tokenKey(), newTokenKey)
	if err != nil {
		return nil, fmt.Errorf("sessions: callback token key: %w", err)
	}
	s.tokenKey = []byte(tk)

	if cfg.SessionsURL != "" {
		if err := s.ensureEndpoint(ctx, notifier.Endpoint{ID: SessionsEndpointID, URL: cfg.SessionsURL, Secret: s.secret}); err != nil {
			if errors.Is(err, notifier.ErrInvalidTarget) {
				return nil, fmt.Errorf("--sessions-url %s is refused: %w", egress.Redact(cfg.SessionsURL), err)
			}
			return nil, fmt.Errorf("sessions: register the sessions server: %w", err)
		}
	}
	return s, nil
}

// SigningSecret returns the whsec_ secret relayed messages and forwarded callbacks are signed with.
func (s *Service) SigningSecret() string { return s.secret }

// lock returns the mutex of a session's stripe.
func (s *Service) lock(sessionID string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(sessionID))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// registered is an endpoint as this process last registered it, and when.
type registered struct {
	ep notifier.Endpoint
	at time.Time
}

// endpointRecheck is how long this process trusts that the engine still holds the endpoint it
// registered. Another process may register another version meanwhile (a channel's endpoint_url
// changed and changed back); registering again this often bounds how long that can last.
const endpointRecheck = 5 * time.Second

// ensureEndpoint registers ep with the engine unless this process registered it, as it is, less
// than endpointRecheck ago.
func (s *Service) ensureEndpoint(ctx context.Context, ep notifier.Endpoint) error {
	now := time.Now()
	s.epMu.Lock()
	prev, ok := s.endpoints[ep.ID]
	s.epMu.Unlock()
	if ok && prev.ep == ep && now.Sub(prev.at) < endpointRecheck {
		return nil
	}
	if err := s.engine.PutEndpoint(ctx, ep); err != nil {
		return err
	}
	s.epMu.Lock()
	if len(s.endpoints) >= s.maxRegistered {
		// Entries older than endpointRecheck are not trusted anyway: drop them, so the map holds
		// only the channels relayed to in the last few seconds.
		for id, r := range s.endpoints {
			if now.Sub(r.at) >= endpointRecheck {
				delete(s.endpoints, id)
			}
		}
	}
	if len(s.endpoints) < s.maxRegistered {
		s.endpoints[ep.ID] = registered{ep: ep, at: now}
	}
	s.epMu.Unlock()
	return nil
}

// maxRegistered bounds the endpoints this process remembers registering; past it (more channels
// relayed to within endpointRecheck) it registers every time.
const maxRegistered = 10_000

// ChannelDeleted drops a deleted channel's engine endpoint: messages still queued for its server
// are dead-lettered (endpoint_deleted) rather than sent to a channel that no longer exists, and
// the endpoint does not outlive the channel in Redis.
func (s *Service) ChannelDeleted(ctx context.Context, channelID string) error {
	id := ChannelEndpointID(channelID)
	s.forgetEndpoint(id)
	if err := s.engine.DeleteEndpoint(ctx, id); err != nil {
		return fmt.Errorf("sessions: drop the endpoint of deleted channel %s: %w", channelID, err)
	}
	return nil
}

// forgetEndpoint drops the cache entry, so the next ensureEndpoint registers it again.
func (s *Service) forgetEndpoint(id string) {
	s.epMu.Lock()
	delete(s.endpoints, id)
	s.epMu.Unlock()
}

// enqueue enqueues req for ep, registering ep again if the engine does not know it (it may have
// been deleted since this process cached it).
func (s *Service) enqueue(ctx context.Context, ep notifier.Endpoint, req notifier.Request) error {
	if err := s.ensureEndpoint(ctx, ep); err != nil {
		return err
	}
	_, err := s.engine.Enqueue(ctx, req)
	if errors.Is(err, notifier.ErrUnknownEndpoint) {
		s.forgetEndpoint(ep.ID)
		if err := s.ensureEndpoint(ctx, ep); err != nil {
			return err
		}
		_, err = s.engine.Enqueue(ctx, req)
	}
	return err
}

// channelEndpoint is the engine endpoint of a channel's server.
func (s *Service) channelEndpoint(ch *channels.Channel) notifier.Endpoint {
	return notifier.Endpoint{
		ID:                 ChannelEndpointID(ch.ChannelID),
		URL:                ch.EndpointURL(),
		Secret:             s.secret,
		RateLimitPerMinute: positiveInt(ch.ChannelMetadata["rate_limit_per_minute"]),
		MaxInFlight:        positiveInt(ch.ChannelMetadata["max_in_flight"]),
	}
}

// positiveInt reads an optional positive whole number from channel_metadata; anything else is 0
// (the engine's default).
func positiveInt(v any) int {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		x, err := n.Float64()
		if err != nil {
			return 0
		}
		f = x
	case string:
		x, err := strconv.Atoi(n)
		if err != nil {
			return 0
		}
		f = float64(x)
	default:
		return 0
	}
	if f < 1 || f > math.MaxInt32 || f != math.Trunc(f) {
		return 0
	}
	return int(f)
}

// engineError turns an engine refusal into the API's answer; other errors pass through.
func engineError(err error, field string) error {
	switch {
	case errors.Is(err, notifier.ErrBacklogFull):
		return httpx.Unavailable(5, "the delivery backlog is full; try again shortly")
	case errors.Is(err, notifier.ErrInvalidTarget):
		return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_target", Field: field,
			Message: err.Error(), Err: err}
	}
	return err
}

// timeFormat is how the relay writes times: RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

func ttlMS(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

// hashKey hashes an Idempotency-Key for storage (it may be long or sensitive).
func hashKey(k string) string {
	if k == "" {
		return ""
	}
	h := sha256.Sum256([]byte(k))
	return hex.EncodeToString(h[:])
}
