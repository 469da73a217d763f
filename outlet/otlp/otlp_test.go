package otlp

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/store"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	metricsv1 "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

var update = flag.Bool("update", false, "rewrite golden files")

func minuteOf(t testing.TB, drain string, start time.Time, ms []parse.Measurement) *rollup.Minute {
	t.Helper()
	return outlettest.MinuteOf(t, drain, start, ms)
}

var meas = outlettest.Meas

var withType = outlettest.WithType

var goldenStart = time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)

// fixedMinute has one of everything: a measure with its process-type
// rollup, a measure with negative values and zeros and no source, counts
// (one with a dimension), a sample and a unique.
func fixedMinute(t *testing.T, start time.Time) *rollup.Minute {
	var ms []parse.Measurement
	for i := 1; i <= 10; i++ {
		ms = append(ms, withType(meas(parse.Measure, "db.latency", "web.1", float64(i*i), start.Add(time.Duration(i)*time.Second)), "web"))
	}
	for _, v := range []float64{-3, 0, 0, 2.5} {
		ms = append(ms, meas(parse.Measure, "temp.change", "", v, start))
	}
	routed := meas(parse.Count, "router.requests", "web.2", 1, start)
	routed.Dims = rollup.AppendDim(nil, "route", "GET /users/:id")
	ms = append(ms, routed, routed,
		withType(meas(parse.Count, "jobs.done", "worker.1", 3, start), "worker"),
		withType(meas(parse.Count, "jobs.done", "worker.1", 4, start), "worker"),
		meas(parse.Sample, "memory_rss", "web.1", 21.22, start.Add(20*time.Second)),
		meas(parse.Sample, "memory_rss", "web.1", 20, start.Add(10*time.Second)),
	)
	u := meas(parse.Unique, "users", "web.1", 1, start)
	for _, m := range []string{"a", "b", "c", "a"} {
		u.Member = []byte(m)
		ms = append(ms, u)
	}
	return minuteOf(t, "d1", start, ms)
}

// prevTotals is the running state after the minute before start, in
// which jobs.done and db.latency were already present.
func prevTotals(t *testing.T, start time.Time) *outlet.Totals {
	before := start.Add(-time.Minute)
	m := minuteOf(t, "d1", before, []parse.Measurement{
		meas(parse.Count, "jobs.done", "worker.1", 10, before),
		meas(parse.Measure, "db.latency", "web.1", 1000, before),
	})
	return (*outlet.Totals)(nil).Advance(m, 3600)
}

var testDrain = &outlet.Destination{ID: "d1", Name: "my-app", Namespace: "eu"}

func otlpOutlet(url string, temp outlet.Temporality) *outlet.Outlet {
	return &outlet.Outlet{Kind: outlet.OTLP, URL: url, Temporality: temp,
		Headers: []outlet.Header{{Name: "Authorization", Value: "Bearer x"}}}
}

func newBackend(cfg Config) *Backend {
	return New(outlet.NewClient("drainmeter/test", 2*time.Second, time.Now), cfg)
}

// decode reads a request body back.
func decode(t testing.TB, r *outlet.Request) *metricsv1.MetricsData {
	t.Helper()
	if r.ContentType != "application/x-protobuf" || r.Encoding != "gzip" {
		t.Fatalf("content type %q, encoding %q", r.ContentType, r.Encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var md metricsv1.MetricsData
	if err := proto.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	return &md
}

// TestGolden encodes a fixed minute in both temporalities and compares a
// readable dump of the decoded bodies with testdata/*.golden.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name      string
		temp      outlet.Temporality
		pctGauges bool
	}{
		{"delta", outlet.Delta, false},
		{"cumulative", outlet.Cumulative, false},
		{"delta-percentile-gauges", outlet.Delta, true}, // Dynatrace
		{"cumulative-percentile-gauges", outlet.Cumulative, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(Config{Version: "1.2.3", Percentiles: []float64{50, 99.9}})
			m := fixedMinute(t, goldenStart)
			o := otlpOutlet("", tc.temp)
			o.PercentileGauges = tc.pctGauges
			enc, err := b.Encode(testDrain, o, m, prevTotals(t, goldenStart))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if enc.Note != "" {
				fmt.Fprintf(&out, "note: %s\n", enc.Note)
			}
			if enc.AsGauges != 0 {
				fmt.Fprintf(&out, "as gauges: %d\n", enc.AsGauges)
			}
			for i, r := range enc.Reqs {
				fmt.Fprintf(&out, "request %d: points=%d\n", i+1, r.Points)
				dump(&out, decode(t, r))
			}
			path := "testdata/" + tc.name + ".golden"
			if *update {
				if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("%s differs (go test -update to accept):\n%s", path, out.String())
			}
		})
	}
}

