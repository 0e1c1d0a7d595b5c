package channels

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/httpx"
)

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter, code, field, msg string
	}{
		{`{"channel_tags": {"$regex": "sl.*"}}`, CodeUnknownOperator, "channel_tags", "$regex"},
		{`{"channel_metadata.chat_type": {"$gt": 1}}`, CodeUnknownOperator, "channel_metadata.chat_type", "$gt"},
		{`{"$nor": [{"channel_id": "a"}]}`, CodeUnknownOperator, "$nor", "$nor"},
		{`{"$where": "1"}`, CodeUnknownOperator, "$where", "$where"},
		{`{"owner": "bob"}`, httpx.CodeUnknownField, "owner", "owner"},
		{`{"channel_metadata": {"endpoint_url": "x"}}`, httpx.CodeUnknownField, "channel_metadata", "channel_metadata.<key>"},
		{`{"channel_metadata.": 1}`, httpx.CodeUnknownField, "channel_metadata.", "empty key"},
		{`{"channel_metadata.a..b": 1}`, httpx.CodeUnknownField, "channel_metadata.a..b", "empty key"},
		{`{"$and": [{"channel_id": "a"}, {"bogus": 1}]}`, httpx.CodeUnknownField, "bogus", "bogus"},
		{`{"$or": [{"channel_tags": {"$all": ["a"], "$size": 1}}]}`, CodeUnknownOperator, "channel_tags", "$size"},
		{`{"channel_tags": {"$in": "slack"}}`, httpx.CodeInvalidValue, "channel_tags", "list"},
		{`{"channel_tags": {"$nin": {"a": 1}}}`, httpx.CodeInvalidValue, "channel_tags", "list"},
		{`{"channel_tags": {"$all": 3}}`, httpx.CodeInvalidValue, "channel_tags", "list"},
		{`{"channel_name": {"$exists": 1}}`, httpx.CodeInvalidValue, "channel_name", "true or false"},
		{`{"channel_name": {"$eq": "a", "b": 1}}`, httpx.CodeInvalidValue, "channel_name", "mixes"},
		{`{"$and": []}`, httpx.CodeInvalidValue, "$and", "non-empty"},
		{`{"$or": {"channel_id": "a"}}`, httpx.CodeInvalidValue, "$or", "list"},
		{`{"$or": ["a"]}`, httpx.CodeInvalidValue, "$or", "filter object"},
		{`[]`, httpx.CodeInvalidValue, "", "JSON object"},
		{`"x"`, httpx.CodeInvalidValue, "", "JSON object"},
		{`{"channel_id": }`, httpx.CodeInvalidJSON, "", "not valid JSON"},
		{`{"channel_id": "a"} {}`, httpx.CodeInvalidJSON, "", "after the JSON"},
		{`{"channel_id": "a"`, httpx.CodeInvalidJSON, "", "truncated"},
		{strings.Repeat(`{"$and": [`, MaxFilterDepth+2) + `{}` + strings.Repeat(`]}`, MaxFilterDepth+2), httpx.CodeInvalidValue, "", "levels deep"},
	}
	in1000 := `{"channel_id": {"$in": [` + strings.TrimSuffix(strings.Repeat(`"x",`, MaxFilterValues), ",") + `]}}`
	cases = append(cases,
		struct{ filter, code, field, msg string }{`{"$or": [` + in1000 + `,` + in1000 + `,` + in1000 + `]}`, httpx.CodeInvalidValue, "", "at most 2000"},
		struct{ filter, code, field, msg string }{`{"channel_id": {"$in": [` + strings.Repeat(`1,`, MaxFilterValues) + `1]}}`, httpx.CodeInvalidValue, "channel_id", "at most 1000"},
	)
	for _, tc := range cases {
		_, err := ParseFilter([]byte(tc.filter))
		var he *httpx.Error
		if !errors.As(err, &he) {
			t.Errorf("%s: err %v, want a 400", tc.filter, err)
			continue
		}
		if he.Status != 400 || he.Code != tc.code || he.Field != tc.field || !strings.Contains(he.Message, tc.msg) {
			t.Errorf("%.60s: got %d %s field=%q %q; want %s field=%q containing %q", tc.filter, he.Status, he.Code, he.Field, he.Message, tc.code, tc.field, tc.msg)
		}
	}
}

