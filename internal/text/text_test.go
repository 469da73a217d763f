package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 64, "short"},
		{strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), 64, strings.Repeat("a", 61) + "…"},
		{strings.Repeat("é", 40), 64, strings.Repeat("é", 30) + "…"},
		{"x\x00y", 64, "x?y"},
		{"w\xffb", 64, "w?b"},
		{"tab\there\nnew", 64, "tab?here?new"},
		{"\u0085next-line", 64, "?next-line"},
		{"héllo wörld", 64, "héllo wörld"},
		{"héllo", 2, "h"},
		{"héllo", 0, ""},
		{strings.Repeat("é", 200) + "\x00", 300, strings.Repeat("é", 148) + "…"},
	} {
		got := Clip(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) || !Printable(strings.TrimSuffix(got, "…")) {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func FuzzClip(f *testing.F) {
	f.Add("x\x00y", 10)
	f.Add(strings.Repeat("é", 40), 64)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = abs(n) % 400
		got := Clip(s, n)
		if len(got) > n || !utf8.ValidString(got) || strings.ContainsRune(got, 0) || !Printable(got) {
			t.Fatalf("Clip(%q, %d) = %q", s, n, got)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
