package outlet

import (
	"strings"
	"testing"
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
