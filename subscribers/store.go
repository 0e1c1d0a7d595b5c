package subscribers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/ids"
)

// Store keeps subscribers in Redis with the indexes fan-out (Targets, CountMatch) needs. It is
// safe for concurrent use by any number of goroutines and processes: every change is a
// compare-and-swap on the subscriber's version, applied with its index changes in one Lua script.
type Store struct {
	rdb redis.UniversalClient
	k   keys
	now func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now (tests move time forward with it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store whose keys start with prefix.
func NewStore(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	s := &Store{rdb: rdb, k: newKeys(prefix), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ErrExists: Create was given an id that is taken.
var ErrExists = errors.New("subscribers: subscriber id already exists")

// record is a subscriber as stored: the API's view plus the bookkeeping the API does not show.
type record struct {
	Subscriber
	// VerifyGen counts handshake requests. A handshake result applies only to the request it was
	// run for, so a result for an old URL never marks a new one verified.
	VerifyGen int64 `json:"verify_gen"`
}

func (r *record) clone() *record {
	c := *r
	c.ChannelIDs = slices.Clone(r.ChannelIDs)
	c.ChannelTags = slices.Clone(r.ChannelTags)
	c.ChatTypes = slices.Clone(r.ChatTypes)
	c.Types = slices.Clone(r.Types)
	return &c
}

func (r *record) public() *Subscriber {
	c := r.clone().Subscriber
	c.BreakerState, c.Health = "", nil
	c.normalize()
	return &c
}

func decodeRecord(doc string) (*record, error) {
	var r record
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return nil, fmt.Errorf("subscribers: decode stored document: %w", err)
	}
	return &r, nil
}

// indexKeys are the match indexes r belongs in: none unless it is active; else its channel ids'
// sets when it filters on channel ids, else its tags' sets when it filters on tags, else the set of
// subscribers that want every channel. Targets unions the same three kinds of set for a channel.
func (s *Store) indexKeys(r *record) []string {
	if r == nil || !r.Active() {
		return nil
	}
	var out []string
	switch {
	case len(r.ChannelIDs) > 0:
		for _, id := range r.ChannelIDs {
			out = append(out, s.k.byChannel(id))
		}
	case len(r.ChannelTags) > 0:
		for _, t := range r.ChannelTags {
			out = append(out, s.k.byTag(t))
		}
	default:
		out = append(out, s.k.anyChannel())
	}
	return out
}

// casScript writes (or deletes) one subscriber if its version is still the one read, moving it
// between match indexes and keeping its fan-out record in the same step.
//
// KEYS[1] docs hash, KEYS[2] versions hash, KEYS[3] all-ids zset, KEYS[4] verification queue
// zset, KEYS[5] failing hash, KEYS[6] fan-out records hash, KEYS[7] generation counter, KEYS[8]
// count cache hash, KEYS[9 .. 8+ARGV[4]] index zsets to remove the id from, the rest index zsets
// to add it to.
// ARGV[1] id; ARGV[2] expected version (0: must not exist); ARGV[3] the new JSON document, or ""
// to delete; ARGV[4] how many index keys to remove from; ARGV[5] the verification queue: "" leave
// it, "done" remove the id, else the due time (unix ms) to queue it at; ARGV[6] "1" clears the
// failure record; ARGV[7] the new fan-out record ("" when the subscriber is not active); ARGV[8]
// "1" when the write changes who is active or a fan-out record: the generation is incremented and
// the cached counts dropped.
// Returns the new version (0 after a delete), or -1 when the stored version differs (conflict).
var casScript = redis.NewScript(`
local id = ARGV[1]
local cur = tonumber(redis.call('HGET', KEYS[2], id) or '0')
if cur ~= tonumber(ARGV[2]) then return -1 end
local nrem = tonumber(ARGV[4])
for i = 9, 8 + nrem do redis.call('ZREM', KEYS[i], id) end
for i = 9 + nrem, #KEYS do redis.call('ZADD', KEYS[i], 0, id) end
if ARGV[7] == '' then
  redis.call('HDEL', KEYS[6], id)
else
  redis.call('HSET', KEYS[6], id, ARGV[7])
end
if ARGV[8] == '1' then
  redis.call('INCR', KEYS[7])
  redis.call('DEL', KEYS[8])
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  return 0
end
local v = cur + 1
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('HSET', KEYS[2], id, v)
redis.call('ZADD', KEYS[3], 0, id)
if ARGV[5] == 'done' then
  redis.call('ZREM', KEYS[4], id)
elseif ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], id)
end
if ARGV[6] == '1' then redis.call('HDEL', KEYS[5], id) end
return v
`)

// effects are what a write does besides replacing the document.
type effects struct {
	verify      string // "" leave the queue, "done" remove from it, "queue" queue a handshake now
	clearHealth bool
}

// cas applies one write; old is the record read at version expect (nil when creating), r the new
// record (nil to delete).
func (s *Store) cas(ctx context.Context, id string, expect int64, old, r *record, eff effects) (int64, error) {
	rem, add := s.indexKeys(old), s.indexKeys(r)
	keys := append([]string{s.k.docs(), s.k.versions(), s.k.all(), s.k.verifyQueue(), s.k.failing(),
		s.k.fan(), s.k.gen(), s.k.counts()}, rem...)
	keys = append(keys, add...)
	oldFan, newFan := encodeFan(old), encodeFan(r)
	bump := ""
	if oldFan != newFan {
		bump = "1"
	}
	doc := ""
	if r != nil {
		b, err := json.Marshal(r)
		if err != nil {
			return 0, fmt.Errorf("subscribers: encode document: %w", err)
		}
		doc = string(b)
	}
	verify := eff.verify
	if verify == "queue" {
		verify = strconv.FormatInt(s.now().UnixMilli(), 10)
	}
	clear := ""
	if eff.clearHealth {
		clear = "1"
	}
	v, err := casScript.Run(ctx, s.rdb, keys, id, expect, doc, len(rem), verify, clear, newFan, bump).Int64()
	if err != nil {
		return 0, fmt.Errorf("subscribers: write %s: %w", id, err)
	}
	if v < 0 {
		return 0, ErrConflict
	}
	return v, nil
}

// load reads a subscriber and its version in one transaction.
func (s *Store) load(ctx context.Context, id string) (*record, int64, error) {
	var doc, ver *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		doc = p.HGet(ctx, s.k.docs(), id)
		ver = p.HGet(ctx, s.k.versions(), id)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("subscribers: read %s: %w", id, err)
	}
	if errors.Is(doc.Err(), redis.Nil) {
		return nil, 0, ErrNotFound
	}
	r, err := decodeRecord(doc.Val())
	if err != nil {
		return nil, 0, err
	}
	v, _ := ver.Int64()
	return r, v, nil
}

// errNoChange tells modify that fn decided not to write.
var errNoChange = errors.New("no change")

// maxCASTries bounds the read-modify-write loop; past it the caller gets ErrConflict.
const maxCASTries = 16

// modify reads id, lets fn change a copy, and writes it back if nothing changed in between,
// retrying on a conflict. fn returns errNoChange to leave the subscriber as it is.
func (s *Store) modify(ctx context.Context, id string, fn func(r *record) (effects, error)) (*record, error) {
	for range maxCASTries {
		old, ver, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		r := old.clone()
		eff, err := fn(r)
		if errors.Is(err, errNoChange) {
			return old, nil
		}
		if err != nil {
			return nil, err
		}
		r.UpdatedAt = s.now().UTC()
		if _, err := s.cas(ctx, id, ver, old, r, eff); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, ErrConflict
}

// Create stores a new subscriber, pending verification, and queues its handshake. sub.ID may be
// set by the caller (it must be a valid id) or left empty for a generated one. The status fields
// and timestamps are set here. It returns the stored subscriber.
func (s *Store) Create(ctx context.Context, sub *Subscriber) (*Subscriber, error) {
	r := &record{Subscriber: *sub, VerifyGen: 1}
	if r.ID == "" {
		r.ID = ids.New("sub")
	} else if !ids.Valid(r.ID) {
		return nil, fmt.Errorf("subscribers: invalid id %q", r.ID)
	}
	now := s.now().UTC()
	r.Status, r.Verified, r.LastVerificationError, r.DisabledReason, r.BreakerState = StatusPending, false, "", "", ""
	r.CreatedAt, r.UpdatedAt = now, now
	r.normalize()
	if _, err := s.cas(ctx, r.ID, 0, nil, r, effects{verify: "queue", clearHealth: true}); errors.Is(err, ErrConflict) {
		return nil, ErrExists
	} else if err != nil {
		return nil, err
	}
	return r.public(), nil
}

// Get returns the subscriber with id, secret and token included, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Subscriber, error) {
	doc, err := s.rdb.HGet(ctx, s.k.docs(), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("subscribers: read %s: %w", id, err)
	}
	r, err := decodeRecord(doc)
	if err != nil {
		return nil, err
	}
	return r.public(), nil
}

// getMany loads the records of ids in order; entries for ids that are gone are nil.
func (s *Store) getMany(ctx context.Context, ids []string) ([]*record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.k.docs(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("subscribers: read %d subscribers: %w", len(ids), err)
	}
	out := make([]*record, len(ids))
	for i, v := range vals {
		doc, ok := v.(string)
		if !ok {
			continue
		}
		if out[i], err = decodeRecord(doc); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Page sizes for List and Targets.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > MaxLimit:
		return MaxLimit
	}
	return limit
}

// List returns up to limit subscribers ordered by id, starting after the id after, without their
// secrets and tokens, and the cursor of the next page ("" on the last page).
func (s *Store) List(ctx context.Context, after string, limit int) ([]*Subscriber, string, error) {
	limit = clampLimit(limit)
	ids, err := s.rdb.ZRangeByLex(ctx, s.k.all(), &redis.ZRangeBy{Min: lexAfter(after), Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("subscribers: list: %w", err)
	}
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	recs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]*Subscriber, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			out = append(out, r.public().Public())
		}
	}
	next := ""
	if more {
		next = ids[len(ids)-1]
	}
	return out, next, nil
}

