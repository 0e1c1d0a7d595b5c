package verifier

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/subscribers"
)

// Config configures a Service. Zero values take the defaults named on each field.
type Config struct {
	Store *subscribers.Store
	// OnVerified is called after a handshake succeeded and its result was recorded, with the
	// subscriber's id: the daemon registers the (possibly new) URL with the delivery engine then.
	OnVerified func(ctx context.Context, id string)
	// Policy is the operator's target rules; the client refuses private addresses at dial time
	// unless they are allowed.
	Policy  egress.Policy
	Version string // sent as User-Agent: herald/<version>; default "dev"
	// Timeout bounds one try (default 10 s).
	Timeout time.Duration
	// Backoff are the waits before each retry (default 2 s, 5 s: three tries in all). Set it
	// to an empty, non-nil slice for a single try.
	Backoff []time.Duration
	// Lease is how long a claimed handshake is reserved for this process (default: long enough
	// for every try and wait, plus 30 s). A crashed process's handshakes come back after it.
	Lease time.Duration
	// PollInterval is how often the queue is read when nothing nudges the service (default 1 s).
	PollInterval time.Duration
	// Concurrency bounds the handshakes run at once by this process (default 8).
	Concurrency int
	// Client sends the handshakes (default egress.NewClient with Policy and Timeout).
	Client *http.Client
	// Registerer, when set, gets herald_verifications_total{result}.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// DefaultBackoff is the waits before the second and third tries.
var DefaultBackoff = []time.Duration{2 * time.Second, 5 * time.Second}

// Service runs the handshakes queued in the subscribers store: it claims due ones with a lease,
// runs each (with retries) in its own goroutine, and records the result. It owns every goroutine
// it starts; Stop waits for them.
type Service struct {
	cfg     Config
	ua      string
	results *prometheus.CounterVec

	nudge chan struct{}

	// life owns the loop and the handshakes it starts. Its Stopping signal: claim nothing more,
	// skip remaining retries; its Context, the handshakes', is cancelled at Stop's deadline.
	life *lifecycle.Service

	mu      sync.Mutex
	running int
}

// New returns a Service; Start runs it.
func New(cfg Config) *Service {
	cfg.Version = cmp.Or(cfg.Version, "dev")
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Second)
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Duration(len(cfg.Backoff)+1)*cfg.Timeout + 30*time.Second
		for _, b := range cfg.Backoff {
			cfg.Lease += b
		}
	}
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 8)
	if cfg.Client == nil {
		cfg.Client = egress.NewClient(egress.ClientOptions{Policy: cfg.Policy, Timeout: cfg.Timeout, MaxIdleConnsPerHost: 2})
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, ua: "herald/" + cfg.Version, nudge: make(chan struct{}, 1), life: lifecycle.NewService("verifier", "handshakes")}
	s.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_verifications_total",
		Help: "url_verification handshakes finished, by result (verified, failed).",
	}, []string{"result"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.results)
	}
	return s
}

// Nudge tells the service to look at the queue now (a handshake was just queued). It never blocks.
func (s *Service) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Start starts the service; handshakes left pending by an earlier run (or a crashed process, once
// its lease passed) are picked up at once. A service starts once: a second Start returns an error
// wrapping lifecycle.ErrStarted, a Start after Stop one wrapping lifecycle.ErrStopped.
func (s *Service) Start(ctx context.Context) error {
	// The handshakes outlive ctx: Stop decides when they end.
	return s.life.Start(ctx, func(context.Context) error {
		s.life.Go(s.loop)
		return nil
	})
}

// Stop stops claiming handshakes, lets the tries in flight finish until ctx ends, then cancels
// them. Handshakes that did not finish are put back in the queue for the next process. Only the
// first call does anything: later ones, and a Stop before Start, return nil.
func (s *Service) Stop(ctx context.Context) error { return s.life.Stop(ctx) }

func (s *Service) loop() {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		s.claim()
		select {
		case <-s.life.Stopping():
			return
		case <-s.nudge:
		case <-t.C:
		}
	}
}

