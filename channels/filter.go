package channels

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/heraldhq/herald/httpx"
)

// Filter limits and codes.
const (
	// MaxFilterDepth bounds the nesting of $and / $or.
	MaxFilterDepth = 16
	// MaxFilterValues bounds the values of one $in / $nin / $all list.
	MaxFilterValues = 1000
	// MaxFilterTerms bounds a whole filter: conditions plus the values of their lists. Every
	// candidate channel is tested against the filter, so this bounds the work per channel.
	MaxFilterTerms = 2000
	// CodeUnknownOperator is the error code for a filter operator herald does not know.
	CodeUnknownOperator = "unknown_operator"
	// maxPathLen bounds a channel_metadata.<key> path.
	maxPathLen = 1024
)

// Filter is a parsed channel filter (the MongoDB subset of the contract). The zero value is not
// valid; use ParseFilter or MatchAll.
type Filter struct {
	root node
	// needsMeta says whether a condition reads channel_metadata, so a query decodes the
	// metadata of candidate channels only when it must.
	needsMeta bool
}

// MatchAll returns the filter {}.
func MatchAll() *Filter { return &Filter{root: andNode{}} }

// Match reports whether c satisfies the filter.
func (f *Filter) Match(c *Channel) bool { return f.root.match(c) }

// String renders the parsed filter, for tests and logs.
func (f *Filter) String() string { return f.root.String() }

// node is one node of the filter's syntax tree.
type node interface {
	match(c *Channel) bool
	String() string
}

// andNode matches when every child matches; with no children it matches everything ({}).
type andNode struct{ kids []node }

// orNode matches when at least one child matches.
type orNode struct{ kids []node }

// op is a comparison operator.
type op string

const (
	opEq     op = "$eq"
	opNe     op = "$ne"
	opIn     op = "$in"
	opNin    op = "$nin"
	opAll    op = "$all"
	opExists op = "$exists"
)

// condNode compares one field with a value: {"field": {"$op": value}}.
type condNode struct {
	field fieldRef
	op    op
	val   any   // $eq / $ne
	vals  []any // $in / $nin / $all
	want  bool  // $exists
}

// fieldKind names the channel field a condition reads.
type fieldKind int

const (
	fID fieldKind = iota
	fName
	fDesc
	fTags
	fMeta
)

type fieldRef struct {
	kind fieldKind
	path string   // as written in the filter, e.g. "channel_metadata.chat_type"
	meta []string // for fMeta: the keys below channel_metadata
}

func (n andNode) match(c *Channel) bool {
	for _, k := range n.kids {
		if !k.match(c) {
			return false
		}
	}
	return true
}

func (n orNode) match(c *Channel) bool {
	for _, k := range n.kids {
		if k.match(c) {
			return true
		}
	}
	return false
}

func (n condNode) match(c *Channel) bool {
	if n.field.kind == fTags {
		if ok, done := n.matchTags(c.ChannelTags); done {
			return ok
		}
	}
	return n.matchValue(c)
}

// matchValue is the general path of match: compare the values the field reaches. A list of
// query values ($in, $nin, $all) is compared with the reached values walked once.
func (n condNode) matchValue(c *Channel) bool {
	eq := func(q any) bool {
		return n.field.reaches(c, func(v any, present bool) bool { return eqMatch(v, present, q) })
	}
	if len(n.vals) > 1 {
		type reached struct {
			v       any
			present bool
		}
		var got []reached
		n.field.reaches(c, func(v any, present bool) bool {
			got = append(got, reached{v, present})
			return false
		})
		eq = func(q any) bool {
			return slices.ContainsFunc(got, func(r reached) bool { return eqMatch(r.v, r.present, q) })
		}
	}
	switch n.op {
	case opEq:
		return eq(n.val)
	case opNe:
		return !eq(n.val)
	case opIn:
		return slices.ContainsFunc(n.vals, eq)
	case opNin:
		return !slices.ContainsFunc(n.vals, eq)
	case opAll:
		// as in MongoDB, {"$all": []} matches nothing
		return len(n.vals) > 0 && !slices.ContainsFunc(n.vals, func(q any) bool { return !eq(q) })
	case opExists:
		return n.field.reaches(c, func(_ any, present bool) bool { return present }) == n.want
	}
	return false
}

