package notifier_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/notifier"
)

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := notifier.DefaultConfig()
	if c.Prefix != "herald" || c.RequestTimeout != 30*time.Second || c.Workers != 64 ||
		c.MaxInFlight != 10 || c.RateLimitPerMinute != 100 || c.MaxConnsPerHost != 128 ||
		c.MaxBacklog != 1_000_000 || c.MaxDeliveryAge != 24*time.Hour || c.Retention != 7*24*time.Hour {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	if !slices.Equal(c.RetrySchedule, notifier.DefaultRetrySchedule) {
		t.Errorf("RetrySchedule = %v", c.RetrySchedule)
	}
	c.RetrySchedule[0] = time.Hour // a copy: the package default stays
	if notifier.DefaultRetrySchedule[0] == time.Hour {
		t.Error("DefaultConfig shares DefaultRetrySchedule's array")
	}
	if err := notifier.DefaultConfig().Validate(); err != nil {
		t.Errorf("the defaults are invalid: %v", err)
	}
	if err := (notifier.Config{}).Validate(); err != nil {
		t.Errorf("a zero Config (all defaults) is invalid: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		set    func(*notifier.Config)
		fields []string // the settings named, in order; none: valid
	}{
		{"defaults", func(*notifier.Config) {}, nil},
		{"workers at the limit", func(c *notifier.Config) { c.Workers = 100_000 }, nil},
		{"workers past the limit", func(c *notifier.Config) { c.Workers = 100_001 }, []string{"Workers"}},
		{"negative workers", func(c *notifier.Config) { c.Workers = -1 }, []string{"Workers"}},
		{"conns per host", func(c *notifier.Config) { c.MaxConnsPerHost = 100_001 }, []string{"MaxConnsPerHost"}},
		{"request timeout", func(c *notifier.Config) { c.RequestTimeout = 11 * time.Minute }, []string{"RequestTimeout"}},
		{"retry wait", func(c *notifier.Config) { c.RetrySchedule = []time.Duration{time.Second, -time.Second} }, []string{"RetrySchedule"}},
		{"too many retries", func(c *notifier.Config) { c.RetrySchedule = make([]time.Duration, 51) },
			slices.Repeat([]string{"RetrySchedule"}, 52)},
		{"retention", func(c *notifier.Config) { c.Retention = 500 * time.Millisecond }, []string{"Retention"}},
		{"delivery age", func(c *notifier.Config) { c.MaxDeliveryAge = -time.Second }, []string{"MaxDeliveryAge"}},
		{"rate, in flight, backlog", func(c *notifier.Config) { c.RateLimitPerMinute, c.MaxInFlight, c.MaxBacklog = -1, -1, -1 },
			[]string{"RateLimitPerMinute", "MaxInFlight", "MaxBacklog"}},
		{"jitter", func(c *notifier.Config) { c.Jitter = 2 }, []string{"Jitter"}},
		{"prefix", func(c *notifier.Config) { c.Prefix = "a{b}" }, []string{"Prefix"}},
		{"heartbeat", func(c *notifier.Config) { c.Heartbeat = time.Hour }, []string{"Heartbeat"}},
		{"consumer", func(c *notifier.Config) { c.Consumer = "a b" }, []string{"Consumer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c notifier.Config
			tt.set(&c)
			err := c.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, notifier.ErrConfig) {
				t.Fatalf("Validate() = %v, want an ErrConfig", err)
			}
			var fields []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *notifier.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("%v is not a *ConfigError", e)
				}
				if !strings.Contains(e.Error(), ce.Field) {
					t.Errorf("%q does not name %s", e, ce.Field)
				}
				fields = append(fields, ce.Field)
			}
			if !slices.Equal(fields, tt.fields) {
				t.Fatalf("settings named %v, want %v (%v)", fields, tt.fields, err)
			}
		})
	}
}

// Check applies no defaults: a zero setting the engine needs is named, where Validate would take
// the default.
func TestCheck(t *testing.T) {
	t.Parallel()
	if err := notifier.DefaultConfig().Check(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	c := notifier.DefaultConfig()
	c.Workers, c.RequestTimeout = 0, 0
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate takes the defaults for zeros, got %v", err)
	}
	err := c.Check()
	var ce *notifier.ConfigError
	if !errors.Is(err, notifier.ErrConfig) || !errors.As(err, &ce) ||
		!strings.Contains(err.Error(), "Workers") || !strings.Contains(err.Error(), "RequestTimeout") {
		t.Fatalf("Check() = %v, want errors naming Workers and RequestTimeout", err)
	}
}
