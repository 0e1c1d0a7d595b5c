package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/egress"
)

// Store is the channel registry on Redis. It is safe for concurrent use by many goroutines and by
// many herald processes sharing one Redis.
type Store struct {
	rdb         redis.UniversalClient
	k           keys
	policy      egress.Policy
	maxAttempts int
	minBudget   int // MinScanBudget; tests lower it to see partial pages

	hooksMu  sync.RWMutex
	onDelete []func(ctx context.Context, id string)
}

// OnDelete registers f to be called after a channel is deleted, from the deleting request (keep
// it quick). The relay uses it to drop the channel's engine endpoint.
func (s *Store) OnDelete(f func(ctx context.Context, id string)) {
	s.hooksMu.Lock()
	s.onDelete = append(s.onDelete, f)
	s.hooksMu.Unlock()
}

// Option configures a Store.
type Option func(*Store)

// WithPolicy sets the target rules endpoint_url must obey on Create and Update. Without it the
// strict default applies: https only, no private addresses.
func WithPolicy(p egress.Policy) Option { return func(s *Store) { s.policy = p } }

// NewStore returns the registry kept under prefix in rdb.
func NewStore(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	s := &Store{rdb: rdb, k: newKeys(prefix), maxAttempts: 64, minBudget: MinScanBudget}
	for _, o := range opts {
		o(s)
	}
	return s
}

// envelope is what a document key holds: the channel and a version that every write bumps.
type envelope struct {
	V int64    `json:"v"`
	C *Channel `json:"c"`
}

func encodeDoc(v int64, c *Channel) (string, error) {
	b, err := json.Marshal(envelope{V: v, C: c})
	if err != nil {
		return "", fmt.Errorf("channels: encode %q: %w", c.ChannelID, err)
	}
	return string(b), nil
}

// decodeDoc reads a stored envelope. Numbers in channel_metadata stay json.Number so they are
// served back exactly as they were sent.
func decodeDoc(raw string) (*envelope, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var e envelope
	if err := dec.Decode(&e); err != nil || e.C == nil {
		return nil, fmt.Errorf("channels: stored document is corrupt: %v", err)
	}
	if e.C.ChannelTags == nil || e.C.ChannelMetadata == nil {
		e.C = normalize(e.C) // stored documents are normalized already; this only fills defaults
	}
	return &e, nil
}

// createScript stores a new channel and indexes it, unless the id is taken.
//
// KEYS[1]   the channel's document (keys.doc)
// KEYS[2]   the all-channels index (keys.all)
// KEYS[3..] the tag indexes of the channel's tags (keys.tag)
// ARGV[1]   channel id
// ARGV[2]   the document to store
// Returns 1 when created, 0 when the id already exists (nothing written).
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
for i = 3, #KEYS do
  redis.call('ZADD', KEYS[i], 0, ARGV[1])
end
return 1
`)

// updateScript is the compare-and-set behind Update: it writes the new document and moves the
// channel between tag indexes only if the document is still exactly the one the caller read, so
// the indexes can never disagree with the documents however updates interleave.
//
// KEYS[1]            the channel's document
// KEYS[2..1+ARGV[4]] tag indexes to remove the channel from (tags dropped by the update)
// KEYS[2+ARGV[4]..]  tag indexes to add the channel to (tags added by the update)
// ARGV[1]            channel id
// ARGV[2]            the document as the caller read it (it holds the version)
// ARGV[3]            the new document (version + 1)
// ARGV[4]            how many removal keys follow KEYS[1]
// Returns 1 when written, 0 when the channel no longer exists, -1 when the document changed since
// the caller read it (nothing written; the caller reads again and retries).
var updateScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cur ~= ARGV[2] then
  return -1
end
redis.call('SET', KEYS[1], ARGV[3])
local n = tonumber(ARGV[4])
for i = 2, n + 1 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
for i = n + 2, #KEYS do
  redis.call('ZADD', KEYS[i], 0, ARGV[1])
end
return 1
`)