// lexAfter is the ZRANGEBYLEX lower bound for "ids after after".
func lexAfter(after string) string {
	if after == "" {
		return "-"
	}
	return "(" + after
}

// Update changes a subscriber: fn edits a copy (any of the fields a client may set), and the store
// writes it if nothing else changed it meanwhile (fn may run more than once). A change of URL or
// token, or any update of a disabled subscriber, sends it back to pending and queues a handshake.
// fn may return an error to abort; Update returns it as it is.
func (s *Store) Update(ctx context.Context, id string, fn func(sub *Subscriber) error) (*Subscriber, error) {
	return s.update(ctx, id, true, fn)
}

// SetSecret replaces the signing secret. register runs before the write (for the engine to learn
// the new secret) and may abort it. Unlike Update it leaves a disabled subscriber disabled.
func (s *Store) SetSecret(ctx context.Context, id, secret string, register func(sub *Subscriber) error) (*Subscriber, error) {
	return s.update(ctx, id, false, func(sub *Subscriber) error {
		sub.Secret = secret
		return register(sub)
	})
}

func (s *Store) update(ctx context.Context, id string, reenable bool, fn func(sub *Subscriber) error) (*Subscriber, error) {
	r, err := s.modify(ctx, id, func(r *record) (effects, error) {
		before := r.clone()
		sub := r.public()
		if err := fn(sub); err != nil {
			return effects{}, err
		}
		// Only the fields a client sets are taken from fn's copy.
		r.URL, r.Token, r.Secret, r.Description = sub.URL, sub.Token, sub.Secret, sub.Description
		r.ChannelIDs, r.ChannelTags, r.ChatTypes, r.Types = sub.ChannelIDs, sub.ChannelTags, sub.ChatTypes, sub.Types
		r.RateLimitPerMinute, r.MaxInFlight, r.Ordered = sub.RateLimitPerMinute, sub.MaxInFlight, sub.Ordered
		r.normalize()
		if r.URL != before.URL || r.Token != before.Token || (reenable && before.Status == StatusDisabled) {
			return requestVerification(r), nil
		}
		return effects{}, nil
	})
	if err != nil {
		return nil, err
	}
	return r.public(), nil
}

