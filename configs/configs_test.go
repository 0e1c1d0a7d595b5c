// Package configs_test checks the files in configs/ against the daemon: every metric the Grafana
// dashboard and the alert rules read, and every label they select on, exists in what a running
// herald serves on /metrics; the rules and the dashboard's queries are valid PromQL (promtool);
// and README's metrics table lists exactly the metrics herald serves. So none of them can drift
// from the code.
package configs_test

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	dashboardFile = "grafana-dashboard.json"
	alertsFile    = "alerts.yml"
	readmeFile    = "../README.md"
	// requireToolsEnv, when set (.ci/run sets it), makes a missing promtool a failure, not a skip.
	requireToolsEnv = "HERALD_TEST_REQUIRE_TOOLS"
)

// Labels Prometheus adds when it scrapes, and the histogram bucket label: not on /metrics samples
// as herald writes them, yet fine to select or aggregate on.
var scrapeLabels = []string{"instance", "job", "le"}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	return d
}

// queries returns every PromQL query of the dashboard: its panels' and its variables'.
func (d dashboard) queries() []string {
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			out = append(out, v.Definition)
		}
	}
	return out
}

// The dashboard imports into Grafana as one: a uid, unique panel ids, every query panel on the
// data source variable with at least one query, and no two panels on the same cells.
func TestDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q, title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	ids := map[int]bool{}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0) {
			t.Errorf("panel %q: not on the ${datasource} variable, or without a query", p.Title)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the grid", p.Title)
		}
	}
}

// promtool validates the alert rules, and the dashboard's queries turned into recording rules
// (Grafana's variables replaced by values), so both are PromQL Prometheus accepts.
func TestPromtoolChecksRulesAndDashboard(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool", "apt-get install prometheus, which has it")
	run := func(file string) {
		out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", file, err, out)
		}
	}
	run(alertsFile)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*")
	for i, q := range loadDashboard(t).queries() {
		if strings.HasPrefix(q, "label_values(") {
			continue // a Grafana function, not PromQL; its metric is checked by TestConfigsAndReadmeMatchRealMetrics
		}
		expr, _ := json.Marshal(grafana.Replace(q)) // a JSON string is a YAML string
		rules.WriteString("      - record: dashboard:query_" + strconv.Itoa(i) + "\n        expr: " + string(expr) + "\n")
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run(file)
}

// tool returns the path of a command the test needs. Without it the test fails when
// requireToolsEnv is set and is skipped (saying why) otherwise.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(requireToolsEnv) != "" {
		t.Fatalf("%s is not installed (%s)", name, install)
	}
	t.Skipf("SKIPPED: %s is not installed (%s); set %s=1 to make this a failure", name, install, requireToolsEnv)
	return ""
}

// metricName matches the metric names herald and its Go and process collectors serve.
var metricName = regexp.MustCompile(`\b(?:herald|go|process)_[a-zA-Z0-9_]+`)

// selector matches a metric name with its label matchers, e.g. name{a="b",c=~"d"}.
var selector = regexp.MustCompile(`\b((?:herald|go|process)_[a-zA-Z0-9_]+)\{([^{}]*)\}`)

// matcher matches one label matcher of a selector.
var matcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)

// grouping matches the labels of by (...) and without (...) clauses.
var grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)

// references are what queries read: metric names, the labels each metric is selected on, and the
// labels each query groups by.
type references struct {
	metrics map[string]bool
	labels  map[string][]string // metric -> labels its matchers name
	groups  []group
}

// group is a label a query aggregates by: one of the query's metrics must have it.
type group struct {
	label, query string
	metrics      []string
}

// referencesOf reads the references of PromQL queries.
func referencesOf(queries ...string) references {
	r := references{metrics: map[string]bool{}, labels: map[string][]string{}}
	for _, q := range queries {
		names := metricName.FindAllString(q, -1)
		for _, n := range names {
			r.metrics[n] = true
		}
		for _, s := range selector.FindAllStringSubmatch(q, -1) {
			for _, m := range matcher.FindAllStringSubmatch(s[2], -1) {
				r.labels[s[1]] = append(r.labels[s[1]], m[1])
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					r.groups = append(r.groups, group{label: l, query: q, metrics: names})
				}
			}
		}
	}
	return r
}

// check reports every metric r reads that the scrape does not hold, every label a matcher names
// that its metric does not have, and every group label none of its query's metrics has.
func (r references) check(t *testing.T, what string, scraped map[string][]string) {
	t.Helper()
	for _, m := range slices.Sorted(maps.Keys(r.metrics)) {
		have, ok := scraped[m]
		if !ok {
			t.Errorf("%s reads %s, which herald does not serve", what, m)
			continue
		}
		for _, l := range r.labels[m] {
			if !slices.Contains(have, l) && !slices.Contains(scrapeLabels, l) {
				t.Errorf("%s selects %s on %s, whose labels are %v", what, l, m, have)
			}
		}
	}
	for _, g := range r.groups {
		if slices.Contains(scrapeLabels, g.label) || slices.ContainsFunc(g.metrics, func(m string) bool { return slices.Contains(scraped[m], g.label) }) {
			continue
		}
		t.Errorf("%s groups by %s, which none of its metrics has: %s", what, g.label, g.query)
	}
}

// alertExprs returns the expr of every rule in an alert rules file: inline, or the block that
// follows "expr: |" (indented deeper than it).
func alertExprs(text string) []string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		rest, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "expr:")
		if !ok {
			continue
		}
		if rest = strings.TrimSpace(rest); rest != "|" && rest != ">" {
			out = append(out, rest)
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var block []string
		for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
			i++
			block = append(block, lines[i])
		}
		out = append(out, strings.Join(block, "\n"))
	}
	return out
}