// matchTags answers the common tag conditions (a tag, $in and $all of tags) without converting
// the tag list; done is false for the rest, which take the general path.
func (n condNode) matchTags(tags []string) (ok, done bool) {
	has := func(q any) (bool, bool) {
		s, isStr := q.(string)
		return isStr && slices.Contains(tags, s), isStr
	}
	switch n.op {
	case opEq, opNe:
		found, isStr := has(n.val)
		if !isStr {
			return false, false
		}
		return found == (n.op == opEq), true
	case opIn, opNin, opAll:
		if n.op == opAll && len(n.vals) == 0 {
			return false, true
		}
		any, all := false, true
		for _, q := range n.vals {
			found, isStr := has(q)
			if !isStr {
				return false, false
			}
			any = any || found
			all = all && found
		}
		switch n.op {
		case opIn:
			return any, true
		case opNin:
			return !any, true
		}
		return all, true
	}
	return false, false
}

func (n andNode) String() string { return "$and" + listString(n.kids) }
func (n orNode) String() string  { return "$or" + listString(n.kids) }
func (n condNode) String() string {
	var arg any
	switch n.op {
	case opIn, opNin, opAll:
		arg = n.vals
	case opExists:
		arg = n.want
	default:
		arg = n.val
	}
	b, _ := json.Marshal(arg)
	return n.field.path + " " + string(n.op) + " " + string(b)
}

func listString(ns []node) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = n.String()
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// reaches calls visit with each value the field reaches in c, until visit returns true, and
// reports whether it did. present is false where the field reaches nothing. channel_id,
// channel_name, channel_description and channel_tags are one value each, always present; a
// metadata path reaches what walk finds.
func (f fieldRef) reaches(c *Channel, visit func(v any, present bool) bool) bool {
	switch f.kind {
	case fID:
		return visit(c.ChannelID, true)
	case fName:
		return visit(c.ChannelName, true)
	case fDesc:
		return visit(c.ChannelDescription, true)
	case fTags:
		l := make([]any, len(c.ChannelTags))
		for i, t := range c.ChannelTags {
			l[i] = t
		}
		return visit(l, true)
	}
	return walk(map[string]any(c.ChannelMetadata), f.meta, visit)
}

// walk follows path down from v as MongoDB does, calling visit for what it reaches until visit
// returns true (and then returns true). An object's key leads to its value. On a list, a key that
// is a whole number (0, 1, ... without leading zeros) picks the element at that index; any other
// key applies the rest of the path to every element that is an object. Where the path reaches
// nothing (a missing key, an index past the end, an empty list, an element or value that is not an
// object), visit gets present false.
func walk(v any, path []string, visit func(v any, present bool) bool) bool {
	if len(path) == 0 {
		return visit(v, true)
	}
	switch t := v.(type) {
	case map[string]any:
		if e, ok := t[path[0]]; ok {
			return walk(e, path[1:], visit)
		}
	case []any:
		if i, ok := listIndex(path[0]); ok && i < len(t) {
			return walk(t[i], path[1:], visit)
		} else if !ok && len(t) > 0 {
			return walkElements(t, path, visit)
		}
	}
	return visit(nil, false)
}

// walkElements applies path to every element of the list l, as walk does.
func walkElements(l []any, path []string, visit func(v any, present bool) bool) bool {
	for _, e := range l {
		m, ok := e.(map[string]any)
		if ok && walk(m, path, visit) || !ok && visit(nil, false) {
			return true
		}
	}
	return false
}

// listIndex reads a path key as a list index: a whole number in canonical form (no sign, no
// leading zero), small enough for an int.
func listIndex(key string) (int, bool) {
	if key == "" || len(key) > 9 || (len(key) > 1 && key[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return 0, false
		}
		n = n*10 + int(key[i]-'0')
	}
	return n, true
}