// dump writes a MetricsData as stable, readable text: one line per
// resource, scope, metric and point. Fields drainmeter never sets are
// printed when present, so that setting one shows in the golden files.
func dump(w io.Writer, md *metricsv1.MetricsData) {
	ts := func(ns uint64) string {
		if ns == 0 {
			return "-"
		}
		return time.Unix(0, int64(ns)).UTC().Format(time.RFC3339)
	}
	for _, rm := range md.ResourceMetrics {
		fmt.Fprintf(w, "resource %s%s\n", kvs(rm.Resource.GetAttributes()), extra("schema_url", rm.SchemaUrl))
		for _, sm := range rm.ScopeMetrics {
			fmt.Fprintf(w, "  scope name=%s version=%s%s%s\n", sm.Scope.GetName(), sm.Scope.GetVersion(),
				extra("attributes", kvs(sm.Scope.GetAttributes())), extra("schema_url", sm.SchemaUrl))
			for _, m := range sm.Metrics {
				head := fmt.Sprintf("    metric %q%s%s%s", m.Name, extra("unit", m.Unit), extra("description", m.Description),
					extra("metadata", kvs(m.Metadata)))
				common := func(attrs []*commonv1.KeyValue, start, time uint64, flags uint32) string {
					return fmt.Sprintf("      %s start=%s time=%s%s", kvs(attrs), ts(start), ts(time), extra("flags", num(flags)))
				}
				switch d := m.Data.(type) {
				case *metricsv1.Metric_Gauge:
					fmt.Fprintf(w, "%s gauge\n", head)
					for _, p := range d.Gauge.DataPoints {
						fmt.Fprintf(w, "%s value=%s\n", common(p.Attributes, p.StartTimeUnixNano, p.TimeUnixNano, p.Flags), value(p))
					}
				case *metricsv1.Metric_Sum:
					fmt.Fprintf(w, "%s sum %s monotonic=%v\n", head, d.Sum.AggregationTemporality, d.Sum.IsMonotonic)
					for _, p := range d.Sum.DataPoints {
						fmt.Fprintf(w, "%s value=%s\n", common(p.Attributes, p.StartTimeUnixNano, p.TimeUnixNano, p.Flags), value(p))
					}
				case *metricsv1.Metric_ExponentialHistogram:
					fmt.Fprintf(w, "%s exponential_histogram %s\n", head, d.ExponentialHistogram.AggregationTemporality)
					for _, p := range d.ExponentialHistogram.DataPoints {
						fmt.Fprintf(w, "%s count=%d sum=%s min=%s max=%s scale=%d zero_count=%d zero_threshold=%s positive=%s negative=%s\n",
							common(p.Attributes, p.StartTimeUnixNano, p.TimeUnixNano, p.Flags), p.Count, opt(p.Sum), opt(p.Min), opt(p.Max),
							p.Scale, p.ZeroCount, g(p.ZeroThreshold), bucketText(p.Positive), bucketText(p.Negative))
					}
				case *metricsv1.Metric_Summary:
					fmt.Fprintf(w, "%s summary\n", head)
					for _, p := range d.Summary.DataPoints {
						var qs []string
						for _, q := range p.QuantileValues {
							qs = append(qs, g(q.Quantile)+":"+g(q.Value))
						}
						fmt.Fprintf(w, "%s count=%d sum=%s quantiles=[%s]\n",
							common(p.Attributes, p.StartTimeUnixNano, p.TimeUnixNano, p.Flags), p.Count, g(p.Sum), strings.Join(qs, " "))
					}
				default:
					fmt.Fprintf(w, "%s %T\n", head, m.Data)
				}
			}
		}
	}
}

func g(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func num(v uint32) string {
	if v == 0 {
		return ""
	}
	return strconv.Itoa(int(v))
}

func extra(name, v string) string {
	if v == "" {
		return ""
	}
	return " " + name + "=" + v
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return g(*v)
}

func value(p *metricsv1.NumberDataPoint) string {
	switch v := p.Value.(type) {
	case *metricsv1.NumberDataPoint_AsDouble:
		return g(v.AsDouble)
	case *metricsv1.NumberDataPoint_AsInt:
		return "int:" + strconv.FormatInt(v.AsInt, 10)
	}
	return "none"
}

func bucketText(b *metricsv1.ExponentialHistogramDataPoint_Buckets) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprintf("%d:%v", b.Offset, b.BucketCounts)
}

func kvs(kv []*commonv1.KeyValue) string {
	var parts []string
	for _, x := range kv {
		v := x.Value.GetStringValue()
		if _, ok := x.Value.GetValue().(*commonv1.AnyValue_StringValue); !ok {
			v = fmt.Sprintf("%v", x.Value.GetValue())
		}
		parts = append(parts, fmt.Sprintf("%s=%q", x.Key, v))
	}
	if parts == nil {
		return ""
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// points returns every data point of a body by metric name.
type decoded struct {
	metric string
	typ    string
	attrs  map[string]string
	num    *metricsv1.NumberDataPoint
	exp    *metricsv1.ExponentialHistogramDataPoint
	sum    *metricsv1.SummaryDataPoint
}

func pointsOf(md *metricsv1.MetricsData) []decoded {
	var out []decoded
	amap := func(kv []*commonv1.KeyValue) map[string]string {
		m := map[string]string{}
		for _, x := range kv {
			m[x.Key] = x.Value.GetStringValue()
		}
		return m
	}
	for _, rm := range md.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case *metricsv1.Metric_Gauge:
					for _, p := range d.Gauge.DataPoints {
						out = append(out, decoded{metric: m.Name, typ: "gauge", attrs: amap(p.Attributes), num: p})
					}
				case *metricsv1.Metric_Sum:
					for _, p := range d.Sum.DataPoints {
						out = append(out, decoded{metric: m.Name, typ: "sum", attrs: amap(p.Attributes), num: p})
					}
				case *metricsv1.Metric_ExponentialHistogram:
					for _, p := range d.ExponentialHistogram.DataPoints {
						out = append(out, decoded{metric: m.Name, typ: "exp", attrs: amap(p.Attributes), exp: p})
					}
				case *metricsv1.Metric_Summary:
					for _, p := range d.Summary.DataPoints {
						out = append(out, decoded{metric: m.Name, typ: "summary", attrs: amap(p.Attributes), sum: p})
					}
				}
			}
		}
	}
	return out
}

