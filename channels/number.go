package channels

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Numbers in filters compare by value (1, 1.0, 10e-1 and 0.1e1 are equal) and exactly, in time
// linear in the length of the literals: a number is compared as its sign, its significant digits
// and the power of ten of the first of them, without arithmetic on the digits. (Parsing a long
// literal into a big float for every comparison took time quadratic in its length: seconds for a
// stored number of 60,000 digits met by a filter's $in list.)

// decimal is a number literal read for comparison by value.
type decimal struct {
	neg  bool
	mant string // the literal before its exponent, without the sign: digits and at most one point
	// first and last are the indexes in mant of the first and last nonzero digits; first < 0
	// when the number is zero.
	first, last int
	exp         int64 // the power of ten of the digit at mant[first]
	digits      int   // how many digits from mant[first] to mant[last], the point not counted
}

// maxExp bounds the exponents compared, so that adding a literal's length never overflows.
const maxExp = 1 << 60

// parseDecimal reads a JSON number literal (or Go's formatting of a float64). ok is false for
// anything else and for exponents past ±2^60.
func parseDecimal(s string) (d decimal, ok bool) {
	s, d.neg = strings.CutPrefix(s, "-")
	d.mant = s
	var e int64
	if i := exponentAt(s); i >= 0 {
		d.mant = s[:i]
		var err error
		if e, err = strconv.ParseInt(s[i+1:], 10, 64); err != nil || e > maxExp || e < -maxExp {
			return d, false
		}
	}
	point := strings.IndexByte(d.mant, '.')
	intDigits := point
	if point < 0 {
		intDigits = len(d.mant)
	}
	d.first, d.last = -1, -1
	for i := 0; i < len(d.mant); i++ {
		if c := d.mant[i]; c >= '1' && c <= '9' {
			d.first = i
			break
		} else if c != '0' && i != point {
			return d, false
		}
	}
	if d.first < 0 {
		return d, len(d.mant) > 0
	}
	for i := len(d.mant) - 1; ; i-- {
		if c := d.mant[i]; c >= '1' && c <= '9' {
			d.last = i
			break
		}
	}
	pos := d.first // the index of mant[first] among the digits, the point not counted
	d.digits = d.last - d.first + 1
	if point >= 0 && point < d.first {
		pos--
	}
	if point > d.first && point < d.last {
		d.digits--
	}
	d.exp = int64(intDigits-1-pos) + e
	return d, true
}

// exponentAt returns the index of the e or E of a number literal, or -1.
func exponentAt(s string) int {
	if i := strings.IndexByte(s, 'e'); i >= 0 {
		return i
	}
	return strings.IndexByte(s, 'E')
}

// equal reports whether d and o are the same number. It looks at the digits only when sign,
// exponent and number of digits agree.
func (d decimal) equal(o decimal) bool {
	if d.first < 0 || o.first < 0 {
		return d.first < 0 && o.first < 0 // 0 equals -0
	}
	if d.neg != o.neg || d.exp != o.exp || d.digits != o.digits {
		return false
	}
	for i, j := d.first, o.first; i <= d.last; i, j = i+1, j+1 {
		if d.mant[i] == '.' {
			i++
		}
		if o.mant[j] == '.' {
			j++
		}
		if d.mant[i] != o.mant[j] {
			return false
		}
	}
	return true
}

// numberText is the literal of a decoded JSON number: json.Number (what the store decodes) or a
// float64 (what a Go caller may put in a channel), formatted as the shortest literal that reads
// back as it.
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64), true
	}
	return "", false
}

// numbersEqual reports whether a and b are numbers of the same value. Numbers whose exponent is
// past ±2^60 are equal only to the same literal.
func numbersEqual(a, b any) bool {
	x, ok1 := numberText(a)
	y, ok2 := numberText(b)
	if !ok1 || !ok2 {
		return false
	}
	if x == y {
		return true
	}
	dx, ok1 := parseDecimal(x)
	dy, ok2 := parseDecimal(y)
	return ok1 && ok2 && dx.equal(dy)
}
