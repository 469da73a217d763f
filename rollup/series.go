package rollup

import (
	"math"
	"sort"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"

	"github.com/drainmeter/drainmeter/parse"
)

// Gamma is the quantile sketch's bin ratio, 2^(1/64): sketch bin i holds the
// values in (Gamma^i, Gamma^(i+1)], which is bucket i of an OpenTelemetry
// exponential histogram of scale 6 (and bucket i+1 of a Prometheus native
// histogram of schema 6), so the outlets copy bins as they are. A value on
// a boundary (every power of two) is in the bucket below it, as the OTLP
// spec and Prometheus put it (MapToIndex). A percentile is then within
// RelativeAccuracy (0.54 %) of the exact nearest-rank value, under the 1 %
// the product promises.
var Gamma = math.Exp2(1.0 / 64)

// Scale is the OpenTelemetry exponential-histogram scale whose buckets are
// the sketch's bins.
const Scale = 6

// RelativeAccuracy is (Gamma-1)/(Gamma+1).
var RelativeAccuracy = (Gamma - 1) / (Gamma + 1)

// indexMapping is the sketch's mapping (mapping.go).
var indexMapping mapping.IndexMapping = spec{}

func mustMapping(m *mapping.LogarithmicMapping, err error) mapping.IndexMapping {
	if err != nil {
		panic(err) // constant arguments: cannot fail
	}
	return m
}

// newSketch returns an empty quantile sketch. The buffered paginated store
// keeps small series small: a few values cost a few words, and pages of 32
// bins are allocated only where values fall.
func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(indexMapping, store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())
}

// Series is the aggregate of one (drain, name, source, dimensions, minute).
type Series struct {
	Kind   parse.Kind
	Name   string
	Source string
	Dims   string // extra dimensions (labels) such as a route; see Dims
	Unit   string // the last non-empty unit seen
	// ProcessType marks the per-process-type rollup ("web", of web.1,
	// web.2 …): outlets with labels say so, so that summing over sources
	// does not count it twice.
	ProcessType bool

	// measure: Count, Sum, Min, Max, SumSq and Sketch. count: Sum.
	Count  int64
	Sum    float64
	Min    float64
	Max    float64
	SumSq  float64
	Sketch *ddsketch.DDSketch

	// sample: the value with the latest log timestamp (ties: the later arrival).
	Last     float64
	LastTime int64 // unix nanoseconds

	// unique: a HyperLogLog++ sketch of the members (precision 14, ±0.8 %).
	HLL *hyperloglog.Sketch

	mem memAcct // what the store accounts for it (memory.go)
}

// seriesKey is the key of a series in Minute.Series: name, NUL, source, and
// NUL and dims when there are dimensions.
func seriesKey(name, source, dims string) string {
	if dims == "" {
		return name + "\x00" + source
	}
	return name + "\x00" + source + "\x00" + dims
}

// newSeries makes an empty series; name, source and dims are substrings of
// key (so that one allocation holds them all).
func newSeries(kind parse.Kind, key string, nameLen, sourceLen int) *Series {
	s := &Series{Kind: kind, Name: key[:nameLen], Source: key[nameLen+1 : nameLen+1+sourceLen]}
	if rest := key[nameLen+1+sourceLen:]; rest != "" {
		s.Dims = rest[1:]
	}
	switch kind {
	case parse.Measure:
		s.Sketch = newSketch()
		s.Min, s.Max = math.Inf(1), math.Inf(-1)
	case parse.Unique:
		s.HLL = hyperloglog.New14()
	case parse.Sample:
		s.LastTime = math.MinInt64
	}
	return s
}

func (s *Series) observe(m *parse.Measurement) {
	if len(m.Unit) > 0 && string(m.Unit) != s.Unit {
		s.Unit = string(m.Unit)
	}
	v := m.Value
	switch s.Kind {
	case parse.Measure:
		s.Count++
		s.Sum += v
		s.SumSq += v * v
		s.Min = math.Min(s.Min, v)
		s.Max = math.Max(s.Max, v)
		_ = s.Sketch.Add(v) // only values beyond ±1e307 fail; count and sum stay exact
	case parse.Count:
		s.Count++
		s.Sum += v
	case parse.Sample:
		if t := m.Time.UnixNano(); t >= s.LastTime {
			s.Last, s.LastTime = v, t
		}
		s.Count++
	case parse.Unique:
		s.HLL.Insert(m.Member)
		s.Count++
	}
}

