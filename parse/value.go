package parse

import (
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxValue is the largest magnitude a value may have: 1e100. A sum of such
// values, or of their squares (at most 1e200 each), stays finite however
// many lines a series gets (it would take 1e108 of them to overflow), so
// no running total, sum or percentile sketch can become ±Inf or NaN.
// DBL_MAX (1.7976931348623157e308, a common "unset" in loggers) is refused.
const MaxValue = 1e100

// ParseValue reads a number and its unit: [+-]?(digits[.digits]|.digits)
// ([eE][+-]?digits)? followed by letters, '%' or '/' only. An empty input is
// 1 with no unit. It reports false for anything else and for values whose
// magnitude is above MaxValue (±Inf included).
func ParseValue(v []byte) (f float64, unit []byte, ok bool) {
	if len(v) == 0 {
		return 1, nil, true
	}
	// The usual value, digits and an ASCII unit ("18ms", "200"), in one pass.
	var n int64
	i := 0
	for i < len(v) && i < 15 && isDigit(v[i]) {
		n = n*10 + int64(v[i]-'0')
		i++
	}
	if i > 0 && (i == len(v) || asciiUnitStart[v[i]]) {
		unit := v[i:]
		if len(unit) == 0 {
			return float64(n), nil, true
		}
		if asciiUnit(unit) {
			return float64(n), unit, true
		}
	}
	return parseValue(v)
}

// asciiUnitStart marks the bytes that can start an ASCII unit after the
// digits of a whole number: letters other than 'e' and 'E' (an exponent,
// maybe), '%' and '/'.
var asciiUnitStart = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '%' || c == '/') && c != 'e' && c != 'E'
	}
	return t
}()

// asciiUnit reports whether u is all ASCII letters, '%' and '/'.
func asciiUnit(u []byte) bool {
	for _, c := range u {
		if !unitByte[c] {
			return false
		}
	}
	return true
}

var unitByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '%' || c == '/'
	}
	return t
}()

func parseValue(v []byte) (f float64, unit []byte, ok bool) {
	i := 0
	if v[0] == '+' || v[0] == '-' {
		i++
	}
	intStart := i
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	intDigits := i - intStart
	if i < len(v) && v[i] == '.' {
		j := i + 1
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		if j == i+1 { // "5." or "." has no fraction digits
			return 0, nil, false
		}
		i = j
	} else if intDigits == 0 {
		return 0, nil, false
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		j := i + 1
		if j < len(v) && (v[j] == '+' || v[j] == '-') {
			j++
		}
		k := j
		for k < len(v) && isDigit(v[k]) {
			k++
		}
		if k > j { // an exponent needs digits; "2em" is 2 with unit "em"
			i = k
		}
	}
	num, unit := v[:i], v[i:]
	if !validUnit(unit) {
		return 0, nil, false
	}
	if len(unit) == 0 {
		unit = nil
	}
	// Whole numbers of up to 15 digits (router timings, byte counts) are
	// exact in a float64: no need for strconv.
	if ds := num[intStart:]; len(ds) == intDigits && intDigits <= 15 {
		var n int64
		for _, c := range ds {
			n = n*10 + int64(c-'0')
		}
		f := float64(n)
		if intStart > 0 && num[0] == '-' {
			f = -f
		}
		return f, unit, true
	}
	// string(num) does not escape (strconv clones it into errors), so this
	// conversion does not allocate.
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || !(math.Abs(f) <= MaxValue) { // NaN fails the comparison too
		return 0, nil, false
	}
	return f, unit, true
}

func validUnit(u []byte) bool {
	for i := 0; i < len(u); {
		c := u[i]
		if c < utf8.RuneSelf {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '%' || c == '/') {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(u[i:])
		if r == utf8.RuneError || !unicode.IsLetter(r) { // "µs" is fine
			return false
		}
		i += size
	}
	return true
}