// eqMatch is MongoDB equality: null matches a missing or null field; a list field matches when it
// equals the value or one of its elements does.
func eqMatch(v any, present bool, q any) bool {
	if q == nil && (!present || v == nil) {
		return true
	}
	if !present {
		return false
	}
	if valuesEqual(v, q) {
		return true
	}
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if valuesEqual(e, q) {
				return true
			}
		}
	}
	return false
}

// valuesEqual compares decoded JSON values; numbers compare by value (1 equals 1.0).
func valuesEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case json.Number:
		return numbersEqual(x, b)
	case float64:
		return numbersEqual(x, b)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !valuesEqual(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// ParseFilter parses a filter from its JSON text. An empty body is {} (everything). Errors are
// 400 *httpx.Error values naming the field (the field path, or the operator at the top level).
func ParseFilter(b []byte) (*Filter, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return MatchAll(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, httpx.JSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, httpx.BadRequest(httpx.CodeInvalidJSON, "", "filter has data after the JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, httpx.BadRequest(httpx.CodeInvalidValue, "", "the filter must be a JSON object, e.g. {\"channel_tags\": {\"$in\": [\"slack\"]}}")
	}
	var p parser
	root, err := p.parseDoc(m, 0)
	if err != nil {
		return nil, err
	}
	return &Filter{root: root, needsMeta: readsMeta(root)}, nil
}

func readsMeta(n node) bool {
	switch t := n.(type) {
	case andNode:
		return slices.ContainsFunc(t.kids, readsMeta)
	case orNode:
		return slices.ContainsFunc(t.kids, readsMeta)
	case condNode:
		return t.field.kind == fMeta
	}
	return true
}

// parser parses one filter, counting its terms as it goes: every condition, every value of a $in,
// $nin or $all list, and every $and or $or (written or implied by a document of several fields).
// The count is checked before each step whose work grows with the input, so a filter past
// MaxFilterTerms is refused before it is sorted or parsed whole.
type parser struct{ terms int }

// room refuses n more terms when they would pass MaxFilterTerms.
func (p *parser) room(n int) error {
	if p.terms+n > MaxFilterTerms {
		return httpx.BadRequest(httpx.CodeInvalidValue, "", "the filter may hold at most %d conditions and values", MaxFilterTerms)
	}
	return nil
}

// add counts n terms, refusing them past MaxFilterTerms.
func (p *parser) add(n int) error {
	if err := p.room(n); err != nil {
		return err
	}
	p.terms += n
	return nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// parseDoc parses a filter document: fields and the logical operators $and / $or, all of which
// must hold.
func (p *parser) parseDoc(m map[string]any, depth int) (node, error) {
	if depth > MaxFilterDepth {
		return nil, httpx.BadRequest(httpx.CodeInvalidValue, "", "the filter nests $and/$or more than %d levels deep", MaxFilterDepth)
	}
	if err := p.room(len(m)); err != nil { // every key is at least one term
		return nil, err
	}
	var kids []node
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch {
		case k == "$and" || k == "$or":
			n, err := p.parseLogical(k, v, depth)
			if err != nil {
				return nil, err
			}
			kids = append(kids, n)
		case strings.HasPrefix(k, "$"):
			return nil, httpx.BadRequest(CodeUnknownOperator, quoteOp(k), "unknown operator %s at the top level of the filter; the top level takes fields, $and and $or", quoteOp(k))
		default:
			f, err := parseField(k)
			if err != nil {
				return nil, err
			}
			conds, err := p.parseExpr(f, v)
			if err != nil {
				return nil, err
			}
			kids = append(kids, conds...)
		}
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return andNode{kids: kids}, p.add(1)
}

// parseLogical parses the list v of $and or $or (op) at depth.
func (p *parser) parseLogical(op string, v any, depth int) (node, error) {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return nil, httpx.BadRequest(httpx.CodeInvalidValue, op, "%s must be a non-empty list of filter objects", op)
	}
	if len(l) > MaxFilterValues {
		return nil, httpx.BadRequest(httpx.CodeInvalidValue, op, "%s may hold at most %d filters", op, MaxFilterValues)
	}
	if err := p.add(1); err != nil {
		return nil, err
	}
	if err := p.room(len(l)); err != nil { // every entry is at least one term
		return nil, err
	}
	sub := make([]node, 0, len(l))
	for _, e := range l {
		em, ok := e.(map[string]any)
		if !ok {
			return nil, httpx.BadRequest(httpx.CodeInvalidValue, op, "every entry of %s must be a filter object", op)
		}
		n, err := p.parseDoc(em, depth+1)
		if err != nil {
			return nil, err
		}
		sub = append(sub, n)
	}
	if op == "$and" {
		return andNode{kids: sub}, nil
	}
	return orNode{kids: sub}, nil
}

func quoteOp(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// parseField resolves a field path.
func parseField(path string) (fieldRef, error) {
	switch path {
	case fieldChannelID:
		return fieldRef{kind: fID, path: path}, nil
	case fieldChannelName:
		return fieldRef{kind: fName, path: path}, nil
	case fieldChannelDesc:
		return fieldRef{kind: fDesc, path: path}, nil
	case fieldChannelTags:
		return fieldRef{kind: fTags, path: path}, nil
	case fieldChannelMeta:
		return fieldRef{}, httpx.BadRequest(httpx.CodeUnknownField, path, "filter on channel_metadata.<key> (e.g. channel_metadata.chat_type), not on channel_metadata itself")
	}
	if rest, ok := strings.CutPrefix(path, fieldChannelMetaDot); ok {
		if len(path) > maxPathLen {
			return fieldRef{}, httpx.BadRequest(httpx.CodeUnknownField, quoteOp(path), "field path is longer than %d characters", maxPathLen)
		}
		parts := strings.Split(rest, ".")
		for _, p := range parts {
			if p == "" {
				return fieldRef{}, httpx.BadRequest(httpx.CodeUnknownField, quoteOp(path), "field %q has an empty key in its path", quoteOp(path))
			}
		}
		return fieldRef{kind: fMeta, path: path, meta: parts}, nil
	}
	return fieldRef{}, httpx.BadRequest(httpx.CodeUnknownField, quoteOp(path),
		"unknown field %q in the filter; filter on channel_id, channel_name, channel_description, channel_tags or channel_metadata.<key>", quoteOp(path))
}

// parseExpr parses the value given for a field: either an operator object ({"$in": [...]}), whose
// operators must all hold, or a value to compare for equality.
func (p *parser) parseExpr(f fieldRef, v any) ([]node, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []node{condNode{field: f, op: opEq, val: v}}, p.add(1)
	}
	ops, plain := 0, 0
	for k := range m {
		if strings.HasPrefix(k, "$") {
			ops++
		} else {
			plain++
		}
	}
	if ops == 0 {
		return []node{condNode{field: f, op: opEq, val: v}}, p.add(1) // equality with an object
	}
	if plain > 0 {
		return nil, httpx.BadRequest(httpx.CodeInvalidValue, f.path, "the value of %s mixes operators ($...) with plain keys", f.path)
	}
	if err := p.room(ops); err != nil {
		return nil, err
	}
	out := make([]node, 0, ops)
	for _, k := range sortedKeys(m) {
		c := condNode{field: f, op: op(k)}
		arg := m[k]
		switch c.op {
		case opEq, opNe:
			c.val = arg
		case opIn, opNin, opAll:
			l, ok := arg.([]any)
			if !ok {
				return nil, httpx.BadRequest(httpx.CodeInvalidValue, f.path, "%s of %s needs a list of values", k, f.path)
			}
			if len(l) > MaxFilterValues {
				return nil, httpx.BadRequest(httpx.CodeInvalidValue, f.path, "%s of %s may hold at most %d values", k, f.path, MaxFilterValues)
			}
			c.vals = l
		case opExists:
			b, ok := arg.(bool)
			if !ok {
				return nil, httpx.BadRequest(httpx.CodeInvalidValue, f.path, "$exists of %s needs true or false", f.path)
			}
			c.want = b
		default:
			return nil, httpx.BadRequest(CodeUnknownOperator, f.path,
				"unknown operator %s on %s; supported: $eq, $ne, $in, $nin, $all, $exists (and $and, $or at the top level)", quoteOp(k), f.path)
		}
		if err := p.add(1 + len(c.vals)); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
