package rollup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// TestSeriesBytesBound checks the accounting against the heap: for series
// of every kind, few and many values, ordinary and hostile (a sketch
// spanning 1e-300 to 1e300), the bytes accounted per series are at least
// what the heap holds, and for ordinary series at most 4 times as much.
func TestSeriesBytesBound(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are measured without the race detector (scripts/test runs this separately)")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	logNormal := func(int) float64 { return math.Exp(3 + 2*rng.NormFloat64()) }
	for _, c := range []struct {
		name    string
		kind    parse.Kind
		series  int
		values  int
		value   func(j int) float64
		hostile bool // only the lower bound holds
		nameLen int
	}{
		{"count", parse.Count, 20000, 10, logNormal, false, 10},
		{"count, 250-byte names", parse.Count, 20000, 1, logNormal, false, 250},
		{"sample", parse.Sample, 20000, 60, logNormal, false, 10},
		{"measure, 1 value", parse.Measure, 10000, 1, logNormal, false, 10},
		{"measure, 60 values", parse.Measure, 5000, 60, logNormal, false, 10},
		{"measure, 300 values", parse.Measure, 2000, 300, logNormal, false, 10},
		{"measure, 1000 values", parse.Measure, 1000, 1000, logNormal, false, 10},
		{"measure, 10000 values", parse.Measure, 200, 10000, logNormal, false, 10},
		{"measure, both signs", parse.Measure, 1000, 500, func(j int) float64 { return float64(j%2*2-1) * logNormal(j) }, false, 10},
		{"measure, 1000 powers of two", parse.Measure, 500, 1000, func(j int) float64 { return math.Ldexp(1, j*8%2000-1000) }, true, 10},
		{"measure, 64 values at 1e±300", parse.Measure, 500, 64, wide, true, 10},
		{"measure, 128 values at 1e±300", parse.Measure, 500, 128, wide, true, 10},
		{"measure, 1000 values at 1e±300", parse.Measure, 200, 1000, wide, true, 10},
		{"unique, 50 members", parse.Unique, 5000, 50, nil, false, 10},
		{"unique, 1000 members", parse.Unique, 500, 1000, nil, false, 10},
		{"unique, 6500 members", parse.Unique, 100, 6500, nil, false, 10},
		{"unique, 16000 members", parse.Unique, 50, 16000, nil, false, 10},
	} {
		heap, accounted := seriesHeap(c.kind, c.series, c.values, c.nameLen, rng, c.value)
		t.Logf("%-32s %7.0f bytes per series in the heap, %7.0f accounted", c.name, heap, accounted)
		if accounted < heap {
			t.Errorf("%s: %.0f bytes accounted per series, the heap holds %.0f", c.name, accounted, heap)
		}
		if !c.hostile && accounted > 4*heap {
			t.Errorf("%s: %.0f bytes accounted per series for %.0f in the heap", c.name, accounted, heap)
		}
	}
}

// wide is values near 1e-300 and 1e300, in pages of their own.
func wide(j int) float64 {
	v := 1e-300 * (1 + float64(j/2)/1000)
	if j%2 == 1 {
		v = 1e300 * (1 + float64(j/2)/1000)
	}
	return v
}

