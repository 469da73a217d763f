package rollup

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// randomBatch makes n measurements of every kind over a few names and sources.
func randomBatch(rng *rand.Rand, n int) []parse.Measurement {
	kinds := []parse.Kind{parse.Measure, parse.Count, parse.Sample, parse.Unique}
	out := make([]parse.Measurement, n)
	for i := range out {
		k := kinds[i%4]
		out[i] = parse.Measurement{Kind: k, Name: fmt.Appendf(nil, "%s.m%d", k, rng.IntN(3)), Source: fmt.Appendf(nil, "web.%d", rng.IntN(3)),
			Value: math.Exp(2 + rng.NormFloat64()), Member: fmt.Appendf(nil, "u%d", rng.IntN(400)), Unit: []byte("ms"),
			Time: t0.Add(time.Duration(rng.IntN(60_000)) * time.Millisecond)}
		if rng.IntN(10) == 0 {
			out[i].Value = -out[i].Value
		}
	}
	return out
}

func TestPartialsMergeToTheWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	batch := randomBatch(rng, 20000)
	d := stats.NewRegistry().Drain("d")
	pcts := []float64{50, 95, 99}

	whole := NewStore(Config{Grace: time.Hour})
	whole.Add(t0, d, batch)
	want := render(whole.FlushAll())

	// The same measurements in three stores (three dynos), each swapped out
	// twice along the way, every partial encoded and decoded, merged.
	var partials []*Minute
	for dyno := range 3 {
		s := NewStore(Config{Grace: time.Hour})
		part := batch[dyno*len(batch)/3 : (dyno+1)*len(batch)/3]
		for i, chunk := range [][]parse.Measurement{part[:len(part)/2], part[len(part)/2:]} {
			s.Add(t0, d, chunk)
			if i == 0 {
				partials = append(partials, s.TakeOpen()...)
			}
		}
		partials = append(partials, s.FlushAll()...)
	}
	var merged *Minute
	for _, p := range partials {
		dec, err := DecodeMinute(p.Drain, p.Start, p.AppendBinary(nil))
		if err != nil {
			t.Fatal(err)
		}
		if merged == nil {
			merged = dec
			continue
		}
		if c, err := merged.Merge(dec); err != nil || c != 0 {
			t.Fatalf("merge: %d %v", c, err)
		}
	}
	if render([]*Minute{merged}) == want {
		return
	}
	// Sums may differ in the last bits (addition order): compare field by field.
	gs := merged
	wantM := NewStore(Config{Grace: time.Hour})
	wantM.Add(t0, d, batch)
	wm := wantM.FlushAll()[0]
	for k, w := range wm.Series {
		g := gs.Series[k]
		if g == nil {
			t.Fatalf("series %q missing", k)
		}
		wsum, gsum := w.Summarize(pcts), g.Summarize(pcts)
		if wsum.Count != gsum.Count || wsum.Min != gsum.Min || wsum.Max != gsum.Max || wsum.Unit != gsum.Unit ||
			math.Abs(wsum.Sum-gsum.Sum) > 1e-9*math.Abs(wsum.Sum) || math.Abs(wsum.SumSq-gsum.SumSq) > 1e-9*wsum.SumSq {
			t.Errorf("%q: %+v != %+v", k, gsum, wsum)
		}
		if wsum.Kind == parse.Sample && wsum.Value != gsum.Value {
			t.Errorf("%q: last %v != %v", k, gsum.Value, wsum.Value)
		}
		if wsum.Kind == parse.Unique && wsum.Value != gsum.Value {
			t.Errorf("%q: distinct %v != %v", k, gsum.Value, wsum.Value)
		}
		for i := range wsum.Percentiles {
			if math.Abs(wsum.Percentiles[i]-gsum.Percentiles[i]) > 1e-9*math.Abs(wsum.Percentiles[i]) {
				t.Errorf("%q p%v: %v != %v", k, pcts[i], gsum.Percentiles[i], wsum.Percentiles[i])
			}
		}
	}
	if len(gs.Series) != len(wm.Series) {
		t.Errorf("%d series, want %d", len(gs.Series), len(wm.Series))
	}
}

