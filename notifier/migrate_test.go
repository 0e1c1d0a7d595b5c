package notifier

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/redisx/redistest"
	"github.com/heraldhq/herald/webhooksig"
)

// An engine started on data written by an older herald (layout 1: short field names) migrates
// it first: a delivery pending then is delivered now, signed with the endpoint's secret, and a
// finished one reads as it did, attempts included.
func TestUpgradeFromLayout1LosesNothing(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.Shared(t)
	k := newKeys(prefix, prefix)
	rc := newReceiver(t, nil)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	nowS := strconv.FormatInt(now, 10)
	writeLayout1(t, rdb, k, rc.URL, nowS)
	rdb.ZAdd(ctx, k.delayed(), redis.Z{Score: float64(now), Member: "old-pending"})
	rdb.Set(ctx, k.backlog(), 1, 0)

	e := startEngine(t, rdb, testConfig(prefix))
	d := waitStatus(t, e, "old-pending", StatusDelivered, 5*time.Second)
	if len(d.Attempts) != 1 || d.EventID != "evt_old" || d.SubscriberID != "sub_old" || d.Kind != "notification" {
		t.Errorf("the pending delivery after the upgrade: %+v", d)
	}
	got := rc.received()
	if len(got) != 1 || string(got[0].body) != `{"old":true}` {
		t.Fatalf("receiver got %d requests", len(got))
	}
	if err := webhooksig.Verify(testSecret, got[0].header, got[0].body, time.Minute); err != nil {
		t.Errorf("not signed with the endpoint's secret after the upgrade: %v", err)
	}
	old, err := e.Get(ctx, "old-done")
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != StatusFailed || old.DeadReason != ReasonMaxTries || len(old.Attempts) != 2 || old.Attempts[1].StatusCode != 500 {
		t.Errorf("the finished delivery after the upgrade: %+v", old)
	}
	for _, key := range []string{k.record("old-pending"), k.record("old-done"), k.endpoint("ep")} {
		for f := range rdb.HGetAll(ctx, key).Val() {
			if _, short := layout1[f]; short {
				t.Errorf("%s still has the layout-1 field %q", key, f)
			}
		}
	}
	if v := rdb.Get(ctx, k.layout()).Val(); v != strconv.Itoa(recordLayout) {
		t.Errorf("layout %q after the migration", v)
	}
}

// writeLayout1 writes an endpoint and two deliveries as herald wrote them before layout 2.
func writeLayout1(t *testing.T, rdb redis.UniversalClient, k keys, url, nowS string) {
	t.Helper()
	ctx := context.Background()
	att := `{"at":"2026-01-01T00:00:00Z","duration_ms":3,"status_code":500,"error":"HTTP 500"}`
	writes := []struct {
		key    string
		fields []any
	}{
		{k.endpoint("ep"), []any{"url", url, "sec", testSecret, "rate", "0", "mif", "0", "ord", "0"}},
		{k.record("old-pending"), []any{"ep", "ep", "url", url, "body", `{"old":true}`, "evt", "evt_old", "sub", "sub_old",
			"kind", "notification", "ok", "", "st", "pending", "n", "0", "c", nowS, "acc", nowS, "na", nowS, "sid", ""}},
		{k.record("old-done"), []any{"ep", "ep", "url", url, "body", `{}`, "evt", "", "sub", "", "kind", "relay", "ok", "",
			"st", "failed", "n", "2", "c", nowS, "acc", nowS, "na", "", "sid", "", "dr", ReasonMaxTries, "dat", nowS,
			"att", strings.Join([]string{att, att}, "\n")}},
	}
	for _, w := range writes {
		if err := rdb.HSet(ctx, w.key, w.fields...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// A secret that no longer decodes (written to Redis by hand, or by a bug) sends nothing: never
// an unsigned request to an endpoint that expects signed ones. The attempt says why.
func TestUnusableSecretSendsNothing(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx := context.Background()
	rc := newReceiver(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	putEndpoint(t, e, Endpoint{ID: "ep", URL: rc.URL, Secret: testSecret})
	b.rdb.HSet(ctx, e.base().k.endpoint("ep"), string(epFieldSecret), "whsec_!!not base64!!")
	b.rdb.Incr(ctx, e.base().k.endpointGen()) // as any change to an endpoint does
	id := enqueue(t, e, Request{EndpointID: "ep", Body: []byte(`{}`)})[0]
	d := waitStatus(t, e, id, StatusFailed, 5*time.Second)
	if n := rc.count.Load(); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
	if len(d.Attempts) != 4 || d.Attempts[0].StatusCode != 0 || !strings.Contains(d.Attempts[0].Error, "secret unusable") {
		t.Errorf("attempts %+v", d.Attempts)
	}
	for _, o := range b.outcomes() {
		if o.Tried || o.Reason != ReasonSecretUnusable {
			t.Errorf("outcome %+v: no request was sent", o)
		}
	}
	if e.BreakerState("ep") != BreakerClosed {
		t.Error("the endpoint's breaker counted tries that were never sent")
	}
}
