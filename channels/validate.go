package channels

import (
	"encoding/json"
	"errors"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/httpx"
)

// Limits on a channel's fields. A request past one is a 400 naming the field.
const (
	MaxNameLen          = 256      // characters in channel_name
	MaxDescriptionLen   = 4096     // characters in channel_description
	MaxTags             = 100      // entries in channel_tags
	MaxTagLen           = 128      // characters in one tag
	MaxMetadataBytes    = 64 << 10 // channel_metadata encoded as JSON
	MaxMetadataDepth    = 16       // nesting of objects and lists inside channel_metadata
	fieldEndpointURL    = "channel_metadata.endpoint_url"
	fieldChannelID      = "channel_id"
	fieldChannelName    = "channel_name"
	fieldChannelDesc    = "channel_description"
	fieldChannelTags    = "channel_tags"
	fieldChannelMeta    = "channel_metadata"
	fieldChannelMetaDot = "channel_metadata."
)

var (
	// ErrInvalid is wrapped by every validation error (they are *httpx.Error values with status
	// 400 naming the field), so callers outside HTTP can test for it with errors.Is.
	ErrInvalid = errors.New("channels: invalid channel")
	// ErrBusy: an update kept losing the compare-and-set race to concurrent writers of the same
	// channel and gave up; the caller may retry (HTTP answers 503 with Retry-After).
	ErrBusy = errors.New("channels: channel is being changed concurrently, try again")
)

func invalid(field, format string, args ...any) *httpx.Error {
	e := httpx.Invalid(field, format, args...)
	e.Err = ErrInvalid
	return e
}

func missing(field string) *httpx.Error {
	e := httpx.Missing(field)
	e.Err = ErrInvalid
	return e
}

// Patch is a partial update of a channel (PUT /channel/{id}). A nil field is kept as it is.
type Patch struct {
	Name        *string
	Description *string
	// Tags, when not nil, replaces the tags (an empty list clears them).
	Tags *[]string
	// Metadata, when not nil, is an RFC 7396 merge patch applied to channel_metadata: a key with a
	// nil value is removed, an object is merged recursively, anything else replaces the key.
	Metadata map[string]any
}

// apply returns c with p applied. c is not modified.
func (p Patch) apply(c *Channel) *Channel {
	out := *c
	if p.Name != nil {
		out.ChannelName = *p.Name
	}
	if p.Description != nil {
		out.ChannelDescription = *p.Description
	}
	if p.Tags != nil {
		out.ChannelTags = slices.Clone(*p.Tags)
	}
	if p.Metadata != nil {
		m, _ := mergePatch(copyValue(map[string]any(c.ChannelMetadata)), p.Metadata).(map[string]any)
		out.ChannelMetadata = m
	}
	return &out
}

// mergePatch applies patch to target as RFC 7396 says and returns the result. target may be
// modified.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergePatch(tm[k], v)
	}
	return tm
}

// copyValue deep-copies a decoded JSON value.
func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = copyValue(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = copyValue(e)
		}
		return l
	}
	return v
}

// normalize fills the defaults (tags [] and metadata {} rather than null) and drops repeated tags,
// keeping the first occurrence of each, in time linear in the number of tags. It returns a copy.
func normalize(c *Channel) *Channel {
	out := *c
	tags := make([]string, 0, min(len(c.ChannelTags), MaxTags+1))
	seen := map[string]struct{}{}
	for _, t := range c.ChannelTags {
		if _, dup := seen[t]; !dup {
			seen[t] = struct{}{}
			tags = append(tags, t)
		}
	}
	out.ChannelTags = tags
	if out.ChannelMetadata == nil {
		out.ChannelMetadata = map[string]any{}
	}
	return &out
}

// validate checks a normalized channel; checkURL applies the operator's target rules to
// endpoint_url.
func validate(c *Channel, checkURL func(string) error) error {
	if err := httpx.CheckID(fieldChannelID, c.ChannelID); err != nil {
		var he *httpx.Error
		if errors.As(err, &he) {
			he.Err = ErrInvalid
		}
		return err
	}
	if err := checkText(fieldChannelName, c.ChannelName, MaxNameLen); err != nil {
		return err
	}
	if err := checkText(fieldChannelDesc, c.ChannelDescription, MaxDescriptionLen); err != nil {
		return err
	}
	if len(c.ChannelTags) > MaxTags {
		return invalid(fieldChannelTags, "channel_tags may hold at most %d different tags", MaxTags)
	}
	for i, t := range c.ChannelTags {
		n := utf8.RuneCountInString(t)
		if n == 0 || n > MaxTagLen {
			return invalid(fieldChannelTags, "channel_tags[%d] must be 1 to %d characters", i, MaxTagLen)
		}
		if !utf8.ValidString(t) || hasControl(t) {
			return invalid(fieldChannelTags, "channel_tags[%d] must be valid UTF-8 without control characters", i)
		}
	}
	if d := depth(c.ChannelMetadata, 0); d > MaxMetadataDepth {
		return invalid(fieldChannelMeta, "channel_metadata is nested more than %d levels deep", MaxMetadataDepth)
	}
	if b, err := json.Marshal(c.ChannelMetadata); err != nil {
		return invalid(fieldChannelMeta, "channel_metadata cannot be encoded as JSON")
	} else if len(b) > MaxMetadataBytes {
		return invalid(fieldChannelMeta, "channel_metadata is %d bytes of JSON; at most %d are allowed", len(b), MaxMetadataBytes)
	}
	raw, ok := c.ChannelMetadata["endpoint_url"]
	if !ok || raw == nil {
		return missing(fieldEndpointURL)
	}
	u, ok := raw.(string)
	if !ok {
		return invalid(fieldEndpointURL, "channel_metadata.endpoint_url must be a string")
	}
	if u == "" {
		return missing(fieldEndpointURL)
	}
	if err := checkURL(u); err != nil {
		return invalid(fieldEndpointURL, "channel_metadata.endpoint_url is not allowed: %s", err.Error())
	}
	return nil
}

func checkText(field, s string, max int) error {
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(field, "%s may be at most %d characters, not %d", field, max, n)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "%s must be valid UTF-8", field)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// depth is the nesting depth of a decoded JSON value (a scalar is 0).
func depth(v any, d int) int {
	if d > MaxMetadataDepth {
		return d
	}
	best := d
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			best = max(best, depth(e, d+1))
		}
	case []any:
		for _, e := range t {
			best = max(best, depth(e, d+1))
		}
	}
	return best
}

// tagDiff returns the tags in old but not in new, and those in new but not in old.
func tagDiff(old, new []string) (removed, added []string) {
	for _, t := range old {
		if !slices.Contains(new, t) {
			removed = append(removed, t)
		}
	}
	for _, t := range new {
		if !slices.Contains(old, t) {
			added = append(added, t)
		}
	}
	return removed, added
}
