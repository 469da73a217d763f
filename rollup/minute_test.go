package rollup

import (
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

func TestFloorMinute(t *testing.T) {
	for _, c := range []struct{ in, want int64 }{
		{0, 0}, {59, 0}, {60, 60}, {119, 60}, {-1, -60}, {-60, -60}, {-61, -120},
	} {
		if got := FloorMinute(c.in); got != c.want {
			t.Errorf("FloorMinute(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// A minute closes grace after it ends, to the nanosecond: ClosedThrough
// (what the durable mode's writers record) and the store agree.
func TestClosedThroughIsTheStoresRule(t *testing.T) {
	const grace = 90 * time.Second
	start := t0.Unix()
	closes := t0.Add(time.Minute + grace)
	for _, c := range []struct {
		now    time.Time
		closed bool
	}{
		{closes.Add(-time.Nanosecond), false},
		{closes, true},
		{closes.Add(59 * time.Second), true},
	} {
		if got := ClosedThrough(c.now, grace) >= start; got != c.closed {
			t.Errorf("at %s: ClosedThrough says closed=%v, want %v", c.now, got, c.closed)
		}
		s := NewStore(Config{Grace: grace})
		d := stats.NewRegistry().Drain("d")
		s.Add(c.now, d, []parse.Measurement{m(parse.Count, "n", "web.1", 1, 30*time.Second)})
		if late := d.Get(stats.Late) == 1; late != c.closed {
			t.Errorf("at %s: the store counted late=%v, want %v", c.now, late, c.closed)
		}
		s = NewStore(Config{Grace: grace})
		s.Add(t0, d, []parse.Measurement{m(parse.Count, "n", "web.1", 1, 30*time.Second)})
		if flushed := len(s.Flush(c.now)) == 1; flushed != c.closed {
			t.Errorf("at %s: Flush closed=%v, want %v", c.now, flushed, c.closed)
		}
	}
	if got, want := MinuteString(start), "2024-05-01T12:34:00Z"; got != want {
		t.Errorf("MinuteString = %q, want %q", got, want)
	}
}

// Timestamps outside what nanoseconds since 1970 hold (years before 1678,
// after 2262; parse reads years 0000 to 9999) are late or future, by their
// side of now, never an open minute.
func TestStoreFarTimes(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		year   int
		future bool
	}{{1, false}, {1000, false}, {1677, false}, {2300, true}, {5000, true}, {9999, true}} {
		s := NewStore(Config{Grace: 90 * time.Second})
		d := stats.NewRegistry().Drain("d")
		s.Add(now, d, []parse.Measurement{{Kind: parse.Count, Name: []byte("n"), Value: 1, Time: time.Date(c.year, 5, 1, 0, 0, 0, 0, time.UTC)}})
		late, future := d.Get(stats.Late), d.Get(stats.Future)
		if c.future && (future != 1 || late != 0) || !c.future && (late != 1 || future != 0) || s.OpenSeries() != 0 {
			t.Errorf("year %d: late=%d future=%d open=%d", c.year, late, future, s.OpenSeries())
		}
	}
}