// TestDecodeTruncated: every cut of a real encoding is an error, not a panic.
func TestDecodeTruncated(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour})
	s.Add(t0, stats.NewRegistry().Drain("d"), randomBatch(rand.New(rand.NewPCG(1, 1)), 40))
	b := s.FlushAll()[0].AppendBinary(nil)
	if _, err := DecodeMinute("d", 0, b); err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		if _, err := DecodeMinute("d", 0, b[:n]); err == nil {
			t.Fatalf("a cut at %d of %d bytes decoded", n, len(b))
		}
	}
	if _, err := DecodeMinute("d", 0, append(b, 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

// appendV1 encodes a minute as drainmeter 0.1 did: no dims, sketches of the
// 0.009 mapping.
func appendV1(m *Minute) []byte {
	dst := []byte{encodingVersionV1}
	dst = binary.AppendUvarint(dst, uint64(len(m.Series)))
	for _, s := range m.Sorted() {
		dst = append(dst, byte(s.Kind))
		dst = appendString(dst, s.Name)
		dst = appendString(dst, s.Source)
		dst = appendString(dst, s.Unit)
		dst = binary.AppendVarint(dst, s.Count)
		for _, f := range [...]float64{s.Sum, s.Min, s.Max, s.SumSq, s.Last} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
		dst = binary.AppendVarint(dst, s.LastTime)
		var sk []byte
		switch s.Kind {
		case parse.Measure:
			old := ddsketch.NewDDSketch(indexMappingV1, store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())
			s.Sketch.ForEach(func(v, n float64) bool { _ = old.AddWithCount(v, n); return false })
			old.Encode(&sk, true)
		case parse.Unique:
			sk, _ = s.HLL.AppendBinary(sk)
		}
		dst = appendString(dst, string(sk))
	}
	return dst
}

// TestDecodeVersion1: partials written by drainmeter 0.1 (before the switch
// to the 2^(1/64) mapping) still decode and merge with new ones, within
// 1.5 % for percentiles.
func TestDecodeVersion1(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	batch := randomBatch(rng, 8000)
	d := stats.NewRegistry().Drain("d")
	whole := NewStore(Config{Grace: time.Hour})
	whole.Add(t0, d, batch)
	want := whole.FlushAll()[0]

	a, b := NewStore(Config{Grace: time.Hour}), NewStore(Config{Grace: time.Hour})
	a.Add(t0, d, batch[:4000])
	b.Add(t0, d, batch[4000:])
	old, err := DecodeMinute("d", 0, appendV1(a.FlushAll()[0]))
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
	pcts := []float64{1, 50, 95, 99}
	for k, w := range want.Series {
		g := old.Series[k]
		if g == nil {
			t.Fatalf("series %q missing", k)
		}
		ws, gs := w.Summarize(pcts), g.Summarize(pcts)
		if ws.Count != gs.Count || ws.Min != gs.Min || ws.Max != gs.Max {
			t.Errorf("%q: %+v != %+v", k, gs, ws)
		}
		for i := range ws.Percentiles {
			if e := math.Abs(gs.Percentiles[i]-ws.Percentiles[i]) / math.Abs(ws.Percentiles[i]); e > 0.015 {
				t.Errorf("%q p%v: %v, want %v (%.2f%%)", k, pcts[i], gs.Percentiles[i], ws.Percentiles[i], 100*e)
			}
		}
	}
}

// TestDimsRoundTrip: series that differ only in their dimensions stay apart
// through encoding and merging.
func TestDimsRoundTrip(t *testing.T) {
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: time.Hour})
	r1 := AppendDim(nil, "route", "GET /users/:id")
	r2 := AppendDim(nil, "route", "GET /")
	ms := []parse.Measurement{
		{Kind: parse.Measure, Name: []byte("router.service"), Value: 3, Time: t0},
		{Kind: parse.Measure, Name: []byte("router.service"), Value: 5, Dims: r1, Time: t0},
		{Kind: parse.Measure, Name: []byte("router.service"), Value: 7, Dims: r2, Time: t0},
		{Kind: parse.Measure, Name: []byte("router.service"), Value: 9, Dims: r1, Time: t0},
	}
	s.Add(t0, d, ms)
	m, err := DecodeMinute("d", 0, s.FlushAll()[0].AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, se := range m.Sorted() {
		var labels []string
		EachDim(se.Dims, func(k, v string) { labels = append(labels, k+"="+v) })
		got = append(got, fmt.Sprintf("%s %v count=%d sum=%g", se.Name, labels, se.Count, se.Sum))
	}
	want := []string{"router.service [] count=1 sum=3", "router.service [route=GET /] count=1 sum=7",
		"router.service [route=GET /users/:id] count=2 sum=14"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestDecodeRepairsNonFinite: a partial stored before values were bounded
// (count#c=1.7e308 twice: a sum of +Inf) loses that series when read, and
// keeps the others; a minute merged from it stays finite.
func TestDecodeRepairsNonFinite(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour})
	at := t0.Add(time.Second)
	s.Add(t0, stats.NewRegistry().Drain("d"), []parse.Measurement{
		{Kind: parse.Count, Name: []byte("c"), Value: 1.7e308, Time: at},
		{Kind: parse.Count, Name: []byte("c"), Value: 1.7e308, Time: at},
		{Kind: parse.Measure, Name: []byte("m"), Value: 1e308, Time: at},
		{Kind: parse.Measure, Name: []byte("m"), Value: 1e308, Time: at},
		{Kind: parse.Measure, Name: []byte("sq"), Value: 1e200, Time: at}, // a sum of squares over: left to the outlets
		{Kind: parse.Count, Name: []byte("ok"), Value: 2, Time: at},
	})
	m := s.FlushAll()[0]
	if !math.IsInf(m.Series["c\x00"].Sum, 1) || !math.IsInf(m.Series["m\x00"].Sum, 1) || !math.IsInf(m.Series["sq\x00"].SumSq, 1) {
		t.Fatal("the fixture is not the poisoned partial it means to be")
	}
	got, err := DecodeMinute("d", m.Start, m.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.Repaired != 2 || len(got.Series) != 2 || got.Series["ok\x00"].Sum != 2 || got.Series["sq\x00"].Sum != 1e200 {
		t.Fatalf("decoded %d series, repaired %d; want ok and sq, 2 repaired", len(got.Series), got.Repaired)
	}
}
