package loadgen

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// TestTotalsAsDrainmeterCounts parses generated batches with drainmeter's
// own frame reader, parser and store: every count and measure series, and
// the measurements of every minute, are what Totals says.
func TestTotalsAsDrainmeterCounts(t *testing.T) {
	gen := New(5, 3)
	start := time.Date(2026, 11, 22, 11, 22, 50, 0, time.UTC) // batches across a minute boundary
	store := rollup.NewStore(rollup.Config{Grace: time.Hour})
	d := stats.NewRegistry().Drain("d")
	p := parse.NewParser(parse.Options{ProcessTypes: true})
	for i := range 40 {
		at := start.Add(time.Duration(i) * 500 * time.Millisecond)
		fr := drain.NewFrameReader(bytes.NewReader(gen.Batch(50, at)), drain.MaxFrameBytes)
		var batch []parse.Measurement
		for fr.Next() {
			if !p.Frame(fr.Bytes(), at, func(m *parse.Measurement) {
				c := *m
				c.Name, c.Unit, c.Source = bytes.Clone(m.Name), bytes.Clone(m.Unit), bytes.Clone(m.Source)
				c.TypeSource, c.Member = bytes.Clone(m.TypeSource), bytes.Clone(m.Member)
				batch = append(batch, c)
			}) {
				t.Fatalf("frame refused: %q", fr.Bytes())
			}
		}
		if fr.Err() != nil {
			t.Fatal(fr.Err())
		}
		store.Add(at, d, batch)
	}
	totals := gen.Totals()
	minutes := store.FlushAll()
	if len(minutes) != 2 {
		t.Fatalf("%d minutes, want 2", len(minutes))
	}
	seen := 0
	for _, m := range minutes {
		n := 0
		for _, s := range m.Series {
			n += int(s.Count)
			k := Key{s.Name, s.Source, m.Start}
			switch s.Kind {
			case parse.Count:
				seen++
				if want, ok := totals.Counts[k]; !ok || s.Sum != want {
					t.Errorf("count %v = %v, want %v (present %v)", k, s.Sum, want, ok)
				}
			case parse.Measure:
				seen++
				vs := totals.Measures[k]
				var sum float64
				for _, v := range vs {
					sum += v
				}
				if int(s.Count) != len(vs) || math.Abs(s.Sum-sum) > 1e-9*sum {
					t.Errorf("measure %v: count %d sum %v, want %d %v", k, s.Count, s.Sum, len(vs), sum)
				}
			}
		}
		if want := totals.Measurements[m.Start]; n != want {
			t.Errorf("minute %d: drainmeter counts %d measurements, Totals %d", m.Start, n, want)
		}
	}
	if seen != len(totals.Counts)+len(totals.Measures) {
		t.Errorf("%d count and measure series in the store, %d in Totals", seen, len(totals.Counts)+len(totals.Measures))
	}
	if totals.AllMeasurements() == 0 {
		t.Fatal("no measurements")
	}
}
