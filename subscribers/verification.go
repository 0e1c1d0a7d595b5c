package subscribers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// VerifyTask is one url_verification handshake to run, as claimed from the queue.
type VerifyTask struct {
	ID    string
	URL   string
	Token string
	// Gen identifies the handshake request; FinishVerification applies a result only while it is
	// still the subscriber's latest request.
	Gen int64
}

// claimScript leases the handshakes that are due.
//
// KEYS[1] verification queue zset.
// ARGV[1] now (unix ms); ARGV[2] end of the lease (unix ms); ARGV[3] how many at most.
// Returns the claimed ids; their scores are moved to the end of the lease, so no other process
// claims them until it has passed (a crashed verifier's work comes back then).
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
`)

// dropScript removes a queue entry that needs no handshake, unless the subscriber changed since it
// was read (a change may have queued a new request under the same id).
//
// KEYS[1] versions hash; KEYS[2] verification queue zset.
// ARGV[1] id; ARGV[2] the version read (0: the subscriber was gone).
// Returns 1 when removed, 0 when the subscriber changed.
var dropScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if cur ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// ClaimVerifications leases up to max due handshakes for lease and returns them. Entries whose
// subscriber is gone or no longer pending are dropped on the way.
func (s *Store) ClaimVerifications(ctx context.Context, max int, lease time.Duration) ([]VerifyTask, error) {
	if max <= 0 {
		return nil, nil
	}
	now := s.now()
	ids, err := claimScript.Run(ctx, s.rdb, []string{s.k.verifyQueue()},
		now.UnixMilli(), now.Add(lease).UnixMilli(), max).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("subscribers: claim handshakes: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var docs, vers *redis.SliceCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		docs = p.HMGet(ctx, s.k.docs(), ids...)
		vers = p.HMGet(ctx, s.k.versions(), ids...)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("subscribers: read claimed subscribers: %w", err)
	}
	var tasks []VerifyTask
	for i, id := range ids {
		var ver int64
		if v, ok := vers.Val()[i].(string); ok {
			ver, _ = strconv.ParseInt(v, 10, 64)
		}
		doc, ok := docs.Val()[i].(string)
		if ok {
			r, err := decodeRecord(doc)
			if err != nil {
				return nil, err
			}
			if r.Status == StatusPending {
				tasks = append(tasks, VerifyTask{ID: id, URL: r.URL, Token: r.Token, Gen: r.VerifyGen})
				continue
			}
		}
		if err := dropScript.Run(ctx, s.rdb, []string{s.k.versions(), s.k.verifyQueue()}, id, ver).Err(); err != nil {
			return nil, fmt.Errorf("subscribers: drop handshake of %s: %w", id, err)
		}
	}
	return tasks, nil
}

// FinishVerification records a handshake's result: reason "" means it succeeded, else it says why
// it failed. The result applies only if the task is still the subscriber's latest handshake
// request for the same URL (a handshake of an old URL never marks a new one verified) and the
// subscriber is still pending; it reports whether it applied.
func (s *Store) FinishVerification(ctx context.Context, t VerifyTask, reason string) (bool, error) {
	applied := false
	_, err := s.modify(ctx, t.ID, func(r *record) (effects, error) {
		applied = t.current(r)
		if !applied {
			return effects{}, errNoChange
		}
		if reason == "" {
			r.Status, r.Verified, r.LastVerificationError = StatusVerified, true, ""
		} else {
			r.Status, r.Verified, r.LastVerificationError = StatusFailed, false, reason
		}
		return effects{verify: "done", clearHealth: true}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return applied, err
}

// NoteFailedTry records why a handshake try failed while the handshake goes on (it will be tried
// again): the subscriber stays pending and shows the reason in last_verification_error at once,
// rather than only once every try has failed. Like FinishVerification it applies only while the
// task is the subscriber's latest handshake request and the subscriber is pending; it reports
// whether it applied.
func (s *Store) NoteFailedTry(ctx context.Context, t VerifyTask, reason string) (bool, error) {
	applied := false
	_, err := s.modify(ctx, t.ID, func(r *record) (effects, error) {
		applied = t.current(r) && reason != ""
		if !applied || r.LastVerificationError == reason {
			return effects{}, errNoChange
		}
		r.LastVerificationError = reason
		return effects{}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return applied, err
}

// current reports whether t is still r's handshake to run: r is pending, and t was claimed for
// its latest handshake request, for its URL and token.
func (t VerifyTask) current(r *record) bool {
	return r.VerifyGen == t.Gen && r.URL == t.URL && r.Token == t.Token && r.Status == StatusPending
}

// ReleaseVerification makes a claimed handshake due again at once, for a verifier that stops
// before it finished it.
func (s *Store) ReleaseVerification(ctx context.Context, id string) error {
	err := s.rdb.ZAddXX(ctx, s.k.verifyQueue(), redis.Z{Score: float64(s.now().UnixMilli()), Member: id}).Err()
	if err != nil {
		return fmt.Errorf("subscribers: release handshake of %s: %w", id, err)
	}
	return nil
}

// PendingVerifications returns how many handshakes are queued or running.
func (s *Store) PendingVerifications(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.k.verifyQueue()).Result()
}
