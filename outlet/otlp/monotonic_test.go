package otlp

import (
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// TestNegativeCountNeverGoesDown: a count minute whose total is negative is
// kept out of the monotonic Sum and counted (KeptOut): in delta mode it
// sends no point, in cumulative mode the running total holds, with the same
// start time.
func TestNegativeCountNeverGoesDown(t *testing.T) {
	b := newBackend(Config{})
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	prev := prevTotals(t, start) // jobs.done worker.1: 10, since the minute before
	m := minuteOf(t, "d1", start, []parse.Measurement{
		meas(parse.Count, "jobs.done", "worker.1", -5, start),
		meas(parse.Count, "ok", "worker.1", 2, start),
	})
	points := func(temp outlet.Temporality) (outlet.Encoded, []decoded) {
		enc, err := b.Encode(testDrain, otlpOutlet("", temp), m, prev)
		if err != nil {
			t.Fatal(err)
		}
		var out []decoded
		for _, r := range enc.Reqs {
			out = append(out, pointsOf(decode(t, r))...)
		}
		return enc, out
	}
	enc, ps := points(outlet.Delta)
	if enc.KeptOut != 1 || len(ps) != 1 || ps[0].metric != "ok" {
		t.Errorf("delta: kept out %d, %d points; want 1 and the point of ok alone", enc.KeptOut, len(ps))
	}
	enc, ps = points(outlet.Cumulative)
	var found bool
	for _, p := range ps {
		if p.metric == "jobs.done" {
			found = true
			if p.num.GetAsDouble() != 10 || p.num.StartTimeUnixNano != nanos(start.Unix()-60) {
				t.Errorf("cumulative jobs.done: %v since %d, want 10 since the minute before", p.num.GetAsDouble(), p.num.StartTimeUnixNano)
			}
		}
	}
	if enc.KeptOut != 1 || !found {
		t.Errorf("cumulative: kept out %d, jobs.done sent %v; want 1, true", enc.KeptOut, found)
	}
}
