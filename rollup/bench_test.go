package rollup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// heapPerSeries fills a store with n series of one kind, each observed
// perSeries times with log-normal values, and returns the live heap bytes
// per series.
func heapPerSeries(kind parse.Kind, n, perSeries int) float64 {
	rng := rand.New(rand.NewPCG(3, 4))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := NewStore(Config{Grace: time.Hour, MaxSeriesPerDrain: n})
	d := stats.NewRegistry().Drain("d")
	batch := make([]parse.Measurement, 0, perSeries)
	for i := range n {
		batch = batch[:0]
		name := fmt.Appendf(nil, "app.metric.%d", i%50)
		src := fmt.Appendf(nil, "web.%d", i/50)
		for range perSeries {
			batch = append(batch, parse.Measurement{Kind: kind, Name: name, Source: src,
				Value: math.Exp(3 + rng.NormFloat64()), Member: fmt.Appendf(nil, "u%d", rng.IntN(1000)),
				Unit: []byte("ms"), Time: t0})
		}
		s.Add(t0, d, batch)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if s.OpenSeries() != n {
		panic("series lost")
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestBytesPerSeries holds the memory targets: ≤ 1 KiB per count or sample
// series, ≤ 4 KiB per measure series observed 60 times a minute (one line a
// second), and reports a busier measure series too.
func TestBytesPerSeries(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are measured without the race detector (scripts/test runs this separately)")
	}
	for _, c := range []struct {
		kind      parse.Kind
		perSeries int
		limit     float64
	}{
		{parse.Count, 60, 1024},
		{parse.Sample, 60, 1024},
		{parse.Measure, 60, 4096},
		{parse.Measure, 1000, 0}, // reported only
	} {
		got := heapPerSeries(c.kind, 20000, c.perSeries)
		t.Logf("%s series, %d values a minute: %.0f bytes per series", c.kind, c.perSeries, got)
		if c.limit > 0 && got > c.limit {
			t.Errorf("%s: %.0f bytes per series, limit %.0f", c.kind, got, c.limit)
		}
	}
}

func BenchmarkStoreAdd(b *testing.B) {
	s := NewStore(Config{Grace: time.Hour, MaxSeriesPerDrain: 1 << 20})
	d := stats.NewRegistry().Drain("d")
	rng := rand.New(rand.NewPCG(5, 6))
	batch := make([]parse.Measurement, 256)
	names := [][]byte{[]byte("router.service"), []byte("router.connect"), []byte("router.requests"), []byte("db.latency")}
	kinds := []parse.Kind{parse.Measure, parse.Measure, parse.Count, parse.Measure}
	for i := range batch {
		k := i % len(names)
		batch[i] = parse.Measurement{Kind: kinds[k], Name: names[k], Source: fmt.Appendf(nil, "web.%d", i%8),
			TypeSource: []byte("web"), Value: math.Exp(3 + rng.NormFloat64()), Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	s.Add(t0, d, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		s.Add(t0, d, batch)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "measurements/s")
}
