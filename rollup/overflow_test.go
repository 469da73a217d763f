package rollup

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// TestTakeOverflowed: the names refused by the series cap are remembered
// (at most maxOverflowNames a drain), handed out once.
func TestTakeOverflowed(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour, MaxSeriesPerDrain: 2})
	d := stats.NewRegistry().Drain("d")
	var batch []parse.Measurement
	for i := range 100 {
		batch = append(batch, m(parse.Count, fmt.Sprintf("n%02d", i), "", 1, 0))
	}
	s.Add(t0, d, batch)
	got := s.TakeOverflowed()
	if len(got["d"]) != maxOverflowNames || !slices.Contains(got["d"], "n02") || slices.Contains(got["d"], "n00") {
		t.Errorf("overflowed %v", got)
	}
	if again := s.TakeOverflowed(); len(again) != 0 {
		t.Errorf("handed out twice: %v", again)
	}
	if d.Get(stats.Overflow) != 98 {
		t.Errorf("overflow %d", d.Get(stats.Overflow))
	}
}

// TestTakeLate: late measurements are counted by name (at most
// maxOverflowNames names), handed out once.
func TestTakeLate(t *testing.T) {
	s := NewStore(Config{Grace: time.Minute})
	d := stats.NewRegistry().Drain("d")
	s.Add(t0.Add(5*time.Minute), d, []parse.Measurement{m(parse.Count, "a", "", 1, 0), m(parse.Count, "a", "", 1, time.Second), m(parse.Count, "b", "", 1, 0)})
	got := s.TakeLate()
	if got["d"]["a"] != 2 || got["d"]["b"] != 1 || d.Get(stats.Late) != 3 {
		t.Errorf("late %v, counted %d", got, d.Get(stats.Late))
	}
	if again := s.TakeLate(); len(again) != 0 {
		t.Errorf("handed out twice: %v", again)
	}
}