// seriesHeap fills a store with n series and returns the heap and the
// bytes accounted per series.
func seriesHeap(kind parse.Kind, n, values, nameLen int, rng *rand.Rand, value func(int) float64) (heap, accounted float64) {
	batch := make([]parse.Measurement, values)
	members := make([][]byte, values)
	for j := range members {
		members[j] = fmt.Appendf(nil, "m%d", rng.Uint64())
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := NewStore(Config{Grace: time.Hour, MaxSeriesPerDrain: n})
	d := stats.NewRegistry().Drain("d")
	for i := range n {
		name := fmt.Appendf(nil, "%0*d", nameLen, i)
		for j := range batch {
			batch[j] = parse.Measurement{Kind: kind, Name: name, Source: []byte("web.1"), Unit: []byte("ms"), Time: t0, Value: 1}
			if value != nil {
				batch[j].Value = value(j)
			}
			if kind == parse.Unique {
				batch[j].Member = members[j]
			}
		}
		s.Add(t0, d, batch)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(batch)
	runtime.KeepAlive(members)
	if s.OpenSeries() != n || d.Get(stats.Overflow) != 0 {
		panic("series lost")
	}
	ds := s.drain("d")
	ds.mu.Lock()
	used := ds.used
	ds.mu.Unlock()
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), float64(used) / float64(n)
}

// TestSeriesBudget: a drain's series, in every open minute (future ones
// included), stop at its share; the refused are counted as overflow;
// another drain still has room; closed minutes give their bytes back.
func TestSeriesBudget(t *testing.T) {
	share := budget.NewShare("series", 4<<20)
	s := NewStore(Config{Grace: time.Minute, MaxSeriesPerDrain: 1 << 20, Series: share, MaxBytesPerDrain: 2 << 20})
	reg := stats.NewRegistry()
	flood, calm := reg.Drain("flood"), reg.Drain("calm")
	now := t0.Add(10 * time.Second)
	var batch []parse.Measurement
	for minute := range 6 {
		for i := range 5000 {
			batch = append(batch, parse.Measurement{Kind: parse.Count, Name: fmt.Appendf(nil, "f.%d", i), Value: 1,
				Time: now.Add(time.Duration(minute) * time.Minute)})
		}
	}
	s.Add(now, flood, batch)
	accepted := int64(s.OpenSeriesByDrain()["flood"])
	if accepted == 0 || accepted == 30000 || uint64(30000-accepted) != flood.Get(stats.Overflow) {
		t.Fatalf("%d series accepted, %d overflow", accepted, flood.Get(stats.Overflow))
	}
	if used := share.Used(); used > 2<<20 || used < 2<<20-64<<10 {
		t.Fatalf("the flood holds %d bytes of its 2 MiB share", used)
	}
	// A measure's sketch grows past the share: its values are refused too.
	before := flood.Get(stats.Overflow)
	var wideBatch []parse.Measurement
	for j := range 2000 {
		wideBatch = append(wideBatch, parse.Measurement{Kind: parse.Measure, Name: []byte("wide"), Value: wide(j), Time: now.Add(time.Minute)})
	}
	s.Add(now, flood, wideBatch[:1])
	s.Add(now, flood, wideBatch)
	if flood.Get(stats.Overflow) == before {
		t.Fatal("a growing sketch was not refused")
	}
	// The calm drain is not affected.
	s.Add(now, calm, []parse.Measurement{{Kind: parse.Count, Name: []byte("c"), Value: 1, Time: now}})
	if calm.Get(stats.Overflow) != 0 || s.OpenSeriesByDrain()["calm"] != 1 {
		t.Fatal("the calm drain's series was refused")
	}
	// Series handed out of open minutes stay accounted with them (the
	// durable mode merges them back): the flood's next values in those
	// minutes still overflow, those of series already there go on from
	// their accounts; closed minutes give their bytes back.
	used := share.Used()
	s.TakeOpen()
	if share.Used() != used {
		t.Fatalf("TakeOpen: %d bytes held, %d before", share.Used(), used)
	}
	before = flood.Get(stats.Overflow)
	s.Add(now, flood, batch[:10]) // series of minute 0 seen before: no new bytes
	s.Add(now, flood, batch[len(batch)-10:])
	if share.Used() != used || flood.Get(stats.Overflow) != before+10 {
		t.Fatalf("after TakeOpen: %d bytes held (%d before), overflow +%d", share.Used(), used, flood.Get(stats.Overflow)-before)
	}
	s.FlushAll()
	if share.Used() != 0 {
		t.Fatalf("%d bytes still held after FlushAll", share.Used())
	}
}

// TestTakenSeriesStayAccounted: a series handed out by TakeOpen and seen
// again in its minute goes on from its account: the minute's bytes bound
// the series the durable mode merges back, not one interval's.
func TestTakenSeriesStayAccounted(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour})
	d := stats.NewRegistry().Drain("d")
	used := func() int64 {
		ds := s.drain("d")
		ds.mu.Lock()
		defer ds.mu.Unlock()
		return ds.used
	}
	values := func(n int) []parse.Measurement {
		var ms []parse.Measurement
		for j := range n {
			ms = append(ms, parse.Measurement{Kind: parse.Measure, Name: []byte("m"), Value: wide(j), Time: t0})
		}
		return ms
	}
	s.Add(t0, d, values(40))
	first := used()
	s.TakeOpen()
	s.Add(t0, d, values(40))
	whole := seriesBytes(parse.Measure, len("m\x00"), 0, 80, exponent(1e-300), exponent(1.1e300), 1)
	if got := used(); got <= first || got < whole {
		t.Fatalf("40 values, then 40 more after TakeOpen: %d bytes accounted (%d after the first 40), the 80 need %d", got, first, whole)
	}
	s.FlushAll()
	if used() != 0 {
		t.Fatalf("%d bytes after FlushAll", used())
	}
}