// deleteScript removes a channel and its index entries if the document is still the one the
// caller read (whose tags name the index keys).
//
// KEYS[1]   the channel's document
// KEYS[2]   the all-channels index
// KEYS[3..] the tag indexes of the tags in the document as read
// ARGV[1]   channel id
// ARGV[2]   the document as the caller read it
// Returns 1 when deleted, 0 when there was no such channel, -1 when the document changed since the
// caller read it (nothing deleted; the caller retries).
var deleteScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cur ~= ARGV[2] then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 1
`)

func (s *Store) checkURL(u string) error {
	_, err := s.policy.CheckURL(u)
	return err
}

// Create stores a new channel and returns it as stored (defaults filled, repeated tags dropped).
// It returns ErrExists when the id is taken (of two racing creates exactly one wins) and a 400
// *httpx.Error wrapping ErrInvalid when a field is not valid.
func (s *Store) Create(ctx context.Context, c *Channel) (*Channel, error) {
	c = normalize(c)
	if err := validate(c, s.checkURL); err != nil {
		return nil, err
	}
	doc, err := encodeDoc(1, c)
	if err != nil {
		return nil, err
	}
	ks := make([]string, 0, 2+len(c.ChannelTags))
	ks = append(ks, s.k.doc(c.ChannelID), s.k.all())
	for _, t := range c.ChannelTags {
		ks = append(ks, s.k.tag(t))
	}
	n, err := createScript.Run(ctx, s.rdb, ks, c.ChannelID, doc).Int()
	if err != nil {
		return nil, fmt.Errorf("channels: create %q: %w", c.ChannelID, err)
	}
	if n == 0 {
		return nil, ErrExists
	}
	return c, nil
}

// Get returns the channel with that id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Channel, error) {
	e, _, err := s.read(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.C, nil
}

func (s *Store) read(ctx context.Context, id string) (*envelope, string, error) {
	raw, err := s.rdb.Get(ctx, s.k.doc(id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("channels: get %q: %w", id, err)
	}
	e, err := decodeDoc(raw)
	if err != nil {
		return nil, "", err
	}
	return e, raw, nil
}

// Update applies p to the channel and returns the result: ErrNotFound when there is no such
// channel, a 400 *httpx.Error wrapping ErrInvalid when the result is not a valid channel (nothing
// is written), ErrBusy when concurrent writers kept winning the race.
//
// It reads the document, applies the patch in Go, and writes with updateScript, which succeeds
// only if the document has not changed in between; otherwise it reads again and retries.
func (s *Store) Update(ctx context.Context, id string, p Patch) (*Channel, error) {
	for attempt := 0; attempt < s.maxAttempts; attempt++ {
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		e, raw, err := s.read(ctx, id)
		if err != nil {
			return nil, err
		}
		c := normalize(p.apply(e.C))
		if err := validate(c, s.checkURL); err != nil {
			return nil, err
		}
		doc, err := encodeDoc(e.V+1, c)
		if err != nil {
			return nil, err
		}
		if same, _ := encodeDoc(e.V, c); same == raw {
			return c, nil // nothing changes: no write, no version bump
		}
		removed, added := tagDiff(e.C.ChannelTags, c.ChannelTags)
		ks := make([]string, 0, 1+len(removed)+len(added))
		ks = append(ks, s.k.doc(id))
		for _, t := range removed {
			ks = append(ks, s.k.tag(t))
		}
		for _, t := range added {
			ks = append(ks, s.k.tag(t))
		}
		n, err := updateScript.Run(ctx, s.rdb, ks, id, raw, doc, len(removed)).Int()
		if err != nil {
			return nil, fmt.Errorf("channels: update %q: %w", id, err)
		}
		switch n {
		case 1:
			return c, nil
		case 0:
			return nil, ErrNotFound
		}
	}
	return nil, fmt.Errorf("channels: update %q: %w", id, ErrBusy)
}

// Delete removes the channel and its index entries, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	for attempt := 0; attempt < s.maxAttempts; attempt++ {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		e, raw, err := s.read(ctx, id)
		if err != nil {
			return err
		}
		ks := make([]string, 0, 2+len(e.C.ChannelTags))
		ks = append(ks, s.k.doc(id), s.k.all())
		for _, t := range e.C.ChannelTags {
			ks = append(ks, s.k.tag(t))
		}
		n, err := deleteScript.Run(ctx, s.rdb, ks, id, raw).Int()
		if err != nil {
			return fmt.Errorf("channels: delete %q: %w", id, err)
		}
		switch n {
		case 1:
			s.hooksMu.RLock()
			hooks := s.onDelete
			s.hooksMu.RUnlock()
			for _, f := range hooks {
				f(ctx, id)
			}
			return nil
		case 0:
			return ErrNotFound
		}
	}
	return fmt.Errorf("channels: delete %q: %w", id, ErrBusy)
}

// backoff waits before retry number attempt (none before the first two tries), with jitter so
// that writers that collided spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return ctx.Err()
	}
	d := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
