package rollup

import (
	"encoding/hex"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// bucketTable holds, per value, the OTLP-spec bucket (base^i < v ≤
// base^(i+1)) at scales 6, 5, … -4, worked out by hand from log2 v (exact
// for the powers of two, which sit on a boundary at every scale: they
// belong to the bucket below it).
var bucketTable = []struct {
	v    float64
	want [11]int // scale 6 down to -4
}{
	{1, [11]int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}},
	{2, [11]int{63, 31, 15, 7, 3, 1, 0, 0, 0, 0, 0}},
	{4, [11]int{127, 63, 31, 15, 7, 3, 1, 0, 0, 0, 0}},
	{8, [11]int{191, 95, 47, 23, 11, 5, 2, 1, 0, 0, 0}},
	{1024, [11]int{639, 319, 159, 79, 39, 19, 9, 4, 2, 1, 0}},
	{0.125, [11]int{-193, -97, -49, -25, -13, -7, -4, -2, -1, -1, -1}},
	{3, [11]int{101, 50, 25, 12, 6, 3, 1, 0, 0, 0, 0}},
	{1000, [11]int{637, 318, 159, 79, 39, 19, 9, 4, 2, 1, 0}},
	{1e-9, [11]int{-1914, -957, -479, -240, -120, -60, -30, -15, -8, -4, -2}},
	{1e9, [11]int{1913, 956, 478, 239, 119, 59, 29, 14, 7, 3, 1}},
	{10000, [11]int{850, 425, 212, 106, 53, 26, 13, 6, 3, 1, 0}},
	// Next to a boundary: one ulp above 1 is bucket 0, one below, -1.
	{math.Nextafter(1, 2), [11]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	{math.Nextafter(1, 0), [11]int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}},
	{math.Nextafter(8, 9), [11]int{192, 96, 48, 24, 12, 6, 3, 1, 0, 0, 0}},
	{math.Nextafter(8, 7), [11]int{191, 95, 47, 23, 11, 5, 2, 1, 0, 0, 0}},
	{math.Nextafter(1<<23, 1<<24), [11]int{1472, 736, 368, 184, 92, 46, 23, 11, 5, 2, 1}},
}

// TestBucketsOnAndNextToBoundaries: a value, and its negative, lands in the
// OTLP-spec bucket at scale 6 in the sketch, in MapToIndex at every scale
// down to -4, and in the sketch's bin downscaled (i>>1 per scale) to each.
func TestBucketsOnAndNextToBoundaries(t *testing.T) {
	for _, c := range bucketTable {
		for neg := range 2 {
			v := c.v
			if neg == 1 {
				v = -v
			}
			sk := newSketch()
			if err := sk.Add(v); err != nil {
				t.Fatal(err)
			}
			st := sk.GetPositiveValueStore()
			if v < 0 {
				st = sk.GetNegativeValueStore()
			}
			var bins []int
			st.ForEach(func(i int, n float64) bool { bins = append(bins, i); return false })
			if len(bins) != 1 || bins[0] != c.want[0] {
				t.Errorf("%v: sketch bins %v, want [%d]", v, bins, c.want[0])
				continue
			}
			for k, want := range c.want {
				scale := Scale - k
				if got := MapToIndex(c.v, scale); got != want {
					t.Errorf("MapToIndex(%v, %d) = %d, want %d", c.v, scale, got, want)
				}
				if got := bins[0] >> k; got != want {
					t.Errorf("%v: sketch bin %d downscaled to scale %d = %d, want %d", v, bins[0], scale, got, want)
				}
			}
		}
	}
}

