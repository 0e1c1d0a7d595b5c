package subscribers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/egress"
)

// quickBound is how long a request may take that is refused before any work that grows faster
// than its body: milliseconds, with room for -race on a busy 2-core machine.
const quickBound = time.Second

// TestAPIHugeListsRefusedBeforeWork: a subscriber body whose filter lists hold 100,000 entries
// (close to the 1 MiB body limit) is refused with a 400 naming the list at once, on create and
// on update.
func TestAPIHugeListsRefusedBeforeWork(t *testing.T) {
	t.Parallel()
	a := setupAPI(t, apiOptions{policy: egress.Policy{}, noVerifier: true})
	id := a.mustDo(201, "POST", "/subscribers", map[string]any{"url": "https://hooks.example.com/h"})["id"].(string)
	var list strings.Builder
	list.WriteString("[")
	for i := range 100_000 {
		if i > 0 {
			list.WriteString(",")
		}
		fmt.Fprintf(&list, `"c%d"`, i)
	}
	list.WriteString("]")
	for _, field := range []string{"channel_ids", "channel_tags", "chat_types", "types"} {
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/subscribers", `{"url": "https://hooks.example.com/h", "` + field + `": ` + list.String() + `}`},
			{"PATCH", "/subscribers/" + id, `{"` + field + `": ` + list.String() + `}`},
		} {
			best := time.Duration(-1)
			var code int
			var out map[string]any
			for range 3 { // the quickest of three: a busy machine may slow one down
				start := time.Now()
				code, out = a.do(req.method, req.path, req.body)
				if d := time.Since(start); best < 0 || d < best {
					best = d
				}
				if best <= quickBound {
					break
				}
			}
			e, _ := out["error"].(map[string]any)
			t.Logf("%s %s with 100,000 %s: answered in %s", req.method, req.path, field, best)
			if code != 400 || e["field"] != field || best > quickBound {
				t.Errorf("%s %s with 100,000 %s: %d %v in %s; want 400 naming %s within %s", req.method, req.path, field, code, e, best, field, quickBound)
			}
		}
	}
}
