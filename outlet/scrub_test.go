package outlet

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestScrub: a receiver's message loses the outlet's secrets and becomes
// printable and short: it is logged, stored in Postgres (which refuses NUL
// and invalid UTF-8 in text) and shown on the status page.
func TestScrub(t *testing.T) {
	o := &Outlet{Kind: OTLP, URL: "https://u:url-pass@example.com/v1/metrics", Token: "tok-secret",
		Headers: []Header{{Name: "Dd-Api-Key", Value: "header-secret"}}}
	for _, tc := range []struct{ in, want string }{
		{"bad key header-secret, token tok-secret, url-pass", "bad key [redacted], token [redacted], [redacted]"},
		{"name\x00refused\xff", "name?refused?"},
		{"line\nbreak", "line?break"},
	} {
		if got := scrub(o, tc.in); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := scrub(o, "name "+strings.Repeat("é", 300)+" refused")
	if len(long) > 300 || !utf8.ValidString(long) || !strings.HasSuffix(long, "…") {
		t.Errorf("a long message: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

// TestSameTotals: running totals survive an option that changes only the
// requests, not a change of kind or temporality.
func TestSameTotals(t *testing.T) {
	cum := Outlet{Kind: OTLP, Temporality: Cumulative}
	pg := cum
	pg.PercentileGauges = true
	delta := Outlet{Kind: OTLP, Temporality: Delta}
	if !SameTotals(cum.EncodingKey(), pg.EncodingKey()) || SameTotals(cum.EncodingKey(), delta.EncodingKey()) ||
		SameTotals(cum.EncodingKey(), (&Outlet{Kind: RemoteWrite}).EncodingKey()) || cum.EncodingKey() == pg.EncodingKey() {
		t.Fatal("SameTotals")
	}
	// A cap on buckets changes the requests only; native histograms keep
	// running bucket counts, which a Summary's totals do not have.
	mb := Outlet{Kind: OTLP, Temporality: Delta, MaxBuckets: 1000}
	if mb.EncodingKey() == delta.EncodingKey() || !SameTotals(mb.EncodingKey(), delta.EncodingKey()) ||
		(&Outlet{Kind: OTLP, Temporality: Delta, MaxBuckets: DefaultMaxBuckets}).EncodingKey() != delta.EncodingKey() {
		t.Fatal("max buckets")
	}
	rw, native := Outlet{Kind: RemoteWrite}, Outlet{Kind: RemoteWrite, Histograms: NativeHistograms}
	if SameTotals(rw.EncodingKey(), native.EncodingKey()) || rw.Fingerprint() == native.Fingerprint() ||
		(&Outlet{Kind: RemoteWrite, Histograms: SummaryHistograms}).EncodingKey() != rw.EncodingKey() {
		t.Fatal("native histograms")
	}
}
