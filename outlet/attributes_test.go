package outlet

import (
	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/internal/budget"
)

func TestParseResourceAttributes(t *testing.T) {
	got, err := ParseResourceAttributes(" deployment.environment.name=production , service.namespace=shop%20eu,k=a%2Cb,k=c,,x= ")
	if err != nil {
		t.Fatal(err)
	}
	want := []Attribute{{"deployment.environment.name", "production"}, {"service.namespace", "shop eu"}, {"k", "c"}, {"x", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"novalue", "=v", "k=%zz"} {
		if _, err := ParseResourceAttributes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckAttributes(t *testing.T) {
	for _, a := range []Attribute{{"env", "production"}, {"deployment.environment.name", "x"}, {"service.namespace", "shop"}, {"cloud.region", ""}} {
		if err := CheckAttribute(a); err != nil {
			t.Errorf("%v: %v", a, err)
		}
	}
	for _, a := range []Attribute{{"job", "x"}, {"source", "x"}, {"route", "x"}, {"drainmeter.rollup", "x"}, {"quantile", "x"}, {"le", "x"},
		{"__name__", "x"}, {"__x", "x"}, {"service.name", "x"}, {"", "x"}, {"a b", "x"}, {strings.Repeat("k", 256), "x"},
		{"env", strings.Repeat("v", 10<<10)}, {"env", "\xff"}, {"e\xffnv", "x"}} {
		if err := CheckAttribute(a); err == nil {
			t.Errorf("%.50q accepted", a)
		}
	}
	if err := CheckAttributes([]Attribute{{"a.b", "1"}, {"a_b", "2"}}); err == nil {
		t.Error("two keys of one label accepted")
	}
	many := make([]Attribute, MaxAttributes+1)
	for i := range many {
		many[i] = Attribute{Key: "k" + strings.Repeat("x", i), Value: "v"}
	}
	if err := CheckAttributes(many); err == nil {
		t.Error("too many accepted")
	}
	if got := PromLabelName("deployment.environment.name"); got != "deployment_environment_name" {
		t.Errorf("PromLabelName = %s", got)
	}
	if got := PromLabelName("1x"); got != "_1x" {
		t.Errorf("PromLabelName = %s", got)
	}
}

func TestTotalsTrim(t *testing.T) {
	tt := &Totals{Minute: 600, Series: map[string]*Running{}}
	for i := range 10 {
		tt.Series[string(rune('a'+i))] = &Running{Last: int64(60 * i)}
	}
	tt.Series["z"] = &Running{Last: 600}
	tt.Series["y"] = &Running{Last: 600}
	one := RunningBytes("a", &Running{})
	if n := tt.Trim(4*one, 600); n != 8 || len(tt.Series) != 4 {
		t.Fatalf("trimmed %d, %d left", n, len(tt.Series))
	}
	for _, k := range []string{"i", "j", "y", "z"} {
		if tt.Series[k] == nil {
			t.Errorf("%s forgotten: the newest are kept", k)
		}
	}
	if n := tt.Trim(1, 600); n != 2 || tt.Series["y"] == nil || tt.Series["z"] == nil {
		t.Errorf("the minute's own series must stay: trimmed %d, left %v", n, len(tt.Series))
	}
	// Native histograms count their buckets: fewer of them fit.
	h := &Totals{Minute: 600, Series: map[string]*Running{}}
	for i := range 10 {
		r := &Running{Last: int64(60 * i), Hist: &Hist{Pos: map[int]uint64{}}}
		for b := range 100 {
			r.Hist.Pos[b] = 1
		}
		h.Series[string(rune('a'+i))] = r
	}
	if n := h.Trim(4*one, 600); n != 10 {
		t.Errorf("histograms of 100 buckets in 4 counters' bytes: trimmed %d, want all 10", n)
	}
}

func TestTotalsCharge(t *testing.T) {
	one := RunningBytes("a", &Running{})
	totals := func(n int, last int64) *Totals {
		tt := &Totals{Series: map[string]*Running{}}
		for i := range n {
			tt.Series[string(rune('a'+i))] = &Running{Last: last + int64(i)}
		}
		return tt
	}
	share := budget.NewShare("totals", 10*one)
	// Two lanes: the first takes 6, the second gets the 4 left.
	a, b := totals(6, 0), totals(8, 0)
	ca, fa := a.Charge(share, 0, 5)
	cb, fb := b.Charge(share, 0, 7)
	if ca != 6*one || fa != 0 || cb != 4*one || fb != 4 || share.Used() != 10*one {
		t.Fatalf("charged %d (forgot %d) and %d (forgot %d), used %d", ca/one, fa, cb/one, fb, share.Used()/one)
	}
	for _, k := range []string{"e", "f", "g", "h"} {
		if b.Series[k] == nil {
			t.Errorf("%s forgotten: the newest are kept", k)
		}
	}
	// The first shrinks: what it gave back is free again.
	delete(a.Series, "a")
	delete(a.Series, "b")
	if ca, _ = a.Charge(share, ca, 5); ca != 4*one || share.Used() != 8*one {
		t.Errorf("after shrinking: charged %d, used %d", ca/one, share.Used()/one)
	}
	// Totals bigger than the whole share keep only what fits, even of the
	// minute's own series.
	big := totals(20, 100)
	cbig, forgot := big.Charge(share, 0, 100)
	if cbig != 2*one || forgot != 18 || share.Used() != 10*one {
		t.Errorf("charged %d, forgot %d, used %d", cbig/one, forgot, share.Used()/one)
	}
	// No share: nothing is forgotten.
	if c, f := totals(30, 0).Charge(nil, 0, 0); c != 30*one || f != 0 {
		t.Errorf("without a share: charged %d, forgot %d", c/one, f)
	}
}
