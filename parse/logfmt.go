package parse

import (
	"encoding/binary"
	"math/bits"
)

// pairs scans logfmt key/value pairs without allocating. It follows kr/logfmt:
// bytes <= 0x20, '=' and '"' outside a pair are skipped; a key is a run of
// bytes > 0x20 other than '=' and '"'; a value is a bare run of bytes > 0x20
// or a quoted string with backslash escapes. It keeps only offsets between
// calls (the pairs are returned), so that scanning stores no pointers.
type pairs struct {
	b            []byte
	i            int
	start        int  // where the current pair starts
	quoted       bool // the current value came from a quoted string and may hold escapes
	unterminated bool // scanning stopped at an open quote
}

func (s *pairs) reset(b []byte) {
	*s = pairs{b: b}
}

// keyByte marks the bytes of a key: > 0x20, not '=' and not '"'.
var keyByte = func() (t [256]bool) {
	for c := '!'; c < 256; c++ {
		t[c] = c != '=' && c != '"'
	}
	return t
}()

// next returns the next pair. It reports false at the end of the line or at
// an unterminated quote (then s.unterminated is set). The value is nil for
// a key without '='.
func (s *pairs) next() (key, val []byte, ok bool) {
	b, i := s.b, s.i
	if i < len(b) && b[i] == ' ' { // the usual separator: one space
		i++
	}
	for i < len(b) && !keyByte[b[i]] {
		i++
	}
	if i >= len(b) {
		s.i = i
		return nil, nil, false
	}
	start := i
	s.start = start
	if i+8 <= len(b) { // most keys end within 8 bytes: one word, inline
		if m := keyStops(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
		} else {
			i = keyEnd(b, i+8)
		}
	} else {
		i = keyEnd(b, i)
	}
	key = b[start:i]
	s.quoted = false
	if i < len(b) && b[i] == '=' {
		i++
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for {
				if i = quoteEnd(b, i); i >= len(b) {
					s.i = len(b)
					s.unterminated = true
					return nil, nil, false
				}
				if b[i] == '"' {
					break
				}
				s.quoted = true // a backslash: skip it and the byte it escapes
				i += 2
			}
			val = b[vs:i:i]
			i++ // closing quote
		} else {
			vs := i
			i = valueEnd(b, i)
			val = b[vs:i:i]
		}
	}
	s.i = i
	return key, val, true
}

// Scanning 8 bytes at a time (SWAR): with lo = 0x0101…01 and hi =
// 0x8080…80, (x - n·lo) &^ x & hi flags the bytes of x below n (n ≤ 0x80),
// and (x - lo) &^ x & hi its zero bytes. Bits above the first flagged
// byte may be wrong (a borrow), the first is exact: that is all we use.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// valueEnd returns the index of the first byte <= ' ' of b at or after i,
// or len(b): the end of a bare value.
func valueEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := (x - 0x21*swarLo) &^ x & swarHi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && b[i] > ' ' {
		i++
	}
	return i
}

// quoteEnd returns the index of the first '"' or '\\' of b at or after i,
// or len(b) (or i, if i > len(b)).
func quoteEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		quote, bs := x^(0x22*swarLo), x^(0x5c*swarLo)
		if m := ((quote-swarLo)&^quote | (bs-swarLo)&^bs) & swarHi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		i++
	}
	return i
}

// keyEnd returns the index of the first byte of b at or after i that
// cannot be in a key (<= ' ', '=' or '"'), or len(b).
func keyEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := keyStops(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && keyByte[b[i]] {
		i++
	}
	return i
}

// keyStops flags the bytes of x that cannot be in a key: <= ' ', '=' and
// '"' (the first flag is exact).
func keyStops(x uint64) uint64 {
	eq, quote := x^(0x3d*swarLo), x^(0x22*swarLo)
	return ((x-0x21*swarLo)&^x | (eq-swarLo)&^eq | (quote-swarLo)&^quote) & swarHi
}

// raw returns the current pair as written.
func (s *pairs) raw() []byte { return s.b[s.start:s.i] }

// unquote appends val with \" and \\ escapes resolved to dst.
func unquote(dst, val []byte) []byte {
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c == '\\' && i+1 < len(val) && (val[i+1] == '"' || val[i+1] == '\\') {
			i++
			c = val[i]
		}
		dst = append(dst, c)
	}
	return dst
}
