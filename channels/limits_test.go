package channels

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/httpx"
)

// quickBound is how long a request may take whose answer needs no work that grows faster than its
// input: it takes milliseconds, the bound is generous for -race on a busy 2-core machine, and the
// super-linear work these tests guard against took seconds.
const quickBound = time.Second

// timed sends a request and returns the answer and how long it took: the quickest of up to
// three tries, because a busy machine may slow one down. A try over ten times the bound is not
// repeated: that is no hiccup.
func (b *httpBundle) timed(t *testing.T, method, path, body string) (reply, time.Duration) {
	t.Helper()
	var rep reply
	best := time.Duration(-1)
	for range 3 {
		start := time.Now()
		rep = b.json(t, method, path, body)
		d := time.Since(start)
		if best < 0 || d < best {
			best = d
		}
		if best <= quickBound || d > 10*quickBound {
			break
		}
	}
	return rep, best
}

// checkQuick fails t unless rep is the wanted status naming field (when the status is an error)
// and came within quickBound.
func checkQuick(t *testing.T, what string, rep reply, took time.Duration, status int, field string) {
	t.Helper()
	if rep.status != status {
		t.Errorf("%s: %d %.300s, want %d", what, rep.status, rep.raw, status)
	} else if status >= 400 {
		e, _ := rep.body["error"].(map[string]any)
		if got, _ := e["field"].(string); got != field {
			t.Errorf("%s: error names field %q, want %q: %.300s", what, got, field, rep.raw)
		}
	}
	t.Logf("%s: answered in %s", what, took)
	if took > quickBound {
		t.Errorf("%s: answered in %s, want under %s", what, took, quickBound)
	}
}

// jsonList is a JSON list of n distinct strings.
func jsonList(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"t%d"`, i)
	}
	b.WriteString("]")
	return b.String()
}

// TestHTTPHugeListsRefusedBeforeWork: a channel body with 100,000 tags (close to the 1 MiB body
// limit) is refused with a 400 naming channel_tags before any work that grows faster than the
// body, on create and on update; it took 20 seconds and more when repeated tags were dropped
// before the tags were counted.
func TestHTTPHugeListsRefusedBeforeWork(t *testing.T) {
	t.Parallel()
	b := setupHTTPMax(t, httpx.DefaultMaxBody)
	if rep := b.json(t, "POST", "/channel", seedChannel); rep.status != 201 {
		t.Fatalf("create: %d %s", rep.status, rep.raw)
	}
	tags := jsonList(100_000)
	rep, took := b.timed(t, "POST", "/channel", `{"channel_id": "many", "channel_tags": `+tags+`, `+httpErrorEndpoint+`}`)
	checkQuick(t, "create with 100,000 tags", rep, took, 400, fieldChannelTags)
	rep, took = b.timed(t, "PUT", "/channel/slack-sim", `{"channel_tags": `+tags+`}`)
	checkQuick(t, "update with 100,000 tags", rep, took, 400, fieldChannelTags)
}

// TestHTTPHugeFiltersRefusedBeforeWork: filters past the term limit are refused before they are
// sorted and parsed whole.
func TestHTTPHugeFiltersRefusedBeforeWork(t *testing.T) {
	t.Parallel()
	b := setupHTTPMax(t, httpx.DefaultMaxBody)
	var keys strings.Builder
	keys.WriteString("{")
	for i := range 25_000 {
		if i > 0 {
			keys.WriteString(",")
		}
		fmt.Fprintf(&keys, `"channel_metadata.k%d": %d`, i, i)
	}
	keys.WriteString("}")
	var ors strings.Builder
	ors.WriteString(`{"$or": [`)
	for i := range MaxFilterValues {
		if i > 0 {
			ors.WriteString(",")
		}
		fmt.Fprintf(&ors, `{"channel_id": {"$in": %s}}`, jsonList(MaxFilterValues/10))
	}
	ors.WriteString("]}")
	for what, filter := range map[string]string{"25,000 conditions": keys.String(), "1,000 $in lists of 100": ors.String()} {
		rep, took := b.timed(t, "POST", "/channels", filter)
		checkQuick(t, what, rep, took, 400, "")
	}
}

// TestHTTPLongNumbersCompareInLinearTime: a filter comparing many numbers with a channel's
// number of 60,000 digits is answered at once; parsing the stored number again for every
// comparison took seconds.
func TestHTTPLongNumbersCompareInLinearTime(t *testing.T) {
	t.Parallel()
	b := setupHTTPMax(t, httpx.DefaultMaxBody)
	digits := strings.Repeat("7", 60_000)
	long := "0." + digits
	rep := b.json(t, "POST", "/channel", `{"channel_id": "long", "channel_metadata": {"endpoint_url": "https://h.example/in", "n": `+long+`}}`)
	if rep.status != 201 {
		t.Fatalf("create: %d %.300s", rep.status, rep.raw)
	}
	nums := make([]string, MaxFilterValues-1)
	for i := range nums {
		nums[i] = fmt.Sprint(i)
	}
	in := strings.Join(nums, ",")
	for _, c := range []struct {
		what, last string
		want       int
	}{
		{"1,000 numbers against one of 60,000 digits", "1000", 0},
		{"the same number written another way", digits + "e-60000", 1},
	} {
		rep, took := b.timed(t, "POST", "/channels", `{"channel_metadata.n": {"$in": [`+in+`, `+c.last+`]}}`)
		checkQuick(t, c.what, rep, took, 200, "")
		if got, _ := rep.body["channels"].([]any); len(got) != c.want {
			t.Errorf("%s: matched %d channels, want %d", c.what, len(got), c.want)
		}
	}
}