// TestMapToIndexAgainstBounds: for random values, bucket i at each scale
// has base^i < v ≤ base^(i+1) (checked where v is not within 1e-12 of a
// bound, where float64 arithmetic cannot tell), and downscaling is exact.
func TestMapToIndexAgainstBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 20))
	for range 20000 {
		v := math.Exp2(rng.Float64()*80 - 40)
		if rng.IntN(4) == 0 {
			v = math.Round(v) + 1 // integers, as milliseconds are
		}
		for scale := Scale; scale >= -4; scale-- {
			i := MapToIndex(v, scale)
			lo, hi := math.Exp2(math.Ldexp(float64(i), -scale)), math.Exp2(math.Ldexp(float64(i+1), -scale))
			near := math.Abs(v-lo) < 1e-12*v || math.Abs(v-hi) < 1e-12*v
			if !near && !(lo < v && v <= hi) {
				t.Fatalf("MapToIndex(%v, %d) = %d: (%v, %v]", v, scale, i, lo, hi)
			}
			if scale < Scale && i != MapToIndex(v, scale+1)>>1 {
				t.Fatalf("MapToIndex(%v, %d) = %d, not MapToIndex(v, %d)>>1", v, scale, i, scale+1)
			}
		}
	}
}

// TestSketchQuantilesStayWithinOnePercent: the sketch's own nearest-rank
// percentiles of integer milliseconds (powers of two included) stay within
// RelativeAccuracy.
func TestSketchQuantilesStayWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 4))
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: time.Hour})
	var vs []float64
	var ms []parse.Measurement
	for range 20000 {
		v := math.Round(math.Exp(rng.Float64() * math.Log(10000)))
		vs = append(vs, v)
		ms = append(ms, parse.Measurement{Kind: parse.Measure, Name: []byte("x"), Value: v, Time: t0})
	}
	s.Add(t0, d, ms)
	slices.Sort(vs)
	se := s.FlushAll()[0].Series["x\x00"]
	for _, q := range []float64{0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999} {
		want := vs[int(math.Ceil(q*float64(len(vs))))-1]
		if got := se.Quantile(q); math.Abs(got-want) > RelativeAccuracy*want*(1+1e-9) {
			t.Errorf("q%v = %v, want %v ± %.2f %%", q, got, want, 100*RelativeAccuracy)
		}
	}
}

// appendOldMapping encodes a minute as version 2 (and 3) partials were
// written before the sketch's mapping became the OTLP spec's: no
// flagSpecMapping, the bins of DDSketch's logarithmic mapping of Gamma.
func appendOldMapping(t *testing.T, m *Minute) []byte {
	t.Helper()
	old := mustMapping(mapping.NewLogarithmicMappingWithGamma(Gamma, 0))
	c := &Minute{Drain: m.Drain, Start: m.Start, Series: map[string]*Series{}}
	for k, s := range m.Series {
		s = s.Clone()
		if s.Kind == parse.Measure {
			sk := ddsketch.NewDDSketch(old, store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())
			s.Sketch.ForEach(func(v, n float64) bool { _ = sk.AddWithCount(v, n); return false })
			s.Sketch = sk
		}
		c.Series[k] = s
	}
	return c.appendBinary(nil, 0)
}

