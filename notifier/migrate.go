package notifier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// recordLayout is the version of the record and endpoint field names in Redis: 1 had short
// names (st, sid, acc, ...), 2 has readable ones (state.go). An engine starting on data of an
// older layout renames the fields of every record and endpoint before it works (migrate), so an
// upgrade loses nothing. Upgrade a fleet by stopping the old processes first: an old process
// cannot read the new fields.
const recordLayout = 2

// layout1 maps each field of layout 1 to its name now.
var layout1 = map[string]string{
	// records
	"ep": string(fieldEndpoint), "evt": string(fieldEvent), "sub": string(fieldSubscriber),
	"ok": string(fieldLine), "st": string(fieldStatus), "n": string(fieldTries),
	"c": string(fieldCreated), "acc": string(fieldAccepted), "na": string(fieldNext),
	"dr": string(fieldDeadReason), "dat": string(fieldFinished), "sid": string(fieldEntry),
	"att": string(fieldAttempts),
	// endpoints
	"sec": string(epFieldSecret), "psec": string(epFieldPrevSecret), "pexp": string(epFieldPrevUntil),
	"rate": string(epFieldRate), "mif": string(epFieldInFlight), "ord": string(epFieldOrdered),
}

// migrateScript renames the layout-1 fields of the keys in ARGV[2...] (records and endpoints).
// A key of the current layout costs one look: every layout-1 record has "st" and every layout-1
// endpoint "mif". Returns how many keys it changed.
var migrateScript = script(`
local renames = {` + luaRenames() + `}
local changed = 0
for i = 2, #ARGV do
  local k = ARGV[i]
  if redis.call('HEXISTS', k, 'st') == 1 or redis.call('HEXISTS', k, 'mif') == 1 then
    for old, new in pairs(renames) do
      local v = redis.call('HGET', k, old)
      if v then
        redis.call('HSET', k, new, v)
        redis.call('HDEL', k, old)
      end
    end
    changed = changed + 1
  end
end
return changed
`)

func luaRenames() string {
	var b strings.Builder
	for _, old := range slices.Sorted(maps.Keys(layout1)) { // one script text, one SHA, in every process
		b.WriteString("['" + old + "'] = '" + layout1[old] + "', ")
	}
	return b.String()
}

// migrate brings the engine's records and endpoints to recordLayout, once: the layout key says
// when it is done. Safe to run by several engines at once (a renamed key is left as it is).
func (e *Engine) migrate(ctx context.Context) error {
	v, err := e.rdb.Get(ctx, e.base().k.layout()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if v == strconv.Itoa(recordLayout) {
		return nil
	}
	changed := 0
	for _, match := range []string{e.base().k.record("*"), e.base().k.endpoint("*")} {
		n, err := e.migrateMatching(ctx, match)
		if err != nil {
			return err
		}
		changed += n
	}
	if changed > 0 {
		e.cfg.Logger.Info("delivery records migrated to the current layout", "keys", changed, "layout", recordLayout)
	}
	return e.rdb.Set(ctx, e.base().k.layout(), recordLayout, 0).Err()
}

// migrateMatching runs migrateScript over the keys matching match, 500 at a time. Records of the
// old layout are all in shard 0 (it predates sharding), so on a Cluster they are all on the master
// that owns its slot.
func (e *Engine) migrateMatching(ctx context.Context, match string) (int, error) {
	scan := func(ctx context.Context, c redis.Cmdable) (int, error) {
		total := 0
		iter := c.Scan(ctx, 0, match, 500).Iterator()
		batch := []any{e.base().k.p}
		flush := func() error {
			if len(batch) == 1 {
				return nil
			}
			n, err := migrateScript.Run(ctx, e.rdb, []string{e.base().k.stream()}, batch...).Int()
			total += n
			batch = batch[:1]
			return err
		}
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) > 500 {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return total, err
		}
		return total, flush()
	}
	cc, ok := e.rdb.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, e.rdb)
	}
	var total atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := scan(ctx, c)
		total.Add(int64(n))
		return err
	})
	if err != nil {
		return int(total.Load()), fmt.Errorf("migrate %s: %w", match, err)
	}
	return int(total.Load()), nil
}
