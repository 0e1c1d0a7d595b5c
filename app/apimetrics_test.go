package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/app"
)

// The daemon counts every request it answers by route template, method and status, and times
// them: a path's ids never become labels, and paths no route matches share one label.
func TestAPIRequestMetrics(t *testing.T) {
	t.Parallel()
	base, _ := start(t, func(c *app.Config) { c.APIKeys = []string{testKey} })
	do(t, "GET", base+"/channel/id-that-must-not-be-a-label", testKey, "")
	do(t, "GET", base+"/channel/id-that-must-not-be-a-label", "", "")
	do(t, "GET", base+"/path-that-must-not-be-a-label", testKey, "")
	do(t, "GET", base+"/healthz", "", "")
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`herald_api_requests_total{method="GET",route="/channel/{id}",status="404"} 1`,
		`herald_api_requests_total{method="GET",route="/channel/{id}",status="401"} 1`,
		`herald_api_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`herald_api_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`herald_api_request_duration_seconds_count{method="GET",route="/channel/{id}"} 2`,
		`herald_api_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "must-not-be-a-label") {
		t.Error("a request path became a label")
	}
}
