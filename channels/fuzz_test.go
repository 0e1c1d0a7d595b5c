package channels

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/heraldhq/herald/httpx"
	"github.com/heraldhq/herald/ids"
)

// The fuzz targets' property: whatever the bytes, no panic, and either a valid result or a 400
// *httpx.Error. The seeds below (and any file under testdata/fuzz) run in every `go test`; run
// `go test -fuzz FuzzParseFilter ./channels/` to search further.

func check400(t *testing.T, in []byte, err error) {
	t.Helper()
	var he *httpx.Error
	if !errors.As(err, &he) || he.Status != 400 || he.Code == "" || he.Message == "" {
		t.Fatalf("input %q: error %v (%T) is not a 400 *httpx.Error", in, err, err)
	}
}

// fuzzChannel is the document filters are evaluated against.
func fuzzChannel() *Channel {
	return &Channel{
		ChannelID: "slack-sim", ChannelName: "Slack", ChannelDescription: "d",
		ChannelTags: []string{"slack", "test"},
		ChannelMetadata: map[string]any{
			"endpoint_url": "https://h.example/in", "chat_type": "slack",
			"n": json.Number("2"), "o": map[string]any{"k": []any{"v", nil, json.Number("1e3")}}, "z": nil,
		},
	}
}

var filterSeeds = []string{
	``, `{}`, `null`, `[]`, `"x"`, `1`, `{"channel_tags": {"$in": ["slack"]}}`,
	`{"channel_tags": "slack"}`, `{"channel_tags": ["slack", "test"]}`, `{"channel_tags": []}`,
	`{"channel_tags": {"$all": ["slack", "test"]}}`, `{"channel_tags": {"$all": []}}`,
	`{"channel_tags": {"$nin": ["x"], "$exists": true}}`, `{"channel_id": {"$in": ["a", 1, null, [], {}]}}`,
	`{"channel_id": {"$ne": null}}`, `{"channel_name": {"$eq": {"$eq": 1}}}`,
	`{"channel_metadata.o.k": {"$all": [null, 1000]}}`, `{"channel_metadata.n": 2.0}`,
	`{"channel_metadata.n": 1e400}`, `{"channel_metadata.n": -0}`,
	`{"channel_metadata.z": null, "channel_metadata.q": {"$exists": false}}`,
	`{"$and": [{"channel_tags": "a"}, {"$or": [{"channel_id": "b"}, {"channel_name": "c"}]}]}`,
	`{"$or": []}`, `{"$or": [1]}`, `{"$nor": []}`, `{"channel_tags": {"$regex": "x"}}`,
	`{"channel_metadata": 1}`, `{"channel_metadata.": 1}`, `{"channel_metadata..a": 1}`,
	`{"channel_tags": {"$in": 1}}`, `{"channel_tags": {"$exists": "yes"}}`, `{"a": 1} x`,
	`{"channel_name": {"$eq": 1, "b": 2}}`, `{"\u0000": 1}`, `{"channel_tags": "\ud800"}`,
	`{"$and": [{"$and": [{"$and": [{"$and": [{}]}]}]}]}`,
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add([]byte(s))
	}
	c := fuzzChannel()
	k := newKeys("fuzz")
	f.Fuzz(func(t *testing.T, in []byte) {
		flt, err := ParseFilter(in)
		if err != nil {
			check400(t, in, err)
			return
		}
		if flt == nil || flt.root == nil {
			t.Fatalf("input %q: no error and no filter", in)
		}
		_ = flt.String()
		matched := flt.Match(c)
		// The fast path for tag conditions agrees with the general one.
		for _, other := range []*Channel{c, {ChannelID: "x", ChannelTags: []string{}}, {ChannelID: "y", ChannelTags: []string{"test"}}} {
			walkConds(flt.root, func(n condNode) {
				if n.match(other) != n.matchValue(other) {
					t.Fatalf("input %q: %s on tags %v: fast path %v, general path %v", in, n, other.ChannelTags, n.match(other), n.matchValue(other))
				}
			})
		}
		// The index plan, whatever it chooses, must keep every match among its candidates.
		if p, ok := planFor(flt.root, k); ok {
			var ks []string
			collectKeys(p, &ks)
			cards := map[string]int64{}
			for i, key := range ks {
				cards[key] = int64(i % 3)
			}
			if matched && !planCovers(p, cards, c, k) {
				t.Fatalf("input %q matches %s but the plan %#v cannot find it", in, c.ChannelID, p)
			}
		}
	})
}