// requestVerification sends r back to pending with a new handshake request.
func requestVerification(r *record) effects {
	r.VerifyGen++
	r.Status, r.Verified, r.LastVerificationError, r.DisabledReason = StatusPending, false, "", ""
	return effects{verify: "queue", clearHealth: true}
}

// RequestVerification sends the subscriber back to pending and queues a new handshake (POST
// /subscribers/{id}/verify). A disabled subscriber is re-enabled by it: it gets notifications
// again once the handshake succeeds.
func (s *Store) RequestVerification(ctx context.Context, id string) (*Subscriber, error) {
	r, err := s.modify(ctx, id, func(r *record) (effects, error) { return requestVerification(r), nil })
	if err != nil {
		return nil, err
	}
	return r.public(), nil
}

// Delete removes a subscriber, its index entries, its queued handshake and its failure record.
func (s *Store) Delete(ctx context.Context, id string) error {
	for range maxCASTries {
		old, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if _, err := s.cas(ctx, id, ver, old, nil, effects{}); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		return nil
	}
	return ErrConflict
}

// Disable turns a subscriber off for its health (it stops matching) with a reason a person can
// act on. It reports whether it changed anything: a subscriber already disabled keeps its first
// reason. An update (PATCH) or a new handshake request re-enables it.
func (s *Store) Disable(ctx context.Context, id, reason string) (bool, error) {
	changed := false
	_, err := s.modify(ctx, id, func(r *record) (effects, error) {
		changed = r.Status != StatusDisabled
		if !changed {
			return effects{}, errNoChange
		}
		r.Status, r.DisabledReason = StatusDisabled, reason
		return effects{verify: "done", clearHealth: true}, nil
	})
	return changed, err
}
