package librato

import (
	"bytes"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// TestSanitizedNamesMerge: series that become one Librato name and source
// are merged into one gauge, not posted twice; one of another kind is left
// out and counted; the minute is not modified and the bodies are the same
// every time.
func TestSanitizedNamesMerge(t *testing.T) {
	start := time.Unix(1714566840, 0)
	var ms []parse.Measurement
	for _, name := range []string{"a/b", "a|b", "a_b", "A_B"} {
		ms = append(ms, meas(parse.Count, name, "web.1", "", 2, start))
	}
	ms = append(ms,
		meas(parse.Measure, "x/y", "web 1", "ms", 1, start),
		meas(parse.Measure, "x_y", "web_1", "ms", 9, start),
		meas(parse.Measure, "c", "", "", 5, start),
		meas(parse.Sample, "c.median", "", "", 7, start), // Librato's name of c's median
		meas(parse.Count, "q", "", "", 1, start),         // Librato's q, after Q in key order, another kind: left out
		meas(parse.Sample, "q|", "", "", 1, start),       // q_, not q: apart
		meas(parse.Sample, "Q", "", "", 3, start),
	)
	m := minuteOf(t, "d1", start, ms)
	before := m.Series["a/b\x00web.1"].Sum

	b := New(nil, []float64{50})
	enc, err := b.Encode(&outlet.Destination{ID: "d1"}, &outlet.Outlet{}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := b.Encode(&outlet.Destination{ID: "d1"}, &outlet.Outlet{}, m, nil)
	if len(enc.Reqs) != 1 || !bytes.Equal(enc.Reqs[0].Body, again.Reqs[0].Body) {
		t.Fatal("Encode is not deterministic")
	}
	if m.Series["a/b\x00web.1"].Sum != before || len(m.Series) != 11 {
		t.Fatal("Encode modified the minute")
	}
	gauges := enc.Reqs[0].Part.(*batch).gauges
	got := map[string]Gauge{}
	for _, g := range gauges {
		k := g.Name + " " + g.Source
		if _, dup := got[k]; dup {
			t.Errorf("gauge %s posted twice", k)
		}
		got[k] = g
	}
	if g, ok := got["A_B web.1"]; !ok || *g.Value != 8 || len(gauges) != 7 {
		t.Errorf("a/b, a|b, a_b and A_B: %v (of %d gauges)", got, len(gauges))
	}
	if g := got["x_y web_1"]; g.Count == nil || *g.Count != 2 || *g.Sum != 10 || *g.Min != 1 || *g.Max != 9 {
		t.Errorf("x/y and x_y: %+v", g)
	}
	if g := got["c.median "]; g.Value == nil || *g.Value != 5 {
		t.Errorf("c.median is c's median: %+v", g)
	}
	if _, ok := got["q_ "]; !ok {
		t.Error("q| is missing")
	}
	if g := got["Q "]; g.Value == nil || *g.Value != 3 || g.Attributes != nil {
		t.Errorf("Q is the sample: %+v", g)
	}
	if enc.Skipped != 2 || enc.Note == "" {
		t.Errorf("skipped %d (%q), want 2: the sample c.median and the count q", enc.Skipped, enc.Note)
	}
}