// TestDecodeOldMapping: version 2 partials of the old mapping, already in
// Postgres at an upgrade, merge with partials of the new one; counts stay
// exact and percentiles within 1 %.
func TestDecodeOldMapping(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	d := stats.NewRegistry().Drain("d")
	var ms []parse.Measurement
	var vs []float64
	for range 10000 {
		v := math.Round(math.Exp(rng.Float64() * math.Log(10000)))
		vs = append(vs, v)
		ms = append(ms, parse.Measurement{Kind: parse.Measure, Name: []byte("x"), Value: v, Time: t0})
	}
	slices.Sort(vs)
	a, b := NewStore(Config{Grace: time.Hour}), NewStore(Config{Grace: time.Hour})
	a.Add(t0, d, ms[:5000])
	b.Add(t0, d, ms[5000:])
	enc := appendOldMapping(t, a.FlushAll()[0])
	if enc[0] != encodingVersion {
		t.Fatalf("version %d", enc[0])
	}
	old, err := DecodeMinute("d", 0, enc)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := DecodeMinute("d", 0, b.FlushAll()[0].AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Merge(cur); err != nil {
		t.Fatal(err)
	}
	se := old.Series["x\x00"]
	if se.Count != 10000 || se.Sketch.GetCount() != 10000 {
		t.Fatalf("count %d, sketch %v", se.Count, se.Sketch.GetCount())
	}
	for _, q := range []float64{0.5, 0.95, 0.99} {
		want := vs[int(math.Ceil(q*float64(len(vs))))-1]
		if got := se.Quantile(q); math.Abs(got-want) > 0.01*want {
			t.Errorf("q%v = %v, want %v ± 1 %%", q, got, want)
		}
	}
}

// TestIndexIsMapToIndex: the sketch's fast path is MapToIndex at Scale.
func TestIndexIsMapToIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 100000 {
		v := math.Exp2(rng.Float64()*120 - 60)
		if rng.IntN(3) == 0 {
			v = math.Round(v) + 1
		}
		if index(v) != MapToIndex(v, Scale) {
			t.Fatalf("index(%v) = %d, MapToIndex = %d", v, index(v), MapToIndex(v, Scale))
		}
	}
}

// oldPartialHex is a partial written by drainmeter before this mapping (the
// version before, version 2, bins of the logarithmic mapping [Gamma^i,
// Gamma^(i+1))): db.latency on web.1, unit ms, of oldPartialValues.
const oldPartialHex = "020101000a64622e6c6174656e6379057765622e3100026d73480000000000edbb40000000000000f03f00000000000090400000004098d053410000000000000000002c09240000007e00004c3400002a5600008001000080010000800100008001000080010000800100007c040000"

// oldPartialValues: 1 … 1024 ms, each power of two three times, and 3, 5, 1000.
var oldPartialValues = func() []float64 {
	var vs []float64
	for range 3 {
		for v := 1.0; v <= 1024; v *= 2 {
			vs = append(vs, v)
		}
	}
	return append(vs, 3, 5, 1000)
}()

// TestDecodeOldMappingBytes: a partial as the version before wrote it,
// already in Postgres at an upgrade, decodes and merges with a partial of
// the same values written now; counts and sums stay exact, percentiles
// within 1 % of the exact nearest rank (powers of two, on the boundaries,
// included).
func TestDecodeOldMappingBytes(t *testing.T) {
	b, err := hex.DecodeString(oldPartialHex)
	if err != nil {
		t.Fatal(err)
	}
	old, err := DecodeMinute("d", 0, b)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(Config{Grace: time.Hour})
	var ms []parse.Measurement
	for _, v := range oldPartialValues {
		ms = append(ms, parse.Measurement{Kind: parse.Measure, Name: []byte("db.latency"), Source: []byte("web.1"), Unit: []byte("ms"), Value: v, Time: t0})
	}
	s.Add(t0, stats.NewRegistry().Drain("d"), ms)
	cur, err := DecodeMinute("d", 0, s.FlushAll()[0].AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Merge(cur); err != nil {
		t.Fatal(err)
	}
	se := old.Series["db.latency\x00web.1"]
	all := slices.Sorted(slices.Values(append(slices.Clone(oldPartialValues), oldPartialValues...)))
	var sum float64
	for _, v := range all {
		sum += v
	}
	if se == nil || se.Count != int64(len(all)) || se.Sketch.GetCount() != float64(len(all)) || se.Sum != sum || se.Unit != "ms" {
		t.Fatalf("merged: %+v", se)
	}
	for _, q := range []float64{0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99} {
		want := all[int(math.Ceil(q*float64(len(all))))-1]
		if got := se.Quantile(q); math.Abs(got-want) > 0.01*want {
			t.Errorf("q%v = %v, want %v ± 1 %%", q, got, want)
		}
	}
}
