package notifier

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testutil"
	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/webhooksig"
)

// orderLog records the webhook-ids a receiver got, in order.
type orderLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *orderLog) add(id string) {
	l.mu.Lock()
	l.ids = append(l.ids, id)
	l.mu.Unlock()
}

func (l *orderLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

// orderedReceiver is an Ordered endpoint "ord1" whose receiver logs what it gets.
func orderedReceiver(t *testing.T, e *Engine) *orderLog {
	t.Helper()
	log := &orderLog{}
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		log.add(r.Header.Get(webhooksig.HeaderID))
		w.WriteHeader(http.StatusNoContent)
	})
	putEndpoint(t, e, Endpoint{ID: "ord1", URL: rc.URL, Ordered: true, RateLimitPerMinute: 1_000_000})
	return log
}

// A delivery with a seq waits in its line's gate until the watermark reaches its seq, then joins
// the line in seq order, whatever order it was enqueued in; one whose seq the watermark has
// reached joins at once. A lower watermark changes nothing. Deliveries without a line, and lines
// without seqs (the relay's), never wait.
func TestGatedDeliveriesJoinTheirLineInSeqOrder(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx := context.Background()
	log := orderedReceiver(t, e)
	free := newReceiver(t, nil)
	putEndpoint(t, e, Endpoint{ID: "free", URL: free.URL, RateLimitPerMinute: 1_000_000})
	ord := func(id string, seq int64) Request {
		return Request{ID: id, EndpointID: "ord1", Seq: seq, Body: []byte(`{}`)}
	}

	enqueue(t, e, ord("s12", 12), ord("s11", 11),
		Request{ID: "unordered", EndpointID: "free", Seq: 12, Body: []byte(`{}`)},
		Request{ID: "keyed", EndpointID: "free", OrderingKey: "session", Body: []byte(`{}`)})
	waitStatus(t, e, "unordered", StatusDelivered, 5*time.Second)
	waitStatus(t, e, "keyed", StatusDelivered, 5*time.Second)
	testutil.Never(t, 200*time.Millisecond, "a delivery past the watermark was sent", func() bool { return len(log.got()) > 0 })
	if d, err := e.Get(ctx, "s12"); err != nil || d.Waiting == nil || d.Waiting.Reason != WaitOrdered {
		t.Errorf("a gated delivery reads %+v (%v), want it waiting for %s", d, err, WaitOrdered)
	}

	raise := func(w int64) {
		t.Helper()
		if err := e.RaiseWatermark(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	raise(11)
	waitStatus(t, e, "s11", StatusDelivered, 5*time.Second)
	testutil.Never(t, 200*time.Millisecond, "s12 was sent before the watermark reached it", func() bool { return len(log.got()) > 1 })
	raise(13)
	waitStatus(t, e, "s12", StatusDelivered, 5*time.Second)

	raise(5)                                      // lower: the watermark stays at 13
	enqueue(t, e, ord("s13", 13), ord("s14", 14)) // 13 is the watermark itself: it goes at once
	waitStatus(t, e, "s13", StatusDelivered, 5*time.Second)
	testutil.Never(t, 200*time.Millisecond, "s14 was sent before the watermark reached it", func() bool { return len(log.got()) > 3 })
	raise(14)
	waitStatus(t, e, "s14", StatusDelivered, 5*time.Second)

	if got, want := log.got(), []string{"s11", "s12", "s13", "s14"}; !slices.Equal(got, want) {
		t.Errorf("the ordered endpoint got %v, want %v", got, want)
	}
	k := e.base().k
	if n := b.rdb.Exists(ctx, k.gate("ep:ord1"), k.gated(), k.line("ep:ord1")).Val(); n != 0 {
		t.Errorf("%d of the line's gate, the gated index and the line left behind", n)
	}
	if w := b.rdb.Get(ctx, k.watermark()).Val(); w != "14" {
		t.Errorf("the shard's watermark is %q, want 14", w)
	}
}

// A gated delivery enqueued again is not duplicated, and a replay joins its line at once, at the
// tail, ahead of the deliveries still gated: a replay is accepted anew, with no seq.
func TestReplayAndReenqueueOfGatedDeliveries(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, nil)
	ctx := context.Background()
	log := orderedReceiver(t, e)
	enqueue(t, e, Request{ID: "first", EndpointID: "ord1", Seq: 1, Body: []byte(`{}`)})
	if err := e.RaiseWatermark(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "first", StatusDelivered, 5*time.Second)
	gated := Request{ID: "gated", EndpointID: "ord1", Seq: 3, Body: []byte(`{}`)}
	enqueue(t, e, gated)
	enqueue(t, e, gated) // a resumed expansion enqueues it again: a no-op
	if err := e.Retry(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the replay", func() bool { return len(log.got()) == 2 })
	if err := e.RaiseWatermark(ctx, 3); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "gated", StatusDelivered, 5*time.Second)
	testutil.Never(t, 200*time.Millisecond, "a second copy of the gated delivery", func() bool { return len(log.got()) > 3 })
	if got, want := log.got(), []string{"first", "first", "gated"}; !slices.Equal(got, want) {
		t.Errorf("the ordered endpoint got %v, want %v", got, want)
	}
}

// One raise lets in any number of gated deliveries (releaseBatch per script call), each line in
// seq order with only its head live, and empties the gates and their index.
func TestRaiseLetsInEveryGatedDeliveryInSeqOrder(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	e, err := New(rdb, testConfig(prefix)) // not started: the lines are read as the raise leaves them
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 2*releaseBatch + 100
	lines := []string{"k:a", "k:b"}
	want := map[string][]string{}
	var reqs []Request
	for seq := 1; seq <= n; seq++ {
		line := lines[seq%2]
		id := fmt.Sprintf("d%05d", seq)
		want[line] = append(want[line], id)
		reqs = append(reqs, Request{ID: id, EndpointID: "ep", OrderingKey: line[2:], Seq: int64(seq), Body: []byte(`{}`)})
	}
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	enqueue(t, e, reqs...)
	k := e.base().k
	if got := rdb.XLen(ctx, k.stream()).Val(); got != 0 {
		t.Fatalf("%d deliveries went live before the watermark reached them", got)
	}
	if err := e.RaiseWatermark(ctx, n); err != nil {
		t.Fatal(err)
	}
	for _, line := range lines {
		got := rdb.LRange(ctx, k.line(line), 0, -1).Val()
		if !slices.Equal(got, want[line]) {
			t.Errorf("line %s holds %d deliveries, want %d in seq order", line, len(got), len(want[line]))
		}
		if entry := rdb.HGet(ctx, k.record(want[line][0]), string(fieldEntry)).Val(); entry == "" {
			t.Errorf("the head of line %s is not live", line)
		}
	}
	if got := rdb.XLen(ctx, k.stream()).Val(); got != int64(len(lines)) {
		t.Errorf("%d deliveries live, want one per line", got)
	}
	if got := rdb.Exists(ctx, k.gate(lines[0]), k.gate(lines[1]), k.gated()).Val(); got != 0 {
		t.Errorf("%d gates or the gated index left behind", got)
	}
}

// While the shard count changes, a delivery whose line waits in the gate of its endpoint's
// former shard joins it there (not a new line in its new shard, which would not wait for it),
// and a raise through an engine of the new count lets both in, in seq order.
func TestGatedLineKeepsItsShardWhileTheCountChanges(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	cfg1 := testConfig(prefix)
	cfg1.Consumer = "one-shard"
	e1 := startEngine(t, rdb, cfg1)
	log := orderedReceiver(t, e1)
	if homeIndex("ord1", 4) == 0 {
		t.Fatal("the ordered endpoint must change shards with the count")
	}
	enqueue(t, e1, Request{ID: "s7", EndpointID: "ord1", Seq: 7, Body: []byte(`{}`)})
	cfg4 := testConfig(prefix)
	cfg4.QueueShards, cfg4.Consumer = 4, "four-shards"
	e4 := startEngine(t, rdb, cfg4)
	enqueue(t, e4, Request{ID: "s6", EndpointID: "ord1", Seq: 6, Body: []byte(`{}`)})
	ctx := context.Background()
	if rdb.Exists(ctx, e1.base().k.record("s6")).Val() != 1 {
		t.Errorf("s6 was not enqueued in the shard where its line waits")
	}
	if err := e4.RaiseWatermark(ctx, 7); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e4, "s7", StatusDelivered, 10*time.Second)
	if got, want := log.got(), []string{"s6", "s7"}; !slices.Equal(got, want) {
		t.Errorf("the ordered endpoint got %v, want %v", got, want)
	}
}

