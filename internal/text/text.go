// Package text makes strings that come from outside (a sender's user name,
// a receiver's error message) safe to log, store in Postgres and show: at
// most n bytes, cut at a character boundary, valid UTF-8 and free of
// control characters (Postgres refuses NUL and invalid UTF-8 in text).
package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clip returns s made printable (invalid bytes and control characters
// become '?') and cut to at most n bytes, ending in "…" when cut.
func Clip(s string, n int) string {
	if Printable(s) {
		if len(s) <= n {
			return s
		}
	} else {
		s = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || unicode.IsControl(r) {
				return '?'
			}
			return r
		}, strings.ToValidUTF8(s, "?"))
		if len(s) <= n {
			return s
		}
	}
	if n < len("…") { // no room for the mark
		i := max(n, 0)
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		return s[:i]
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Printable reports whether s is valid UTF-8 without control characters.
func Printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			goto slow
		}
	}
	return true
slow:
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}
