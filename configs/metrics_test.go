package configs_test

import (
	"bufio"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apitest"
	"github.com/heraldhq/herald/internal/daemontest"
	"github.com/heraldhq/herald/internal/testutil"
)

const wait = 20 * time.Second

// What a running herald serves on /metrics once it has done some work (one herald, one scrape,
// for both checks): every metric the dashboard and the alert rules read, and every label they
// select or group on, is in it; README's metrics table lists exactly its metrics.
func TestConfigsAndReadmeMatchRealMetrics(t *testing.T) {
	t.Parallel()
	scraped := scrapeAfterTraffic(t)
	t.Run("dashboard and alerts read real metrics", func(t *testing.T) { configsReadRealMetrics(t, scraped) })
	t.Run("README lists every metric", func(t *testing.T) { readmeListsEveryMetric(t, scraped) })
}

func configsReadRealMetrics(t *testing.T, scraped map[string][]string) {
	referencesOf(loadDashboard(t).queries()...).check(t, dashboardFile, scraped)
	text, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs := alertExprs(string(text))
	if len(exprs) < 9 {
		t.Fatalf("read %d rules in %s, want its 9 or more", len(exprs), alertsFile)
	}
	referencesOf(exprs...).check(t, alertsFile, scraped)
	// Its comments and annotations name metrics too.
	references{metrics: referencesOf(strings.ReplaceAll(string(text), `\"`, `"`)).metrics}.check(t, alertsFile+" (comments, annotations)", scraped)
}

func readmeListsEveryMetric(t *testing.T, scraped map[string][]string) {
	text, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(herald_[a-z0-9_]+)").FindAllStringSubmatch(string(text), -1) {
		listed[m[1]] = true
	}
	served := map[string]bool{}
	for name := range scraped {
		if strings.HasPrefix(name, "herald_") && !strings.HasSuffix(name, "_bucket") && !isHistogramPart(scraped, name) {
			served[name] = true
		}
	}
	for _, m := range slices.Sorted(maps.Keys(served)) {
		if !listed[m] {
			t.Errorf("README's metrics table lacks %s", m)
		}
	}
	for _, m := range slices.Sorted(maps.Keys(listed)) {
		if !served[m] {
			t.Errorf("README's metrics table lists %s, which herald does not serve", m)
		}
	}
}

// scrapeAfterTraffic runs a herald, makes it do a little of everything (a handshake,
// notifications whose tries fail until they are dead-lettered and the endpoint's breaker opens, a
// relayed message, a callback, API calls), and returns its /metrics: each metric's name with the
// labels its samples carry.
func scrapeAfterTraffic(t *testing.T) map[string][]string {
	t.Helper()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Type, Challenge string }
		if json.NewDecoder(r.Body).Decode(&p) == nil && p.Type == "url_verification" {
			_ = json.NewEncoder(w).Encode(p.Challenge)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	base := startHerald(t)
	post(t, base+"/channel", `{"channel_id": "c", "channel_metadata": {"endpoint_url": "`+failing.URL+`/incoming"}}`)
	var sub struct{ ID string }
	_ = json.Unmarshal(post(t, base+"/subscribers", `{"url": "`+failing.URL+`/hook"}`), &sub)
	testutil.Eventually(t, wait, "the subscriber to be verified", func() bool {
		return strings.Contains(get(t, base+"/subscribers/"+sub.ID), `"status":"verified"`)
	})
	for range 3 { // two tries each: the fifth failure in a row opens the endpoint's breaker
		post(t, base+"/channel/c/notify", `{"type": "update_notification"}`)
	}
	post(t, base+"/channel/message", `{"channel_id": "c", "session_id": "s", "message": "hi"}`)
	post(t, base+"/webhook-response", `{}`)
	var metrics string
	testutil.Eventually(t, wait, "a dead letter and an open breaker on /metrics", func() bool {
		metrics = get(t, base+"/metrics")
		return strings.Contains(metrics, `herald_deliveries_total{outcome="dead"`) && strings.Contains(metrics, `herald_breaker_transitions_total{state="open"}`)
	})
	return parseExposition(t, metrics)
}

// startHerald runs a herald (retrying a failed try once, 20 ms later) on a free port against the
// shared test Redis, with a key prefix of its own, and stops it when the test ends (daemontest).
func startHerald(t *testing.T) string {
	t.Helper()
	cfg := daemontest.Config(t)
	cfg.RetrySchedule = []time.Duration{20 * time.Millisecond}
	base, _, _ := daemontest.Serve(t, cfg, nil)
	return base
}

func TestMain(m *testing.M) { os.Exit(apitest.Run(m)) }

func post(t *testing.T, url, body string) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// parseExposition reads the Prometheus text format: each sample's metric name (and each
// histogram's family name), and the union of the label names its samples carry.
func parseExposition(t *testing.T, text string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		labels := out[name]
		for rest != "" && !strings.HasPrefix(rest, "}") {
			l, v, ok := strings.Cut(rest, `="`)
			if !ok {
				t.Fatalf("cannot read the labels of %q", line)
			}
			if !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
			rest = strings.TrimPrefix(skipQuoted(v), ",")
		}
		out[name] = labels
	}
	for name, labels := range out { // a histogram's family name, as texts name it
		if base, ok := strings.CutSuffix(name, "_bucket"); ok {
			out[base] = slices.DeleteFunc(slices.Clone(labels), func(l string) bool { return l == "le" })
		}
	}
	return out
}

// skipQuoted returns what follows the closing quote of a label value (s starts after the opening
// one); \" and \\ are escapes.
func skipQuoted(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[i+1:]
		}
	}
	return ""
}

// isHistogramPart reports whether name is the _sum or _count series of a histogram.
func isHistogramPart(scraped map[string][]string, name string) bool {
	for _, suffix := range []string{"_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, h := scraped[base+"_bucket"]; h {
				return true
			}
		}
	}
	return false
}