// A gated delivery that leaves its line (advanceLine, as every script that ends a delivery calls
// it) leaves its gate, and the index of gated lines follows; nothing goes live.
func TestGatedDeliveryLeavesItsGate(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	e, err := New(rdb, testConfig(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	enqueue(t, e, Request{ID: "a", EndpointID: "ep", OrderingKey: "x", Seq: 2, Body: []byte(`{}`)},
		Request{ID: "b", EndpointID: "ep", OrderingKey: "x", Seq: 3, Body: []byte(`{}`)})
	k := e.base().k
	leave := script(`advanceLine(ARGV[2], ARGV[3], 0) return 1`)
	if err := leave.Run(ctx, rdb, []string{k.stream()}, k.p, "k:x", "a").Err(); err != nil {
		t.Fatal(err)
	}
	if got := rdb.ZRange(ctx, k.gate("k:x"), 0, -1).Val(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("the gate holds %v, want [b]", got)
	}
	if got := rdb.ZScore(ctx, k.gated(), "k:x").Val(); got != 3 {
		t.Errorf("the gated index says the line's first seq is %v, want 3", got)
	}
	if err := leave.Run(ctx, rdb, []string{k.stream()}, k.p, "k:x", "b").Err(); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, k.gate("k:x"), k.gated(), k.line("k:x"), k.stream()).Val(); n != 0 {
		t.Errorf("%d of the gate, the gated index, the line and the stream exist, want none", n)
	}
}

// When one raise call lets in only part of what the watermark reaches (releaseBatch), a delivery
// enqueued before the next call, even of the watermark's own seq, does not pass the ones still
// gated: the shard's watermark stops below them.
func TestPartRaiseHoldsNewDeliveriesBehindTheRest(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	e, err := New(rdb, testConfig(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	putEndpoint(t, e, Endpoint{ID: "ep", URL: "http://127.0.0.1:9/"})
	const n = releaseBatch + 10
	var reqs []Request
	var want []string
	for seq := 1; seq <= n+1; seq++ {
		id := fmt.Sprintf("d%05d", seq)
		want = append(want, id)
		reqs = append(reqs, Request{ID: id, EndpointID: "ep", OrderingKey: "x", Seq: int64(seq), Body: []byte(`{}`)})
	}
	enqueue(t, e, reqs[:n]...)
	k := e.base().k
	res, err := raiseWatermarkScript.Run(ctx, rdb, []string{k.stream()}, k.p, e.nowMS(), n+1, releaseBatch).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if res[1] != releaseBatch || res[2] != 1 {
		t.Fatalf("one call let in %d and left %d, want %d and 1", res[1], res[2], releaseBatch)
	}
	enqueue(t, e, reqs[n]) // seq n+1: the watermark the caller is raising to
	if err := e.RaiseWatermark(ctx, n+1); err != nil {
		t.Fatal(err)
	}
	if got := rdb.LRange(ctx, k.line("k:x"), 0, -1).Val(); !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("the line holds %d deliveries, the first out of seq order at %d; want %d in seq order", len(got), i, len(want))
	}
}