// claim takes as many due handshakes as there is room for and starts them.
func (s *Service) claim() {
	s.mu.Lock()
	free := s.cfg.Concurrency - s.running
	s.mu.Unlock()
	if free <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.life.Context(), 5*time.Second)
	tasks, err := s.cfg.Store.ClaimVerifications(ctx, free, s.cfg.Lease)
	cancel()
	if err != nil {
		s.cfg.Log.Warn("verifier: could not read the handshake queue", "err", err)
		return
	}
	for _, t := range tasks {
		s.mu.Lock()
		s.running++
		s.mu.Unlock()
		s.life.Go(func() { s.work(t) })
	}
}

func (s *Service) work(t subscribers.VerifyTask) {
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		s.Nudge() // room for another
	}()
	log := s.cfg.Log.With("subscriber_id", t.ID, "url", egress.Redact(t.URL))
	reason, err := s.run(t, log)
	// Recording the result must not be cut short by Stop's cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.life.Context()), 5*time.Second)
	defer cancel()
	if errors.Is(err, ErrCanceled) {
		if err := s.cfg.Store.ReleaseVerification(ctx, t.ID); err != nil {
			log.Warn("verifier: could not put an unfinished handshake back; it comes back when its lease ends", "err", err)
		}
		return
	}
	if err != nil {
		log.Error("verifier: handshake could not run", "err", err)
		return
	}
	applied, err := s.cfg.Store.FinishVerification(ctx, t, reason)
	switch {
	case err != nil:
		log.Warn("verifier: could not record a handshake result; it runs again when its lease ends", "err", err)
	case !applied:
		log.Info("verifier: handshake result dropped: the subscriber changed or was deleted meanwhile")
	case reason == "":
		s.results.WithLabelValues("verified").Inc()
		log.Info("subscriber verified")
		if s.cfg.OnVerified != nil {
			s.cfg.OnVerified(ctx, t.ID)
		}
	default:
		s.results.WithLabelValues("failed").Inc()
		log.Warn("subscriber verification failed", "reason", reason)
	}
}

// run tries the handshake until it succeeds or the tries are used up, and returns the last
// reason ("" on success). It returns ErrCanceled when the service stops first.
func (s *Service) run(t subscribers.VerifyTask, log *slog.Logger) (string, error) {
	var reason string
	for try := 0; ; try++ {
		// A handshake claimed as Stop begins (it may be one another worker has just put back) is
		// put back too, not started.
		select {
		case <-s.life.Stopping():
			return "", ErrCanceled
		default:
		}
		var err error
		reason, err = Handshake(s.life.Context(), s.cfg.Client, t.URL, t.Token, s.ua, s.cfg.Timeout)
		if err != nil || reason == "" {
			return reason, err
		}
		log.Debug("verifier: handshake try failed", "try", try+1, "reason", reason)
		if try >= len(s.cfg.Backoff) || strings.HasPrefix(reason, egress.ErrRefused.Error()) {
			return reason, nil // a refused target stays refused: no retry
		}
		s.noteFailedTry(t, reason, log)
		timer := time.NewTimer(s.cfg.Backoff[try])
		select {
		case <-timer.C:
		case <-s.life.Stopping():
			timer.Stop()
			return "", ErrCanceled
		}
	}
}

// noteFailedTry shows the reason of a failed try on the subscriber while its handshake is retried.
// A failure to write it is only logged: the final result is recorded all the same. Stop does not
// wait for it: it only shows the reason early.
func (s *Service) noteFailedTry(t subscribers.VerifyTask, reason string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(s.life.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.NoteFailedTry(ctx, t, reason); err != nil {
		log.Warn("verifier: could not show a failed handshake try on the subscriber", "err", err)
	}
}
