package outlet_test

import (
	"math"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

func count(name string, v float64, at time.Time) parse.Measurement {
	return parse.Measurement{Kind: parse.Count, Name: []byte(name), Value: v, Time: at}
}

// TestTotalsNeverGoDown: a count minute whose total is negative, or a sum
// that is not finite (a partial stored before values were bounded), is kept
// out of the running totals and counted; the totals stay finite and never
// decrease.
func TestTotalsNeverGoDown(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	minute := func(i int, ms ...parse.Measurement) *rollup.Minute {
		return outlettest.MinuteOf(t, "d", t0.Add(time.Duration(i)*time.Minute), ms)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	inf := minute(3, count("c", 1, at(3)))
	inf.Series["c\x00"].Sum = math.Inf(1) // as a partial stored before the rule could hold
	nan := minute(4, count("c", 1, at(4)), parse.Measurement{Kind: parse.Measure, Name: []byte("m"), Value: 2, Time: at(4)})
	nan.Series["c\x00"].Sum = math.NaN()
	nan.Series["m\x00"].Sum = math.Inf(-1)
	steps := []struct {
		m       *rollup.Minute
		want    float64
		keptOut int
	}{
		{minute(0, count("c", 100, at(0))), 100, 0},
		{minute(1, count("c", -5, at(1))), 100, 1},                        // 100 → 95 would read as a reset
		{minute(2, count("c", 10, at(2)), count("c", -4, at(2))), 106, 0}, // the minute's total is what counts
		{inf, 106, 1},
		{nan, 106, 2},
		{minute(5, count("c", 1, at(5))), 107, 0},
	}
	var tt *outlet.Totals
	for i, st := range steps {
		tt = tt.Advance(st.m, 3600)
		r := tt.Series["c\x00"]
		if r.Sum != st.want || tt.KeptOut != st.keptOut || r.Start != t0.Unix() {
			t.Fatalf("minute %d: running total %v (start %d), kept out %d; want %v, %d, start %d", i, r.Sum, r.Start, tt.KeptOut, st.want, st.keptOut, t0.Unix())
		}
		if m := tt.Series["m\x00"]; m != nil && (m.Sum != 0 || m.Count != 0) {
			t.Fatalf("minute %d: measure running totals %v, %d; want the non-finite sum kept out", i, m.Sum, m.Count)
		}
	}
}

// TestDecodeTotalsRepairs: running totals stored before values were bounded
// (+Inf, NaN) are left out when read, so the series starts again instead of
// staying non-finite forever.
func TestDecodeTotalsRepairs(t *testing.T) {
	tt := &outlet.Totals{Minute: 600, Series: map[string]*outlet.Running{
		"ok\x00":  {Kind: parse.Count, Start: 60, Sum: 5, Last: 600},
		"inf\x00": {Kind: parse.Count, Start: 60, Sum: math.Inf(1), Last: 600},
		"nan\x00": {Kind: parse.Measure, Start: 60, Count: 2, Sum: math.NaN(), Last: 600},
	}}
	got, err := outlet.DecodeTotals(tt.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Series) != 1 || got.Series["ok\x00"] == nil || got.Series["ok\x00"].Sum != 5 || got.Repaired != 2 {
		t.Fatalf("decoded %d series (repaired %d), want only ok's and 2 repaired", len(got.Series), got.Repaired)
	}
	m := outlettest.MinuteOf(t, "d", time.Unix(660, 0), []parse.Measurement{count("inf", 3, time.Unix(660, 0))})
	next := got.Advance(m, 3600)
	if r := next.Series["inf\x00"]; r.Sum != 3 || r.Start != 660 {
		t.Fatalf("a repaired series: running total %v from %d, want 3 from 660 (a new start)", r.Sum, r.Start)
	}
}