// only encodes a minute and returns its one point of metric name and
// source.
func only(t *testing.T, b *Backend, temp outlet.Temporality, m *rollup.Minute, name, source string) decoded {
	t.Helper()
	enc, err := b.Encode(testDrain, otlpOutlet("", temp), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found []decoded
	for _, r := range enc.Reqs {
		for _, p := range pointsOf(decode(t, r)) {
			if p.metric == name && p.attrs["source"] == source {
				found = append(found, p)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d points of %s %s", len(found), name, source)
	}
	return found[0]
}

// sketchBins returns a store's bins at scale 6 - shift.
func sketchBins(s store.Store, shift int) map[int]uint64 {
	out := map[int]uint64{}
	s.ForEach(func(i int, c float64) bool {
		out[i>>shift] += uint64(c)
		return false
	})
	return out
}

func bucketMap(b *metricsv1.ExponentialHistogramDataPoint_Buckets) map[int]uint64 {
	out := map[int]uint64{}
	for i, c := range b.GetBucketCounts() {
		if c > 0 {
			out[int(b.Offset)+i] = c
		}
	}
	return out
}

// TestExpHistogramIsTheSketch: the buckets are the sketch's bins, at scale
// 6 when they fit and downscaled exactly when they do not; count, min and
// max are exact.
func TestExpHistogramIsTheSketch(t *testing.T) {
	start := goldenStart
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		gen       func() float64
		wantScale int32
	}{
		{"narrow", func() float64 { return 100 + 50*rng.Float64() }, 6},
		{"with negatives and zeros", func() float64 {
			switch rng.IntN(5) {
			case 0:
				return 0
			case 1:
				return -(1 + rng.Float64())
			}
			return 1 + rng.Float64()
		}, 6},
		{"wide", func() float64 { return math.Pow(10, -6+15*rng.Float64()) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ms []parse.Measurement
			var lo, hi = math.Inf(1), math.Inf(-1)
			for range 5000 {
				v := tc.gen()
				lo, hi = min(lo, v), max(hi, v)
				ms = append(ms, meas(parse.Measure, "m", "web.1", v, start))
			}
			m := minuteOf(t, "d1", start, ms)
			s := m.Series["m\x00web.1"]
			p := only(t, newBackend(Config{}), outlet.Delta, m, "m", "web.1").exp
			if p.Scale != tc.wantScale {
				t.Errorf("scale %d, want %d", p.Scale, tc.wantScale)
			}
			if n := len(p.Positive.GetBucketCounts()); n > MaxBuckets {
				t.Errorf("%d positive buckets", n)
			}
			shift := int(rollup.Scale - p.Scale)
			if got, want := bucketMap(p.Positive), sketchBins(s.Sketch.GetPositiveValueStore(), shift); !mapsEqual(got, want) {
				t.Errorf("positive buckets %v, sketch bins %v", got, want)
			}
			if got, want := bucketMap(p.Negative), sketchBins(s.Sketch.GetNegativeValueStore(), shift); !mapsEqual(got, want) {
				t.Errorf("negative buckets %v, sketch bins %v", got, want)
			}
			if p.ZeroCount != uint64(s.Sketch.GetZeroCount()) {
				t.Errorf("zero count %d, sketch %v", p.ZeroCount, s.Sketch.GetZeroCount())
			}
			var sum uint64
			for _, c := range append(p.Positive.GetBucketCounts(), p.Negative.GetBucketCounts()...) {
				sum += c
			}
			if p.Count != 5000 || p.ZeroCount+sum != 5000 {
				t.Errorf("count %d, zero %d + buckets %d; want 5000", p.Count, p.ZeroCount, sum)
			}
			if *p.Min != lo || *p.Max != hi {
				t.Errorf("min %v max %v, want %v %v", *p.Min, *p.Max, lo, hi)
			}
			if (p.Sum == nil) != (lo < 0) {
				t.Errorf("sum %v with min %v", p.Sum, lo)
			}
			if p.Sum != nil && *p.Sum != s.Sum {
				t.Errorf("sum %v, want %v", *p.Sum, s.Sum)
			}
		})
	}
}

func mapsEqual(a, b map[int]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestBucketsMatchOTelPlacement: a value v lands in the bucket whose OTLP
// bounds (base^i, base^(i+1)] hold it (exact powers of two, on a bound,
// are TestExpHistogramBoundaryBuckets').
func TestBucketsMatchOTelPlacement(t *testing.T) {
	for _, v := range []float64{1.01, 3, 7.5, 1000, 0.001, 123456.789} {
		m := minuteOf(t, "d1", goldenStart, []parse.Measurement{meas(parse.Measure, "m", "", v, goldenStart)})
		p := only(t, newBackend(Config{}), outlet.Delta, m, "m", "").exp
		i := float64(p.Positive.Offset)
		lo, hi := math.Exp2(i/64), math.Exp2((i+1)/64)
		if !(lo < v && v <= hi) {
			t.Errorf("%v in bucket %v: (%v, %v]", v, i, lo, hi)
		}
	}
}

// TestQuantiles: a cumulative Summary's quantiles of a log-normal sample
// are within 1 % of the exact nearest rank; 0 and 1 are the exact min and
// max.
func TestQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ms []parse.Measurement
	var vals []float64
	for range 20000 {
		v := math.Exp(3 + 1.5*rng.NormFloat64())
		vals = append(vals, v)
		ms = append(ms, meas(parse.Measure, "lat", "web.1", v, goldenStart))
	}
	sort.Float64s(vals)
	m := minuteOf(t, "d1", goldenStart, ms)
	p := only(t, newBackend(Config{}), outlet.Cumulative, m, "lat", "web.1").sum
	if p.Count != 20000 {
		t.Errorf("count %d", p.Count)
	}
	if want := m.Series["lat\x00web.1"].Sum; p.Sum != want {
		t.Errorf("sum %v, want %v", p.Sum, want)
	}
	if len(p.QuantileValues) != 5 {
		t.Fatalf("%d quantiles", len(p.QuantileValues))
	}
	for _, q := range p.QuantileValues {
		k := int(math.Ceil(q.Quantile*float64(len(vals)))) - 1
		exact := vals[max(0, min(k, len(vals)-1))]
		switch q.Quantile {
		case 0, 1:
			if q.Value != exact {
				t.Errorf("q%v = %v, want exactly %v", q.Quantile, q.Value, exact)
			}
		default:
			if math.Abs(q.Value-exact)/exact > 0.01 {
				t.Errorf("q%v = %v, exact %v: off by %.2f %%", q.Quantile, q.Value, exact, 100*math.Abs(q.Value-exact)/exact)
			}
		}
	}
}

// TestDeterministic: the same minute gives the same bodies, whether
// encoded twice or rebuilt from its stored encoding by another process,
// and Encode changes neither the minute nor the running totals.
func TestDeterministic(t *testing.T) {
	for _, temp := range []outlet.Temporality{outlet.Delta, outlet.Cumulative} {
		t.Run(string(temp), func(t *testing.T) {
			m := fixedMinute(t, goldenStart)
			prev := prevTotals(t, goldenStart)
			prevBytes := prev.AppendBinary(nil)
			minuteBytes := m.AppendBinary(nil)
			o := otlpOutlet("", temp)
			enc1, err := newBackend(Config{Version: "1"}).Encode(testDrain, o, m, prev)
			if err != nil {
				t.Fatal(err)
			}
			enc2, err := newBackend(Config{Version: "1"}).Encode(testDrain, o, m, prev)
			if err != nil {
				t.Fatal(err)
			}
			other, err := rollup.DecodeMinute(m.Drain, m.Start, minuteBytes)
			if err != nil {
				t.Fatal(err)
			}
			prev2, err := outlet.DecodeTotals(prevBytes)
			if err != nil {
				t.Fatal(err)
			}
			enc3, err := newBackend(Config{Version: "1"}).Encode(testDrain, o, other, prev2)
			if err != nil {
				t.Fatal(err)
			}
			for _, enc := range []outlet.Encoded{enc2, enc3} {
				if len(enc.Reqs) != len(enc1.Reqs) {
					t.Fatalf("%d requests, then %d", len(enc1.Reqs), len(enc.Reqs))
				}
				for i := range enc.Reqs {
					if !bytes.Equal(enc.Reqs[i].Body, enc1.Reqs[i].Body) {
						t.Errorf("request %d differs", i)
					}
				}
			}
			if !bytes.Equal(prev.AppendBinary(nil), prevBytes) {
				t.Error("Encode modified the previous totals")
			}
			if !bytes.Equal(m.AppendBinary(nil), minuteBytes) {
				t.Error("Encode modified the minute")
			}
			if temp == outlet.Cumulative && !bytes.Equal(enc1.Totals.AppendBinary(nil), enc3.Totals.AppendBinary(nil)) {
				t.Error("different totals")
			}
		})
	}
}

// TestEncodeConcurrently: lanes of one drain encode the same minute at
// the same time; Encode only reads it (run with -race).
func TestEncodeConcurrently(t *testing.T) {
	var ms []parse.Measurement
	for i := range 2000 {
		ms = append(ms, meas(parse.Measure, "m", "web.1", float64(i%97), goldenStart))
	}
	m := minuteOf(t, "d1", goldenStart, ms)
	b := newBackend(Config{})
	var wg sync.WaitGroup
	bodies := make([][]byte, 4)
	for i := range bodies {
		wg.Go(func() {
			temp := []outlet.Temporality{outlet.Delta, outlet.Cumulative}[i%2]
			enc, err := b.Encode(testDrain, otlpOutlet("", temp), m, nil)
			if err != nil {
				t.Error(err)
				return
			}
			bodies[i] = enc.Reqs[0].Body
		})
	}
	wg.Wait()
	if !bytes.Equal(bodies[0], bodies[2]) || !bytes.Equal(bodies[1], bodies[3]) {
		t.Error("different bodies")
	}
}

// bigMinute has n series: counts, measures and samples with many sources.
func bigMinute(t testing.TB, start time.Time, n int) *rollup.Minute {
	ms := make([]parse.Measurement, 0, n)
	kinds := []parse.Kind{parse.Count, parse.Measure, parse.Sample}
	for i := range n {
		k := kinds[i%3]
		ms = append(ms, meas(k, fmt.Sprintf("app.metric.%d", i/7), fmt.Sprintf("web.%d", i%7), float64(i), start))
	}
	return minuteOf(t, "d1", start, ms)
}

// TestChunking: a minute of 100 000 series goes out in requests of at
// most MaxBytes compressed, every series exactly once, in order; and a
// request can be split in two until one series is left.
func TestChunking(t *testing.T) {
	for _, tc := range []struct {
		series, maxBytes, minReqs int
		temps                     []outlet.Temporality
	}{
		{100000, 0, 2, []outlet.Temporality{outlet.Delta}}, // 1 MB
		{20000, 40_000, 5, []outlet.Temporality{outlet.Delta, outlet.Cumulative}},
	} {
		t.Run(fmt.Sprint(tc.series, " series ", tc.maxBytes, " bytes"), func(t *testing.T) {
			m := bigMinute(t, goldenStart, tc.series)
			b := newBackend(Config{MaxBytes: tc.maxBytes})
			for _, temp := range tc.temps {
				enc, err := b.Encode(testDrain, otlpOutlet("", temp), m, nil)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				byMetric := map[string][]string{}
				total := 0
				for _, r := range enc.Reqs {
					if len(r.Body) > b.cfg.MaxBytes {
						t.Errorf("%s: a request of %d bytes", temp, len(r.Body))
					}
					pts := pointsOf(decode(t, r))
					if len(pts) != r.Points {
						t.Errorf("request says %d points, holds %d", r.Points, len(pts))
					}
					total += r.Points
					for _, p := range pts {
						k := p.metric + "\x00" + p.attrs["source"]
						if seen[k] {
							t.Fatalf("%q twice", k)
						}
						seen[k] = true
						byMetric[p.metric+" "+p.typ] = append(byMetric[p.metric+" "+p.typ], k)
					}
				}
				if total != tc.series || len(seen) != tc.series {
					t.Errorf("%s: %d points, %d series; want %d", temp, total, len(seen), tc.series)
				}
				// Points are grouped by metric (name and type), and within one
				// in series order.
				for name, ks := range byMetric {
					if !slices.IsSorted(ks) {
						t.Errorf("%s: the points of %s are out of order", temp, name)
					}
				}
				if len(enc.Reqs) < tc.minReqs {
					t.Errorf("%s: only %d requests", temp, len(enc.Reqs))
				}
				t.Logf("%s: %d requests", temp, len(enc.Reqs))
			}
		})
	}
	t.Run("halving", func(t *testing.T) {
		enc, err := newBackend(Config{}).Encode(testDrain, otlpOutlet("", outlet.Delta), bigMinute(t, goldenStart, 3000), nil)
		if err != nil || len(enc.Reqs) != 1 {
			t.Fatal(err, len(enc.Reqs))
		}
		p := enc.Reqs[0].Part.(*part)
		b := newBackend(Config{MaxBytes: len(enc.Reqs[0].Body) / 5})
		reqs, err := b.fit(p.head, p.series)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range reqs {
			if len(r.Body) > b.cfg.MaxBytes {
				t.Errorf("a request of %d bytes", len(r.Body))
			}
			n += len(pointsOf(decode(t, r)))
		}
		if n != 3000 || len(reqs) < 5 {
			t.Errorf("%d points in %d requests", n, len(reqs))
		}
	})
	t.Run("split", func(t *testing.T) {
		b := newBackend(Config{})
		small := bigMinute(t, goldenStart, 5)
		enc, err := b.Encode(testDrain, otlpOutlet("", outlet.Delta), small, nil)
		if err != nil || len(enc.Reqs) != 1 {
			t.Fatal(err, len(enc.Reqs))
		}
		var leaves []*outlet.Request
		var walk func(r *outlet.Request)
		walk = func(r *outlet.Request) {
			parts := b.Split(r)
			if parts == nil {
				leaves = append(leaves, r)
				return
			}
			if len(parts) != 2 || parts[0].Points+parts[1].Points != r.Points {
				t.Fatalf("split %d points into %d parts", r.Points, len(parts))
			}
			// A lane resuming after the first part rebuilds the second.
			if n := b.Items(parts[0]); n+b.Items(parts[1]) != b.Items(r) {
				t.Fatalf("items %d + %d of %d", n, b.Items(parts[1]), b.Items(r))
			} else if tail := b.Tail(r, n); tail == nil || !bytes.Equal(tail.Body, parts[1].Body) || tail.Points != parts[1].Points {
				t.Fatalf("Tail(r, %d) is not the second part", n)
			}
			for _, p := range parts {
				walk(p)
			}
		}
		walk(enc.Reqs[0])
		if len(leaves) != 5 {
			t.Fatalf("%d single-series requests", len(leaves))
		}
		for _, r := range leaves {
			if pts := pointsOf(decode(t, r)); len(pts) != 1 || r.Points != 1 {
				t.Errorf("a leaf of %d points", len(pts))
			}
		}
	})
}

func TestPartialSuccess(t *testing.T) {
	for _, tc := range []struct {
		name, ct string
		body     []byte
		rejected int64
		msg      string
		err      bool
	}{
		{"empty", "application/x-protobuf", nil, 0, "", false},
		{"empty message", "application/x-protobuf", []byte{}, 0, "", false},
		{"protobuf", "application/x-protobuf", fakeotlp.PartialSuccess(7, "no cumulative"), 7, "no cumulative", false},
		{"protobuf, message only", "application/x-protobuf", fakeotlp.PartialSuccess(0, "a warning"), 0, "a warning", false},
		{"protobuf, unknown fields around", "application/x-protobuf",
			append(append([]byte{0x10, 0x05}, fakeotlp.PartialSuccess(3, "x")...), 0x1a, 0x01, 'z'), 3, "x", false},
		{"protobuf, cut", "application/x-protobuf", fakeotlp.PartialSuccess(3, "cut short")[:6], 0, "", true},
		{"no content type: protobuf", "", fakeotlp.PartialSuccess(2, "m"), 2, "m", false},
		{"json", "application/json", []byte(`{"partialSuccess":{"rejectedDataPoints":"12","errorMessage":"too old"}}`), 12, "too old", false},
		{"json, number, snake case", "application/json; charset=utf-8", []byte(`{"partial_success":{"rejected_data_points":4,"error_message":"e"}}`), 4, "e", false},
		{"json, empty", "application/json", []byte(`{}`), 0, "", false},
		{"json, empty partial", "application/json", []byte(`{"partialSuccess":{}}`), 0, "", false},
		{"json, bad", "application/json", []byte(`{"partialSuccess":`), 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, msg, err := partialSuccess(tc.body, tc.ct)
			if (err != nil) != tc.err || n != tc.rejected || msg != tc.msg {
				t.Errorf("got %d %q %v; want %d %q error=%v", n, msg, err, tc.rejected, tc.msg, tc.err)
			}
		})
	}
}

// TestAnswers is the OTLP column of README's "How each outlet treats answers",
// through a real HTTP round trip; it also checks the request's headers and
// that no header value reaches a message.
func TestAnswers(t *testing.T) {
	type answer struct {
		status int
		header map[string]string
		body   []byte
	}
	pb := map[string]string{"Content-Type": "application/x-protobuf", "X-Echo": "Bearer secret-token"}
	for _, tc := range []struct {
		name     string
		answer   answer
		outcome  outlet.Outcome
		rejected int
		retry    time.Duration
		msg      string
	}{
		{"200 empty", answer{200, pb, nil}, outlet.Accepted, 0, 0, ""},
		{"200 partial", answer{200, pb, fakeotlp.PartialSuccess(2, "refused 2")}, outlet.Accepted, 2, 0, "refused 2"},
		{"200 partial, more than sent", answer{200, pb, fakeotlp.PartialSuccess(99, "all")}, outlet.Accepted, 5, 0, "all"},
		{"200 partial json", answer{200, map[string]string{"Content-Type": "application/json"},
			[]byte(`{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":"one"}}`)}, outlet.Accepted, 1, 0, "one"},
		{"202", answer{202, nil, nil}, outlet.Accepted, 0, 0, ""},
		{"429", answer{429, map[string]string{"Retry-After": "7"}, []byte("slow down")}, outlet.Retry, 0, 7 * time.Second, "slow down"},
		{"502", answer{502, nil, []byte("bad gateway")}, outlet.Retry, 0, 0, "bad gateway"},
		{"503", answer{503, map[string]string{"Retry-After": "2"}, nil}, outlet.Retry, 0, 2 * time.Second, ""},
		{"504", answer{504, nil, nil}, outlet.Retry, 0, 0, ""},
		{"413", answer{413, nil, []byte("too large")}, outlet.Split, 0, 0, "too large"},
		{"401", answer{401, pb, status(16, "bad token")}, outlet.Pause, 0, 0, "bad token"},
		{"403", answer{403, nil, []byte("forbidden")}, outlet.Pause, 0, 0, "forbidden"},
		{"400", answer{400, pb, status(3, "invalid temporality and type combination")}, outlet.Permanent, 0, 0, "invalid temporality and type combination"},
		{"404", answer{404, nil, []byte("404 page not found")}, outlet.Permanent, 0, 0, "404 page not found"},
		{"415", answer{415, nil, nil}, outlet.Permanent, 0, 0, ""},
		{"500", answer{500, map[string]string{"Retry-After": "1"}, []byte("delta temporality is not supported")}, outlet.Permanent, 0, time.Second, "delta temporality is not supported"},
		{"501", answer{501, nil, nil}, outlet.Permanent, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				for k, v := range tc.answer.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.answer.status)
				_, _ = w.Write(tc.answer.body)
			}))
			defer srv.Close()
			b := newBackend(Config{})
			enc, err := b.Encode(testDrain, otlpOutlet("", outlet.Delta), bigMinute(t, goldenStart, 5), nil)
			if err != nil {
				t.Fatal(err)
			}
			o := otlpOutlet(srv.URL+"/v1/metrics", outlet.Delta)
			o.Headers = append(o.Headers, outlet.Header{Name: "Dd-Api-Key", Value: "secret-token"})
			res := b.Send(t.Context(), o, enc.Reqs[0])
			if res.Outcome != tc.outcome || res.Status != tc.answer.status || res.Rejected != tc.rejected ||
				res.RetryAfter != tc.retry || res.Message != tc.msg {
				t.Errorf("got %+v; want %v status %d rejected %d retry after %v message %q",
					res, tc.outcome, tc.answer.status, tc.rejected, tc.retry, tc.msg)
			}
			if strings.Contains(res.Message, "secret") {
				t.Errorf("a header reached the message: %q", res.Message)
			}
			for k, v := range map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
				"User-Agent": "drainmeter/test", "Authorization": "Bearer x", "Dd-Api-Key": "secret-token"} {
				if got.Get(k) != v {
					t.Errorf("header %s: %q, want %q", k, got.Get(k), v)
				}
			}
		})
	}
	t.Run("partial success refusing nothing is a warning", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-protobuf")
			_, _ = w.Write(fakeotlp.PartialSuccess(0, "unit dropped"))
		}))
		defer srv.Close()
		b := newBackend(Config{})
		enc, _ := b.Encode(testDrain, otlpOutlet("", outlet.Delta), bigMinute(t, goldenStart, 1), nil)
		res := b.Send(t.Context(), otlpOutlet(srv.URL+"/v1/metrics", outlet.Delta), enc.Reqs[0])
		if res.Outcome != outlet.Accepted || res.Rejected != 0 || res.Message != "" || res.Warning != "unit dropped" {
			t.Errorf("got %+v", res)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		var leaked []string
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			leaked = append(leaked, r.Method+" "+r.Header.Get("Dd-Api-Key"))
		}))
		defer other.Close()
		for _, code := range []int{301, 302, 307, 308} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/v1/metrics?k=secret-token", code)
			}))
			b := newBackend(Config{})
			enc, _ := b.Encode(testDrain, otlpOutlet("", outlet.Delta), bigMinute(t, goldenStart, 1), nil)
			o := otlpOutlet(srv.URL+"/v1/metrics", outlet.Delta)
			o.Headers = append(o.Headers, outlet.Header{Name: "Dd-Api-Key", Value: "secret-token"})
			res := b.Send(t.Context(), o, enc.Reqs[0])
			srv.Close()
			// (The core pauses the lane on any 3xx: TestRedirectPauses.)
			if res.Status != code || !strings.Contains(res.Message, "redirected to "+other.URL+",") ||
				strings.Contains(res.Message, "secret") {
				t.Errorf("%d: got %+v", code, res)
			}
		}
		if len(leaked) > 0 {
			t.Errorf("the redirect was followed: %q", leaked)
		}
	})
	t.Run("network error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/v1/metrics?api-key=secret-token"
		srv.Close()
		b := newBackend(Config{})
		enc, _ := b.Encode(testDrain, otlpOutlet("", outlet.Delta), bigMinute(t, goldenStart, 1), nil)
		res := b.Send(t.Context(), otlpOutlet(url, outlet.Delta), enc.Reqs[0])
		if res.Outcome != outlet.Retry || res.Status != 0 || strings.Contains(res.Message, "secret") {
			t.Errorf("got %+v", res)
		}
	})
}

