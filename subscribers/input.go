package subscribers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
	"github.com/heraldhq/herald/webhooksig"
)

// input is the body of POST /subscribers, and of PATCH once merged into the stored subscriber.
// Pointers tell "absent" from a zero value.
type input struct {
	URL                *string  `json:"url"`
	Token              *string  `json:"token"`
	Secret             *string  `json:"secret"`
	ChannelIDs         []string `json:"channel_ids"`
	ChannelTags        []string `json:"channel_tags"`
	ChatTypes          []string `json:"chat_types"`
	Types              []string `json:"types"`
	RateLimitPerMinute *int     `json:"rate_limit_per_minute"`
	MaxInFlight        *int     `json:"max_in_flight"`
	Ordered            *bool    `json:"ordered"`
	Description        *string  `json:"description"`
}

// writableFields are the fields a client may send; readOnlyFields are shown but not settable.
var (
	writableFields = []string{"url", "token", "secret", "channel_ids", "channel_tags", "chat_types", "types",
		"rate_limit_per_minute", "max_in_flight", "ordered", "description"}
	readOnlyFields = []string{"id", "verified", "status", "last_verification_error", "disabled_reason",
		"breaker_state", "health", "created_at", "updated_at"}
)

// Bounds on what a subscriber may hold.
const (
	maxURLLen         = 2048
	maxTokenLen       = 256
	maxDescriptionLen = 1024
	maxFilterEntries  = 1000
	maxTagLen         = 256
	maxRatePerMinute  = 1_000_000
	maxInFlight       = 1000
	minSecretBytes    = 24
	maxSecretBytes    = 64
	secretPrefix      = "whsec_"
)

// validation holds what checking an input needs from the daemon's configuration.
type validation struct {
	policy       egress.Policy
	defaultToken string
}

// apply checks in and writes it into sub (which holds the current values for a PATCH). Every
// error is a 400 naming the field.
func (v validation) apply(in *input, sub *Subscriber) error {
	if in.URL == nil || strings.TrimSpace(*in.URL) == "" {
		return httpx.Missing("url")
	}
	if len(*in.URL) > maxURLLen {
		return httpx.Invalid("url", "url must be at most %d characters", maxURLLen)
	}
	if _, err := v.policy.CheckURL(*in.URL); err != nil {
		return httpx.Invalid("url", "%s", err.Error())
	}
	sub.URL = *in.URL

	switch {
	case in.Token == nil:
		sub.Token = v.defaultToken
		if sub.Token == "" {
			sub.Token = NewToken()
		}
	case *in.Token == "" || len(*in.Token) > maxTokenLen || !printable(*in.Token):
		return httpx.Invalid("token", "token must be 1 to %d printable characters", maxTokenLen)
	default:
		sub.Token = *in.Token
	}

	if in.Secret == nil {
		sub.Secret = webhooksig.NewSecret()
	} else if err := CheckSecret(*in.Secret); err != nil {
		return err
	} else {
		sub.Secret = *in.Secret
	}

	var err error
	if sub.ChannelIDs, err = checkList("channel_ids", in.ChannelIDs, func(s string) bool { return ids.Valid(s) },
		"channel ids are "+ids.Rule); err != nil {
		return err
	}
	if sub.ChannelTags, err = checkList("channel_tags", in.ChannelTags, func(s string) bool { return s != "" && len(s) <= maxTagLen && utf8.ValidString(s) },
		"tags are 1 to 256 bytes of UTF-8"); err != nil {
		return err
	}
	if sub.ChatTypes, err = checkList("chat_types", in.ChatTypes, func(s string) bool { return s != "" && len(s) <= maxTagLen && utf8.ValidString(s) },
		"chat types are 1 to 256 bytes of UTF-8"); err != nil {
		return err
	}
	for _, t := range in.Types {
		if !slices.Contains(EventTypes, t) {
			return httpx.Invalid("types", "unknown type %q; types are %s", httpx.Truncate(t, 64), strings.Join(EventTypes, ", "))
		}
	}
	if sub.Types, err = checkList("types", in.Types, func(string) bool { return true }, ""); err != nil {
		return err
	}

	sub.RateLimitPerMinute, sub.MaxInFlight = 0, 0
	if in.RateLimitPerMinute != nil {
		if n := *in.RateLimitPerMinute; n < 1 || n > maxRatePerMinute {
			return httpx.Invalid("rate_limit_per_minute", "rate_limit_per_minute must be between 1 and %d (leave it out for the default)", maxRatePerMinute)
		}
		sub.RateLimitPerMinute = *in.RateLimitPerMinute
	}
	if in.MaxInFlight != nil {
		if n := *in.MaxInFlight; n < 1 || n > maxInFlight {
			return httpx.Invalid("max_in_flight", "max_in_flight must be between 1 and %d (leave it out for the default)", maxInFlight)
		}
		sub.MaxInFlight = *in.MaxInFlight
	}
	sub.Ordered = in.Ordered != nil && *in.Ordered
	sub.Description = ""
	if in.Description != nil {
		if len(*in.Description) > maxDescriptionLen || !utf8.ValidString(*in.Description) {
			return httpx.Invalid("description", "description must be at most %d bytes of UTF-8", maxDescriptionLen)
		}
		sub.Description = *in.Description
	}
	return nil
}

// checkList validates and de-duplicates a filter list, keeping the order given.
func checkList(field string, in []string, ok func(string) bool, rule string) ([]string, error) {
	if len(in) > maxFilterEntries {
		return nil, httpx.Invalid(field, "%s may hold at most %d entries", field, maxFilterEntries)
	}
	out := make([]string, 0, len(in))
	for i, s := range in {
		if !ok(s) {
			return nil, httpx.Invalid(field, "%s[%d] is not valid: %s", field, i, rule)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// badSecret is the 400 for a secret that is not whsec_<base64 of 24 to 64 bytes>. It never
// repeats the secret.
func badSecret() error {
	return httpx.Invalid("secret", "secret must be whsec_ followed by the standard base64 of %d to %d random bytes, for example whsec_%s",
		minSecretBytes, maxSecretBytes, base64.StdEncoding.EncodeToString(make([]byte, minSecretBytes)))
}

// CheckSecret checks a signing secret's form: "whsec_" + base64 of 24 to 64 bytes.
func CheckSecret(secret string) error {
	b64, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return badSecret()
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil || len(raw) < minSecretBytes || len(raw) > maxSecretBytes {
		return badSecret()
	}
	return nil
}

// NewToken returns a new random verification token.
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
