package redisx_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx"
	"github.com/heraldhq/herald/redisx/redistest"
)

func TestSlot(t *testing.T) {
	t.Parallel()
	// want is what CLUSTER KEYSLOT answers on Redis 7; hashes is the part of the key Redis hashes,
	// which must have the same slot.
	for _, c := range []struct {
		key, hashes string
		want        int
	}{
		{"123456789", "123456789", 12739}, // the CRC16-XMODEM check value, 0x31C3
		{"", "", 0},
		{"foo", "foo", 12182},
		{"somekey", "somekey", 11058},
		{"{user1000}.following", "user1000", 3443},
		{"{user1000}.followers", "user1000", 3443},
		{"foo{hash_tag}", "hash_tag", 2515},
		{"bar{hash_tag}", "hash_tag", 2515},
		{"foo{}{bar}", "foo{}{bar}", 8363}, // an empty tag: the whole key
		{"{}", "{}", 15257},                // an empty tag alone
		{"foo{{bar}}zap", "{bar", 4015},    // the first '{', then the first '}' after it
		{"{{}}", "{", 4092},                // the same: the tag is "{"
		{"a{b{c}d}", "b{c", 15725},         // a '{' inside the tag is part of it
		{"foo{bar}{zap}", "bar", 5061},     // the first tag only
		{"{a}{b}{c}", "a", 15495},          // the first tag of many
		{"x{y}}", "y", 12222},              // a second '}' changes nothing
		{"a{b}", "b", 3300},                // a tag at the end
		{"}{x}", "x", 16287},               // a '}' before the first '{' does not count
		{"foo{bar", "foo{bar", 15278},      // no '}' at all: the whole key
		{"foo}bar{", "foo}bar{", 11073},    // no '}' after the '{': the whole key
		{"{\xff\x00}z", "\xff\x00", 1023},  // bytes, not runes
		{"a\x00{\x00b}", "\x00b", 3300},    // NUL bytes (a leading NUL adds nothing to the CRC)
		{"héllo{wörld}", "wörld", 4850},    // UTF-8
		{"h{é}", "é", 10180},
		{"long{" + strings.Repeat("ab", 500) + "}", strings.Repeat("ab", 500), 15854},
	} {
		got := redisx.Slot(c.key)
		if got != c.want {
			t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.want)
		}
		if h := redisx.Slot(c.hashes); got != h {
			t.Errorf("Slot(%q) = %d, want %d, the slot of %q", c.key, got, h, c.hashes)
		}
	}
}

// TestSlotAgreesWithRedis compares Slot with CLUSTER KEYSLOT on a real cluster node for random
// keys made mostly of braces, so that every way a hash tag can be formed or not formed comes up.
func TestSlotAgreesWithRedis(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, seed>>1))
	const alphabet = "{}{}{}ab\x00\xff\xc3\xa9"
	keys := make([]string, 500)
	for i := range keys {
		b := make([]byte, rnd.IntN(12))
		for j := range b {
			b[j] = alphabet[rnd.IntN(len(alphabet))]
		}
		if i%5 == 0 { // some keys of random bytes, some long
			b = make([]byte, rnd.IntN(200))
			for j := range b {
				b[j] = byte(rnd.UintN(256))
			}
		}
		keys[i] = string(b)
	}

	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 1})
	node := cl.Nodes[0].Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmds := make([]*redis.IntCmd, len(keys))
	if _, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ClusterKeySlot(ctx, k)
		}
		return nil
	}); err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	for i, k := range keys {
		if got, want := redisx.Slot(k), int(cmds[i].Val()); got != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}