func walkConds(n node, fn func(condNode)) {
	switch t := n.(type) {
	case andNode:
		for _, k := range t.kids {
			walkConds(k, fn)
		}
	case orNode:
		for _, k := range t.kids {
			walkConds(k, fn)
		}
	case condNode:
		fn(t)
	}
}

// planCovers reports whether the chosen plan's candidates include c.
func planCovers(p pnode, cards map[string]int64, c *Channel, k keys) bool {
	var zs, ids []string
	flatten(choose(p, cards), &zs, &ids)
	for _, id := range ids {
		if id == c.ChannelID {
			return true
		}
	}
	for _, z := range zs {
		for _, tag := range c.ChannelTags {
			if z == k.tag(tag) {
				return true
			}
		}
	}
	return false
}

var bodySeeds = []string{
	seedChannel, ``, `{}`, `null`, `[]`, `"s"`, `{"channel_id": "a"}`,
	`{"channel_id": "a", "channel_metadata": {"endpoint_url": "https://h.example/"}}`,
	`{"channel_id": "a", "channel_metadata": {"endpoint_url": "http://127.0.0.1/"}}`,
	`{"channel_id": "a", "channel_metadata": {"endpoint_url": null, "x": {"y": null}}}`,
	`{"channel_id": null, "channel_name": null, "channel_tags": null, "channel_metadata": null}`,
	`{"channel_id": "a", "channel_tags": ["x", "x", ""], "channel_metadata": {"endpoint_url": 1}}`,
	`{"channel_id": 1}`, `{"channel_id": "a b"}`, `{"channel_tags": "x"}`, `{"channel_tags": [1]}`,
	`{"channel_metadata": []}`, `{"channel_metadata": "x"}`, `{"extra": 1}`, `{"channel_id": "a"} {}`,
	`{"channel_name": "\ud800"}`, `{"channel_metadata": {"a": 1e999}}`,
	`{"channel_metadata": {"endpoint_url": "https://h.example/", "d": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}`,
}

func FuzzDecodeCreate(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	pol := httpPolicy
	checkURL := func(u string) error { _, err := pol.CheckURL(u); return err }
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := DecodeCreate(in)
		if err != nil {
			check400(t, in, err)
			return
		}
		if c == nil || !ids.Valid(c.ChannelID) || c.ChannelMetadata == nil {
			t.Fatalf("input %q: decoded %+v", in, c)
		}
		// What Store.Create would store: valid, or refused with a 400 naming a field.
		n := normalize(c)
		if err := validate(n, checkURL); err != nil {
			check400(t, in, err)
			return
		}
		if _, err := json.Marshal(n); err != nil {
			t.Fatalf("input %q: a valid channel does not encode: %v", in, err)
		}
	})
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	pol := httpPolicy
	checkURL := func(u string) error { _, err := pol.CheckURL(u); return err }
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := DecodePatch("slack-sim", in)
		if err != nil {
			check400(t, in, err)
			return
		}
		base := fuzzChannel()
		before, _ := json.Marshal(base)
		out := normalize(p.apply(base))
		if after, _ := json.Marshal(base); string(after) != string(before) {
			t.Fatalf("input %q: applying the patch changed the original", in)
		}
		if out.ChannelID != "slack-sim" {
			t.Fatalf("input %q: the patch changed the id to %q", in, out.ChannelID)
		}
		if err := validate(out, checkURL); err != nil {
			check400(t, in, err)
		}
	})
}

func FuzzParsePage(f *testing.F) {
	for _, s := range [][2]string{{"", ""}, {"100", EncodeCursor("slack-sim")}, {"0", ""}, {"1001", ""}, {"-1", "!!"},
		{"1e3", "YQ"}, {"10", "YSBi"}, {" 5", "YQ=="}, {"99999999999999999999", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, limit, after string) {
		n, id, err := ParsePage(limit, after)
		if err != nil {
			check400(t, []byte(limit+" "+after), err)
			return
		}
		if n < 1 || n > MaxLimit || (id != "" && !ids.Valid(id)) || (after != "" && EncodeCursor(id) != after && id == "") {
			t.Fatalf("ParsePage(%q, %q) = %d, %q", limit, after, n, id)
		}
	})
}