func TestParseFilterTree(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{}`:                                   `$and()`,
		`{"channel_tags": {"$in": ["slack"]}}`: `channel_tags $in ["slack"]`,
		`{"channel_name": "a", "channel_id": {"$ne": "b", "$exists": true}}`:                      `$and(channel_id $exists true, channel_id $ne "b", channel_name $eq "a")`,
		`{"$or": [{"channel_metadata.chat_type": null}, {"channel_tags": {"$all": ["a", "b"]}}]}`: `$or(channel_metadata.chat_type $eq null, channel_tags $all ["a","b"])`,
		`{"channel_metadata.o": {"k": {"$in": 1}}}`:                                               `channel_metadata.o $eq {"k":{"$in":1}}`,
		`{"channel_metadata.n": 1.50}`:                                                            `channel_metadata.n $eq 1.50`,
	}
	for in, want := range cases {
		f, err := ParseFilter([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := f.String(); got != want {
			t.Errorf("%s parsed as %s, want %s", in, got, want)
		}
	}
}

// TestPlan checks which filters the planner answers from the indexes.
func TestPlan(t *testing.T) {
	t.Parallel()
	k := newKeys("p")
	cases := map[string]bool{
		`{}`:                                                      false,
		`{"channel_tags": "a"}`:                                   true,
		`{"channel_tags": {"$in": ["a", "b"]}}`:                   true,
		`{"channel_tags": {"$all": ["a", "b"]}}`:                  true,
		`{"channel_tags": []}`:                                    false,
		`{"channel_tags": {"$nin": ["a"]}}`:                       false,
		`{"channel_id": {"$in": ["a"]}}`:                          true,
		`{"channel_name": "a"}`:                                   false,
		`{"channel_name": "a", "channel_tags": "b"}`:              true,
		`{"$or": [{"channel_tags": "a"}, {"channel_id": "b"}]}`:   true,
		`{"$or": [{"channel_tags": "a"}, {"channel_name": "b"}]}`: false,
	}
	for in, want := range cases {
		f, err := ParseFilter([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if _, got := planFor(f.root, k); got != want {
			t.Errorf("%s: indexed %v, want %v", in, got, want)
		}
	}
	// $and picks its most selective condition by index size.
	f, _ := ParseFilter([]byte(`{"$and": [{"channel_tags": "big"}, {"channel_tags": {"$in": ["s1", "s2"]}}]}`))
	p, _ := planFor(f.root, k)
	var zs, ids []string
	flatten(choose(p, map[string]int64{k.tag("big"): 1000, k.tag("s1"): 3, k.tag("s2"): 4}), &zs, &ids)
	if strings.Join(zs, ",") != k.tag("s1")+","+k.tag("s2") {
		t.Fatalf("chose %v", zs)
	}
	zs = nil
	flatten(choose(p, map[string]int64{k.tag("big"): 5, k.tag("s1"): 3, k.tag("s2"): 4}), &zs, &ids)
	if strings.Join(zs, ",") != k.tag("big") {
		t.Fatalf("chose %v", zs)
	}
}

// TestNumbersEqual: numbers compare by value, exactly, whatever their notation.
func TestNumbersEqual(t *testing.T) {
	t.Parallel()
	n := func(s string) json.Number { return json.Number(s) }
	cases := []struct {
		a, b any
		want bool
	}{
		{n("1"), n("1"), true},
		{n("1"), n("1.0"), true},
		{n("1"), n("10e-1"), true},
		{n("1"), n("0.1e1"), true},
		{n("1"), n("0.001E+3"), true},
		{n("100"), n("1e2"), true},
		{n("100.5"), n("1005e-1"), true},
		{n("-2.50"), n("-25E-1"), true},
		{n("0"), n("-0.0e7"), true},
		{n("0"), n("0.0001"), false},
		{n("1"), n("-1"), false},
		{n("1"), n("2"), false},
		{n("12"), n("1.2"), false},
		{n("12"), n("21"), false},
		{n("1.5"), n("1.05"), false},
		{n("9007199254740993"), n("9007199254740992"), false}, // past float64's exact integers
		{n("1.00000000000000000000000000000000000000001"), n("1"), false},
		{n("1e999999999999999999999"), n("1e999999999999999999999"), true},
		{n("1e999999999999999999999"), n("10e999999999999999999998"), false}, // exponents past 2^60: by text
		{1.5, n("1.5"), true},
		{0.1, n("0.1"), true},
		{1e21, n("1e21"), true},
		{n("1"), "1", false},
		{"1", n("1"), false},
	}
	for _, c := range cases {
		if got := numbersEqual(c.a, c.b); got != c.want {
			t.Errorf("numbersEqual(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := numbersEqual(c.b, c.a); got != c.want {
			t.Errorf("numbersEqual(%v, %v) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

// TestFilterTermLimitIsExact: a filter of exactly MaxFilterTerms terms parses, one more does not.
func TestFilterTermLimitIsExact(t *testing.T) {
	t.Parallel()
	in := func(n int) string {
		return `{"channel_id": {"$in": [` + strings.TrimSuffix(strings.Repeat(`"x",`, n), ",") + `]}}`
	}
	// $or, then each condition and its values.
	exact := `{"$or": [` + in(MaxFilterValues-1) + `, ` + in(MaxFilterTerms-MaxFilterValues-2) + `]}`
	if _, err := ParseFilter([]byte(exact)); err != nil {
		t.Fatalf("a filter of %d terms: %v", MaxFilterTerms, err)
	}
	over := `{"$or": [` + in(MaxFilterValues-1) + `, ` + in(MaxFilterTerms-MaxFilterValues-1) + `]}`
	if _, err := ParseFilter([]byte(over)); err == nil || !strings.Contains(err.Error(), "at most 2000") {
		t.Fatalf("a filter of %d terms: %v, want refused", MaxFilterTerms+1, err)
	}
}