// status encodes a google.rpc.Status, an OTLP/HTTP error body.
func status(code int, msg string) []byte {
	return append([]byte{0x08, byte(code), 0x12, byte(len(msg))}, msg...)
}

func BenchmarkEncode(b *testing.B) {
	m := bigMinute(b, goldenStart, 10000)
	be := newBackend(Config{})
	for _, temp := range []outlet.Temporality{outlet.Delta, outlet.Cumulative} {
		b.Run(string(temp), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.Encode(testDrain, otlpOutlet("", temp), m, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInvalidUTF8: names, sources and dimensions are bytes from logs;
// protobuf strings must be UTF-8, so invalid bytes are replaced rather
// than failing the minute.
func TestInvalidUTF8(t *testing.T) {
	m := meas(parse.Count, "bad\xffname", "web.\xfe", 1, goldenStart)
	m.Dims = rollup.AppendDim(nil, "route", "/\xc3")
	enc, err := newBackend(Config{}).Encode(testDrain, otlpOutlet("", outlet.Delta), minuteOf(t, "d1", goldenStart, []parse.Measurement{m}), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := pointsOf(decode(t, enc.Reqs[0]))
	if len(p) != 1 || p[0].metric != "bad\uFFFDname" || p[0].attrs["source"] != "web.\uFFFD" || p[0].attrs["route"] != "/\uFFFD" {
		t.Errorf("got %+v", p)
	}
}

// TestRoutesAndEvents: a route series has no source and the route as an
// attribute, per route; a minute's events are not OTLP's (a minute of
// events alone sends nothing).
func TestRoutesAndEvents(t *testing.T) {
	start := time.Date(2024, 5, 1, 12, 34, 0, 0, time.UTC)
	route := func(r string, v float64) parse.Measurement {
		m := meas(parse.Measure, "router.service", "", v, start)
		m.Dims = rollup.AppendDim(nil, parse.RouteDim, r)
		return m
	}
	ev := parse.Measurement{Kind: parse.Event, Name: []byte("heroku.deploys"), Member: []byte("Deploy d706b4a"), Time: start}
	m := minuteOf(t, "d1", start, []parse.Measurement{route("GET /users/:id", 10), route("GET /users/:id", 30), route("other", 5), ev})
	b := newBackend(Config{})
	enc, err := b.Encode(testDrain, otlpOutlet("", outlet.Delta), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range enc.Reqs {
		for _, p := range pointsOf(decode(t, r)) {
			got = append(got, fmt.Sprintf("%s %s %v count=%d", p.metric, p.typ, p.attrs, p.exp.GetCount()))
		}
	}
	want := []string{"router.service exp map[drainmeter.rollup:route route:GET /users/:id] count=2",
		"router.service exp map[drainmeter.rollup:route route:other] count=1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("points:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	only := &rollup.Minute{Drain: "d1", Start: start.Unix(), Series: map[string]*rollup.Series{}, Events: m.Events}
	for _, temp := range []outlet.Temporality{outlet.Delta, outlet.Cumulative} {
		if enc, err := b.Encode(testDrain, otlpOutlet("", temp), only, nil); err != nil || len(enc.Reqs) != 0 {
			t.Errorf("%s: a minute of events alone: %d requests, %v", temp, len(enc.Reqs), err)
		}
	}
}

// TestNegativeMinuteStaysOutOfTheSummary: in cumulative mode a minute with
// a negative value goes out as gauges, is counted, and leaves the running
// count and sum of the Summary alone: they never go below 0.
func TestNegativeMinuteStaysOutOfTheSummary(t *testing.T) {
	b := newBackend(Config{Version: "test"})
	o := otlpOutlet("", outlet.Cumulative)
	m1 := minuteOf(t, "d1", goldenStart, []parse.Measurement{
		meas(parse.Measure, "t", "web.1", -100, goldenStart), meas(parse.Measure, "t", "web.1", 1, goldenStart)})
	enc1, err := b.Encode(testDrain, o, m1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if enc1.AsGauges != 1 {
		t.Fatalf("as gauges %d, want 1", enc1.AsGauges)
	}
	var names []string
	for _, p := range pointsOf(decode(t, enc1.Reqs[0])) {
		if p.attrs["source"] == "web.1" {
			names = append(names, p.metric+"/"+p.typ)
		}
	}
	if want := "[t.min/gauge t.max/gauge t.p50/gauge t.p95/gauge t.p99/gauge]"; fmt.Sprint(names) != want {
		t.Fatalf("minute 1: %v, want %s", names, want)
	}
	start2 := goldenStart.Add(time.Minute)
	m2 := minuteOf(t, "d1", start2, []parse.Measurement{meas(parse.Measure, "t", "web.1", 2, start2)})
	enc2, err := b.Encode(testDrain, o, m2, enc1.Totals)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pointsOf(decode(t, enc2.Reqs[0])) {
		if p.metric == "t" && p.attrs["source"] == "web.1" {
			if p.typ != "summary" || p.sum.Count != 1 || p.sum.Sum != 2 || p.sum.StartTimeUnixNano != uint64(goldenStart.UnixNano()) {
				t.Fatalf("minute 2: %s count=%d sum=%g start=%d, want a summary of count 1, sum 2 since minute 1",
					p.typ, p.sum.GetCount(), p.sum.GetSum(), p.sum.GetStartTimeUnixNano())
			}
			return
		}
	}
	t.Fatal("minute 2 has no summary t")
}

// TestExpHistogramBoundaryBuckets: values on and next to bucket boundaries
// (powers of two among them), and their negatives, are in the OTLP-spec
// bucket (base^i < |v| ≤ base^(i+1)) at scale 6 and at every scale that
// Outlet.MaxBuckets downscales to.
func TestExpHistogramBoundaryBuckets(t *testing.T) {
	start := goldenStart
	values := []float64{1, 2, 4, 8, 1024, 0.125, 3, 1000, 1e-9, 1e9, math.Nextafter(8, 9), math.Nextafter(8, 7)}
	scales := map[int32]bool{}
	for _, v := range values {
		for _, sign := range []float64{1, -1} {
			// v and 2^20·v (1,280 buckets apart at scale 6): each cap
			// below forces one more downscale.
			w := math.Ldexp(v, 20)
			m := minuteOf(t, "d1", start, []parse.Measurement{
				meas(parse.Measure, "m", "web.1", sign*v, start),
				meas(parse.Measure, "m", "web.1", sign*w, start),
			})
			for _, maxBuckets := range []int{4096, 1281, 641, 321, 161, 81, 41, 21, 11, 6, 3, 2} {
				o := otlpOutlet("", outlet.Delta)
				o.MaxBuckets = maxBuckets
				enc, err := newBackend(Config{}).Encode(testDrain, o, m, nil)
				if err != nil {
					t.Fatal(err)
				}
				var p *metricsv1.ExponentialHistogramDataPoint
				for _, d := range pointsOf(decode(t, enc.Reqs[0])) {
					if d.metric == "m" {
						p = d.exp
					}
				}
				scales[p.Scale] = true
				side := p.Positive
				if sign < 0 {
					side = p.Negative
				}
				if n := len(side.GetBucketCounts()); n > maxBuckets {
					t.Errorf("%v cap %d: %d buckets", sign*v, maxBuckets, n)
				}
				want := map[int]uint64{}
				want[rollup.MapToIndex(v, int(p.Scale))]++
				want[rollup.MapToIndex(w, int(p.Scale))]++
				if got := bucketMap(side); !mapsEqual(got, want) {
					t.Errorf("%v and %v at scale %d (cap %d): buckets %v, want %v", sign*v, sign*w, p.Scale, maxBuckets, got, want)
				}
			}
		}
	}
	for s := int32(6); s >= -3; s-- {
		if !scales[s] {
			t.Errorf("scale %d never sent (%v)", s, scales)
		}
	}
}