// Merge adds o, a partial of the same series (another process's, say), to s.
func (s *Series) Merge(o *Series) error {
	if o.Unit != "" {
		s.Unit = o.Unit
	}
	s.ProcessType = s.ProcessType || o.ProcessType
	switch s.Kind {
	case parse.Measure:
		s.Count += o.Count
		s.Sum += o.Sum
		s.SumSq += o.SumSq
		s.Min = math.Min(s.Min, o.Min)
		s.Max = math.Max(s.Max, o.Max)
		return s.Sketch.MergeWith(o.Sketch)
	case parse.Count:
		s.Count += o.Count
		s.Sum += o.Sum
	case parse.Sample:
		if o.LastTime >= s.LastTime {
			s.Last, s.LastTime = o.Last, o.LastTime
		}
		s.Count += o.Count
	case parse.Unique:
		s.Count += o.Count
		return s.HLL.Merge(o.HLL)
	}
	return nil
}

// Clone returns a copy of s that shares nothing with it: merging into the
// copy leaves s as it was.
func (s *Series) Clone() *Series {
	c := *s
	if s.Sketch != nil {
		c.Sketch = s.Sketch.Copy()
	}
	if s.HLL != nil {
		c.HLL = s.HLL.Clone()
	}
	return &c
}

// Key returns the series' key in Minute.Series.
func (s *Series) Key() string { return seriesKey(s.Name, s.Source, s.Dims) }

// Quantile returns the nearest-rank q-quantile (q in [0, 1]) of a measure:
// q=0 is the exact minimum, q=1 the exact maximum.
func (s *Series) Quantile(q float64) float64 {
	switch {
	case q <= 0:
		return s.Min
	case q >= 1:
		return s.Max
	}
	return nearestRank(s.Sketch, q, s.Min, s.Max)
}

// Summary is what a closed series reports, independent of any backend.
type Summary struct {
	Kind        parse.Kind
	Name        string
	Source      string
	Dims        string
	Unit        string
	ProcessType bool
	// measure
	Count       int64
	Sum         float64
	Min         float64
	Max         float64
	SumSq       float64
	Percentiles []float64 // one per requested percentile
	// count: the sum; sample: the last value; unique: the distinct count
	Value float64
}

// Summarize computes the summary of s; percentiles are in (0, 100].
func (s *Series) Summarize(percentiles []float64) Summary {
	out := Summary{Kind: s.Kind, Name: s.Name, Source: s.Source, Dims: s.Dims, Unit: s.Unit, ProcessType: s.ProcessType}
	switch s.Kind {
	case parse.Measure:
		out.Count, out.Sum, out.Min, out.Max, out.SumSq = s.Count, s.Sum, s.Min, s.Max, s.SumSq
		out.Percentiles = make([]float64, len(percentiles))
		for i, p := range percentiles {
			out.Percentiles[i] = nearestRank(s.Sketch, p/100, s.Min, s.Max)
		}
	case parse.Count:
		out.Value = s.Sum
	case parse.Sample:
		out.Value = s.Last
	case parse.Unique:
		out.Value = float64(s.HLL.Estimate())
	}
	return out
}

// nearestRank returns the sketch's estimate of the nearest-rank percentile:
// the ceil(q·n)-th smallest value. (DDSketch's own GetValueAtQuantile uses
// rank q·(n-1), which is one rank lower for some n.) The result is clamped
// to the exact [min, max].
func nearestRank(sk *ddsketch.DDSketch, q, min, max float64) float64 {
	n := sk.GetCount()
	if n == 0 {
		return math.NaN()
	}
	k := math.Ceil(q*n) - 1 // 0-based rank
	k = math.Max(0, math.Min(k, n-1))
	neg := sk.GetNegativeValueStore().TotalCount()
	zero := sk.GetZeroCount()
	var v float64
	switch {
	case k < neg:
		v = -sk.Value(sk.GetNegativeValueStore().KeyAtRank(neg - 1 - k))
	case k < neg+zero:
		v = 0
	default:
		v = sk.Value(sk.GetPositiveValueStore().KeyAtRank(k - neg - zero))
	}
	return math.Max(min, math.Min(max, v))
}

// sortSummaries orders summaries by name, source and dimensions, so that
// output is deterministic.
func sortSummaries(s []Summary) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Name != s[j].Name {
			return s[i].Name < s[j].Name
		}
		if s[i].Source != s[j].Source {
			return s[i].Source < s[j].Source
		}
		return s[i].Dims < s[j].Dims
	})
}
