// Package otlp is the OTLP/HTTP metrics outlet (README, "Where to see your
// metrics"; the OTLP/HTTP specification's metrics export): a
// closed minute of a drain becomes MetricsData (wire-identical to
// ExportMetricsServiceRequest), marshalled deterministically, gzipped and
// POSTed to the URL the user configured, in requests of at most
// Config.MaxBytes compressed.
//
// The mapping, for a minute M (unix seconds), points stamped M+60 s:
//
//	resource    service.name = the app's name (else the drain's id) — on the built-in drain each
//	            sending app's series (rollup.App) have their own resource named after it —,
//	            cloud.provider = heroku, service.namespace if the drain has one, then the drain's
//	            own Attributes (which win over those two); scope {drainmeter, Config.Version}
//	attributes  source (if any), drainmeter.rollup (rollup.Marker: dyno | process_type | route |
//	            app | none), one per dimension but the app and the marker
//	            delta                                  cumulative (the default)
//	count       Sum{DELTA, monotonic}: the minute's    Sum{CUMULATIVE, monotonic}: the running total
//	            sum, start M; none if it is negative   since the series' start (a negative minute
//	            (counted kept_out)                     total is kept out of it, counted kept_out)
//	measure     ExponentialHistogram{DELTA}: the       Summary: running count and sum, quantiles 0,
//	            sketch's bins (scale 6, downscaled     .5, .95, .99, 1 of minute M; a minute with a
//	            past Outlet.MaxBuckets a side,         negative value goes out as gauges NAME.min,
//	            default 160), exact count, min, max    .max and .pNN (PERCENTILES) instead (counted
//	            and sum (no sum if < 0)                as_gauges), and stays out of the running
//	                                                   count and sum
//	sample      Gauge: the last value                  same
//	unique      Gauge: the distinct count              same
//	option      Outlet.PercentileGauges: each measure also as gauges NAME.pNN (PERCENTILES), for
//	            receivers that keep only a histogram's count, sum, min and max (Dynatrace)
//	held        cumulative only, Config.Hold (COUNTER_HOLD) after a count or Summary last
//	            changed: its running total (the Summary without quantiles) with its start time
//
// Answers: 2xx done (a partial_success's rejected points are counted, never
// retried); 429, 502, 503, 504 and network errors retried (honouring
// Retry-After); 413 split; 401 and 403 pause the outlet; anything else
// (500 included) is permanent.
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/DataDog/sketches-go/ddsketch/store"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	metricsv1 "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// The defaults of Config.
const (
	DefaultForget   = time.Hour
	DefaultMaxBytes = 1_000_000 // 1 MB compressed: within every receiver's limit
)

// MaxBuckets is the most buckets an exponential histogram has on each side
// by default (Outlet.MaxBuckets, OTLP_MAX_BUCKETS); a wider one is
// downscaled.
const MaxBuckets = outlet.DefaultMaxBuckets

// quantiles are the quantiles of a cumulative Summary: the exact minimum,
// the median, p95, p99 and the exact maximum.
var quantiles = [...]float64{0, 0.5, 0.95, 0.99, 1}

// Config is the outlet's configuration.
type Config struct {
	Version     string        // the scope's version: drainmeter's
	Forget      time.Duration // running totals of series absent this long are forgotten (default 1 h)
	MaxBytes    int           // the most compressed bytes a request carries (default 1 MB)
	Percentiles []float64     // of the gauges NAME.pNN (PERCENTILES; default 50, 95, 99)
	// Hold is how long after its last change a cumulative count or
	// Summary keeps being sent (its running totals, the Summary without
	// quantiles), every minute the lane posts: COUNTER_HOLD. 0: none.
	// Delta points are never held.
	Hold time.Duration
}

var _ outlet.Splitter = (*Backend)(nil) // a 413 splits; a takeover resumes inside a split

// Backend is the OTLP outlet.
type Backend struct {
	client *outlet.Client
	cfg    Config
	gzips  sync.Pool // *gzip.Writer
}

// New returns the backend.
func New(client *outlet.Client, cfg Config) *Backend {
	if cfg.Forget <= 0 {
		cfg.Forget = DefaultForget
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	cfg.Forget = max(cfg.Forget, cfg.Hold) // a held series keeps its totals
	if len(cfg.Percentiles) == 0 {
		cfg.Percentiles = []float64{50, 95, 99}
	}
	cfg.Percentiles = slices.Clone(cfg.Percentiles)
	return &Backend{client: client, cfg: cfg}
}

// kind is the OTLP data type of a point.
type kind uint8

const (
	gauge kind = iota
	deltaSum
	cumulativeSum
	expHistogram
	summary
)

// point is one data point and the metric it belongs to.
type point struct {
	name string
	kind kind
	num  *metricsv1.NumberDataPoint               // gauge, deltaSum, cumulativeSum
	exp  *metricsv1.ExponentialHistogramDataPoint // expHistogram
	sum  *metricsv1.SummaryDataPoint              // summary
	res  *head                                    // its resource, when not the request's: a sending app's
}

// series is the points of one series: one, or five gauges.
type series []point

// part is what a request carries, kept so that Split can rebuild halves of
// it without looking at the minute again.
type part struct {
	head   *head
	series []series
}

// head is what every request of a minute shares.
type head struct {
	resource *resourcev1.Resource
	scope    *commonv1.InstrumentationScope
}

// Encode builds minute m of drain d: its points, then requests of at most
// MaxBytes each. It is a function of (d, o.Temporality, m, prev) alone.
func (b *Backend) Encode(d *outlet.Destination, o *outlet.Outlet, m *rollup.Minute, prev *outlet.Totals) (outlet.Encoded, error) {
	var enc outlet.Encoded
	bl := builder{start: nanos(m.Start), time: nanos(m.Start + 60), percentiles: b.cfg.Percentiles, pctGauges: o.PercentileGauges,
		maxBuckets: o.MaxBuckets}
	if bl.maxBuckets <= 0 {
		bl.maxBuckets = MaxBuckets
	}
	switch o.Temporality {
	case outlet.Delta:
		bl.delta = true
	case "", outlet.Cumulative:
		// A minute with a negative value goes out as gauges, and stays out
		// of the Summary's running count and sum, which must not go below 0.
		bl.totals = prev.AdvanceExcept(m, int64(b.cfg.Forget/time.Second), func(s *rollup.Series) bool { return s.Min < 0 })
		bl.totals.Trim(outlet.DefaultMaxTotalsBytes, m.Start)
		enc.Totals = bl.totals
		enc.KeptOut = bl.totals.KeptOut // a negative count minute: the running total holds
	default:
		return outlet.Encoded{}, fmt.Errorf("otlp: unknown temporality %q", o.Temporality)
	}
	sorted := m.Sorted()
	all := make([]series, 0, len(sorted))
	h := newHead(d, b.cfg.Version)
	apps := map[string]*head{}
	type built struct {
		s *rollup.Series
		p series
	}
	points := make([]built, 0, len(sorted))
	for _, s := range sorted {
		points = append(points, built{s, bl.series(s)})
	}
	if hold := int64(b.cfg.Hold / time.Second); hold > 0 && bl.totals != nil {
		// Counts and Summaries that did not change in minute m, held: their
		// running totals again, with their start times.
		var keys []string
		for k, r := range bl.totals.Series {
			if r.Last < m.Start && m.Start-r.Last <= hold && (r.Kind == parse.Count || (r.Kind == parse.Measure && r.Count > 0)) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			s := heldSeries(k, bl.totals.Series[k])
			points = append(points, built{s, bl.held(s, bl.totals.Series[k])})
		}
	}
	for _, x := range points {
		s, p := x.s, x.p
		if app := rollup.App(s.Dims); app != "" && len(p) > 0 {
			// A sending app of the built-in drain is its own service.
			ah := apps[app]
			if ah == nil {
				ad := *d
				ad.Name = app
				ah = newHead(&ad, b.cfg.Version)
				apps[app] = ah
			}
			for i := range p {
				p[i].res = ah
			}
		}
		if len(p) > 0 {
			all = append(all, p)
		}
	}
	var err error
	if enc.Reqs, err = b.requests(h, all); err != nil {
		return outlet.Encoded{}, err
	}
	enc.KeptOut += bl.keptOut
	if bl.negative > 0 {
		enc.AsGauges = bl.negative
		enc.Note = "a negative value: sent as gauges NAME.min, .max and .pNN (PERCENTILES) and left out of the Summary's count and sum (a Summary holds no negative values)"
	}
	return enc, nil
}

// heldSeries rebuilds a series' identity from its key in
// rollup.Minute.Series (name NUL source [NUL dims]) and its running totals.
func heldSeries(key string, r *outlet.Running) *rollup.Series {
	name, rest, _ := strings.Cut(key, "\x00")
	source, dims, _ := strings.Cut(rest, "\x00")
	return &rollup.Series{Kind: r.Kind, Name: name, Source: source, Dims: dims, ProcessType: r.ProcessType}
}

// held returns the point of a held series: a count's running total, or a
// Summary's running count and sum without quantiles (the minute had none).
func (bl *builder) held(s *rollup.Series, r *outlet.Running) series {
	attrs := bl.attributes(s)
	name := valid(s.Name)
	if s.Kind == parse.Count {
		return series{{name: name, kind: cumulativeSum, num: &metricsv1.NumberDataPoint{Attributes: attrs,
			StartTimeUnixNano: nanos(r.Start), TimeUnixNano: bl.time, Value: &metricsv1.NumberDataPoint_AsDouble{AsDouble: r.Sum}}}}
	}
	return series{{name: name, kind: summary, sum: &metricsv1.SummaryDataPoint{Attributes: attrs,
		StartTimeUnixNano: nanos(r.Start), TimeUnixNano: bl.time, Count: uint64(r.Count), Sum: r.Sum}}}
}

func nanos(unix int64) uint64 { return uint64(unix) * uint64(time.Second) }

func newHead(d *outlet.Destination, version string) *head {
	name := d.Name
	if name == "" {
		name = d.ID
	}
	attrs := []*commonv1.KeyValue{str("service.name", name)}
	own := func(k string) bool {
		return slices.ContainsFunc(d.Attributes, func(a outlet.Attribute) bool { return a.Key == k })
	}
	if !own("cloud.provider") {
		attrs = append(attrs, str("cloud.provider", "heroku"))
	}
	if d.Namespace != "" && !own("service.namespace") {
		attrs = append(attrs, str("service.namespace", d.Namespace))
	}
	for _, a := range d.Attributes { // the user's own: checked, service.name never among them
		if a.Key != "service.name" {
			attrs = append(attrs, str(a.Key, a.Value))
		}
	}
	return &head{
		resource: &resourcev1.Resource{Attributes: attrs},
		scope:    &commonv1.InstrumentationScope{Name: "drainmeter", Version: valid(version)},
	}
}

// builder turns series into points.
type builder struct {
	start, time uint64         // the minute's start and end, unix nanoseconds
	delta       bool           // else cumulative, with totals
	totals      *outlet.Totals // the running totals after the minute
	negative    int            // cumulative measures sent as gauges
	keptOut     int            // delta counts left out: a negative minute total cannot be a monotonic delta
	shared      map[[2]string]*commonv1.KeyValue
	percentiles []float64 // of the gauges NAME.pNN
	pctGauges   bool      // every measure also as gauges NAME.pNN
	maxBuckets  int       // a side of an exponential histogram at most
}

// percentileGauges are a measure's gauges NAME.pNN, one per percentile.
func (bl *builder) percentileGauges(name string, s *rollup.Series, num func(float64) *metricsv1.NumberDataPoint) series {
	out := make(series, 0, len(bl.percentiles))
	for _, p := range bl.percentiles {
		out = append(out, point{name: name + ".p" + strconv.FormatFloat(p, 'f', -1, 64), kind: gauge, num: num(s.Quantile(p / 100))})
	}
	return out
}

func (bl *builder) series(s *rollup.Series) series {
	name := valid(s.Name)
	attrs := bl.attributes(s)
	num := func(v float64) *metricsv1.NumberDataPoint {
		return &metricsv1.NumberDataPoint{Attributes: attrs, TimeUnixNano: bl.time,
			Value: &metricsv1.NumberDataPoint_AsDouble{AsDouble: v}}
	}
	switch s.Kind {
	case parse.Sample:
		return series{{name: name, kind: gauge, num: num(s.Last)}}
	case parse.Unique:
		// Estimate merges the sketch's pending members: estimate a clone.
		return series{{name: name, kind: gauge, num: num(float64(s.HLL.Clone().Estimate()))}}
	case parse.Count:
		if bl.delta {
			if outlet.KeepOutCount(s) {
				bl.keptOut++
				return nil
			}
			p := num(s.Sum)
			p.StartTimeUnixNano = bl.start
			return series{{name: name, kind: deltaSum, num: p}}
		}
		r := bl.totals.Series[s.Key()]
		p := num(r.Sum)
		p.StartTimeUnixNano = nanos(r.Start)
		return series{{name: name, kind: cumulativeSum, num: p}}
	case parse.Measure:
		// Reading a sketch sorts its buffer in place: read a copy, so that
		// the minute, which other lanes may be reading, is not written.
		c := *s
		c.Sketch = s.Sketch.Copy()
		s = &c
		var out series
		switch {
		case bl.delta:
			p := histogram(s, bl.maxBuckets)
			p.Attributes, p.StartTimeUnixNano, p.TimeUnixNano = attrs, bl.start, bl.time
			out = series{{name: name, kind: expHistogram, exp: p}}
		case s.Min < 0:
			bl.negative++
			return append(series{
				{name: name + ".min", kind: gauge, num: num(s.Min)},
				{name: name + ".max", kind: gauge, num: num(s.Max)},
			}, bl.percentileGauges(name, s, num)...)
		default:
			r := bl.totals.Series[s.Key()]
			p := &metricsv1.SummaryDataPoint{Attributes: attrs, StartTimeUnixNano: nanos(r.Start), TimeUnixNano: bl.time,
				Count: uint64(r.Count), Sum: r.Sum}
			for _, q := range quantiles {
				p.QuantileValues = append(p.QuantileValues, &metricsv1.SummaryDataPoint_ValueAtQuantile{Quantile: q, Value: s.Quantile(q)})
			}
			out = series{{name: name, kind: summary, sum: p}}
		}
		if bl.pctGauges {
			out = append(out, bl.percentileGauges(name, s, num)...)
		}
		return out
	}
	return nil
}

// attributes are a series' point attributes: source, the rollup marker and
// its dimensions (a dimension named like one of the first two is left out:
// keys must be unique). Source and marker attributes are shared by the
// minute's points: a minute has few distinct ones.
func (bl *builder) attributes(s *rollup.Series) []*commonv1.KeyValue {
	if bl.shared == nil {
		bl.shared = map[[2]string]*commonv1.KeyValue{}
	}
	kv := func(k, v string) *commonv1.KeyValue {
		x := bl.shared[[2]string{k, v}]
		if x == nil {
			x = str(k, v)
			bl.shared[[2]string{k, v}] = x
		}
		return x
	}
	marker := rollup.Marker(s.Source, s.Dims, s.ProcessType)
	var attrs []*commonv1.KeyValue
	if s.Source != "" {
		attrs = make([]*commonv1.KeyValue, 0, 2)
		attrs = append(attrs, kv("source", s.Source))
	}
	attrs = append(attrs, kv("drainmeter.rollup", marker))
	rollup.EachDim(s.Dims, func(k, v string) {
		if k != "source" && k != "drainmeter.rollup" && rollup.Labelled(k) {
			attrs = append(attrs, str(k, v))
		}
	})
	return attrs
}

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: valid(k), Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: valid(v)}}}
}

// valid makes s valid UTF-8, which protobuf strings must be.
func valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// bin is one sketch bin: its index and count.
type bin struct {
	index int
	count uint64
}

// histogram copies a measure's sketch: bin i of the sketch is bucket i of
// scale 6 (rollup.Scale), (base^i, base^(i+1)] as the OTLP spec has it
// (rollup.MapToIndex). If a side needs more than maxBuckets buckets, both
// are downscaled exactly (index i → i>>1, scale − 1) until they fit: bucket
// i>>1 of scale − 1 is the union of buckets i and i^1, boundaries
// included, so every value stays in its spec bucket at every scale.
func histogram(s *rollup.Series, maxBuckets int) *metricsv1.ExponentialHistogramDataPoint {
	pos := bins(s.Sketch.GetPositiveValueStore())
	neg := bins(s.Sketch.GetNegativeValueStore())
	scale := int32(rollup.Scale)
	for width(pos) > maxBuckets || width(neg) > maxBuckets {
		pos, neg = downscale(pos), downscale(neg)
		scale--
	}
	p := &metricsv1.ExponentialHistogramDataPoint{Scale: scale, ZeroCount: uint64(math.Round(s.Sketch.GetZeroCount()))}
	var n uint64
	p.Positive, n = buckets(pos)
	p.Count = p.ZeroCount + n
	p.Negative, n = buckets(neg)
	p.Count += n
	lo, hi := s.Min, s.Max
	p.Min, p.Max = &lo, &hi
	if s.Min >= 0 {
		sum := s.Sum
		p.Sum = &sum
	}
	return p
}

// bins returns a sketch store's non-empty bins in index order.
func bins(st store.Store) []bin {
	var out []bin
	st.ForEach(func(i int, c float64) bool {
		if n := uint64(math.Round(c)); n > 0 {
			out = append(out, bin{i, n})
		}
		return false
	})
	slices.SortFunc(out, func(a, b bin) int { return a.index - b.index })
	return out
}

func width(b []bin) int {
	if len(b) == 0 {
		return 0
	}
	return b[len(b)-1].index - b[0].index + 1
}

// downscale halves the resolution of sorted bins: i → i>>1 (floor, also
// for negative indexes), merging bins that meet.
func downscale(b []bin) []bin {
	out := b[:0]
	for _, x := range b {
		x.index >>= 1
		if len(out) > 0 && out[len(out)-1].index == x.index {
			out[len(out)-1].count += x.count
			continue
		}
		out = append(out, x)
	}
	return out
}

// buckets returns sorted bins as dense OTLP buckets, and their total.
func buckets(b []bin) (*metricsv1.ExponentialHistogramDataPoint_Buckets, uint64) {
	if len(b) == 0 {
		return nil, 0
	}
	out := &metricsv1.ExponentialHistogramDataPoint_Buckets{Offset: int32(b[0].index), BucketCounts: make([]uint64, width(b))}
	var n uint64
	for _, x := range b {
		out.BucketCounts[x.index-b[0].index] = x.count
		n += x.count
	}
	return out, n
}

// requests cuts a minute's series, in order, into requests of at most
// MaxBytes compressed: first by their raw size (metrics compress well, so a
// chunk of a few times MaxBytes raw usually fits), then halving any chunk
// that is still too big. The cut depends on the series alone.
func (b *Backend) requests(h *head, all []series) ([]*outlet.Request, error) {
	budget := 4 * b.cfg.MaxBytes
	var out []*outlet.Request
	for len(all) > 0 {
		n, size := 0, 0
		for n < len(all) {
			size += rawSize(all[n])
			if n > 0 && size > budget {
				break
			}
			n++
		}
		reqs, err := b.fit(h, all[:n:n])
		if err != nil {
			return nil, err
		}
		out = append(out, reqs...)
		all = all[n:]
	}
	return out, nil
}

// rawSize estimates a series' share of an uncompressed body (cheaply:
// proto.Size would cost as much as marshalling).
func rawSize(s series) int {
	n := 0
	for _, p := range s {
		var attrs []*commonv1.KeyValue
		switch p.kind {
		case expHistogram:
			attrs = p.exp.Attributes
			n += 64 + 2*(len(p.exp.Positive.GetBucketCounts())+len(p.exp.Negative.GetBucketCounts()))
		case summary:
			attrs = p.sum.Attributes
			n += 48 + 20*len(p.sum.QuantileValues)
		default:
			attrs = p.num.Attributes
			n += 32
		}
		n += len(p.name) + 8
		for _, kv := range attrs {
			n += len(kv.Key) + len(kv.Value.GetStringValue()) + 8
		}
	}
	return n
}

// fit returns the requests of series, halved until each fits in MaxBytes
// (or holds a single series, which cannot be cut).
func (b *Backend) fit(h *head, ss []series) ([]*outlet.Request, error) {
	r, err := b.request(h, ss)
	if err != nil || len(r.Body) <= b.cfg.MaxBytes || len(ss) < 2 {
		return []*outlet.Request{r}, err
	}
	half := len(ss) / 2
	first, err := b.fit(h, ss[:half:half])
	if err != nil {
		return nil, err
	}
	second, err := b.fit(h, ss[half:])
	return append(first, second...), err
}

// request builds the body of one request: one ResourceMetrics with one
// ScopeMetrics, the points of one metric (the same name and type) in one
// Metric.
func (b *Backend) request(h *head, ss []series) (*outlet.Request, error) {
	// One Metric per name and kind, in the order of their first point: a
	// measure's percentile gauges come between its sources' points.
	// One ResourceMetrics per resource (the drain's, and each sending
	// app's), in the order of their first point.
	type metricKey struct {
		res  *head
		name string
		kind kind
	}
	var heads []*head
	metrics := map[*head][]*metricsv1.Metric{}
	byKey := map[metricKey]*metricsv1.Metric{}
	points := 0
	for _, s := range ss {
		for _, p := range s {
			res := p.res
			if res == nil {
				res = h
			}
			last := byKey[metricKey{res, p.name, p.kind}]
			if last == nil {
				last = newMetric(p.name, p.kind)
				byKey[metricKey{res, p.name, p.kind}] = last
				if metrics[res] == nil {
					heads = append(heads, res)
				}
				metrics[res] = append(metrics[res], last)
			}
			switch d := last.Data.(type) {
			case *metricsv1.Metric_Gauge:
				d.Gauge.DataPoints = append(d.Gauge.DataPoints, p.num)
			case *metricsv1.Metric_Sum:
				d.Sum.DataPoints = append(d.Sum.DataPoints, p.num)
			case *metricsv1.Metric_ExponentialHistogram:
				d.ExponentialHistogram.DataPoints = append(d.ExponentialHistogram.DataPoints, p.exp)
			case *metricsv1.Metric_Summary:
				d.Summary.DataPoints = append(d.Summary.DataPoints, p.sum)
			}
			points++
		}
	}
	md := &metricsv1.MetricsData{}
	for _, res := range heads {
		md.ResourceMetrics = append(md.ResourceMetrics, &metricsv1.ResourceMetrics{
			Resource:     res.resource,
			ScopeMetrics: []*metricsv1.ScopeMetrics{{Scope: res.scope, Metrics: metrics[res]}},
		})
	}
	if len(heads) == 0 {
		md.ResourceMetrics = []*metricsv1.ResourceMetrics{{Resource: h.resource,
			ScopeMetrics: []*metricsv1.ScopeMetrics{{Scope: h.scope}}}}
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("otlp: marshal: %w", err)
	}
	body, err := b.gzip(raw)
	if err != nil {
		return nil, err
	}
	return &outlet.Request{Body: body, ContentType: "application/x-protobuf", Encoding: "gzip", Points: points,
		Part: &part{head: h, series: ss}}, nil
}

func newMetric(name string, k kind) *metricsv1.Metric {
	m := &metricsv1.Metric{Name: name}
	switch k {
	case gauge:
		m.Data = &metricsv1.Metric_Gauge{Gauge: &metricsv1.Gauge{}}
	case deltaSum, cumulativeSum:
		t := metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
		if k == cumulativeSum {
			t = metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		}
		m.Data = &metricsv1.Metric_Sum{Sum: &metricsv1.Sum{AggregationTemporality: t, IsMonotonic: true}}
	case expHistogram:
		m.Data = &metricsv1.Metric_ExponentialHistogram{ExponentialHistogram: &metricsv1.ExponentialHistogram{
			AggregationTemporality: metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}}
	case summary:
		m.Data = &metricsv1.Metric_Summary{Summary: &metricsv1.Summary{}}
	}
	return m
}

// gzip compresses raw; the same input always gives the same bytes.
func (b *Backend) gzip(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw)/4 + 64)
	zw, _ := b.gzips.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(&buf)
	} else {
		zw.Reset(&buf)
	}
	defer b.gzips.Put(zw)
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("otlp: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("otlp: gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// Split halves a request's series (after a 413). A request of a single
// series cannot be split: it is dropped.
func (b *Backend) Split(r *outlet.Request) []*outlet.Request {
	p, ok := r.Part.(*part)
	if !ok || len(p.series) < 2 {
		return nil
	}
	half := len(p.series) / 2
	first, err1 := b.request(p.head, p.series[:half:half])
	second, err2 := b.request(p.head, p.series[half:])
	if err1 != nil || err2 != nil { // cannot happen: these series were marshalled before
		return nil
	}
	return []*outlet.Request{first, second}
}

// Items returns how many series a request carries: the unit of Split.
func (b *Backend) Items(r *outlet.Request) int {
	if p, ok := r.Part.(*part); ok {
		return len(p.series)
	}
	return 0
}

// Tail rebuilds a request without its first n series, encoded as Split
// encodes a part.
func (b *Backend) Tail(r *outlet.Request, n int) *outlet.Request {
	p, ok := r.Part.(*part)
	if !ok || n < 0 || n >= len(p.series) {
		return nil
	}
	t, err := b.request(p.head, p.series[n:])
	if err != nil {
		return nil
	}
	return t
}

// Send posts a request to the outlet's URL with its configured headers.
func (b *Backend) Send(ctx context.Context, o *outlet.Outlet, r *outlet.Request) outlet.Result {
	resp, err := b.client.Post(ctx, o.URL, r, func(req *http.Request) {
		for _, h := range o.Headers {
			req.Header.Del(h.Name)
		}
		for _, h := range o.Headers {
			req.Header.Add(h.Name, h.Value)
		}
	})
	if err != nil {
		return outlet.Result{Outcome: outlet.Retry, Message: err.Error()}
	}
	return answer(resp, r.Points)
}

// answer decides what a receiver's answer means: the one place statuses
// are read (the table in README, "How each outlet treats answers").
func answer(resp *outlet.Response, points int) outlet.Result {
	res := outlet.Result{Status: resp.Status, RetryAfter: resp.RetryAfter}
	switch s := resp.Status; {
	case s >= 200 && s < 300:
		res.Outcome = outlet.Accepted
		rejected, msg, err := partialSuccess(resp.Body, resp.Header.Get("Content-Type"))
		if err != nil {
			res.Message = "unreadable response: " + err.Error()
			return res
		}
		res.Rejected = int(min(max(rejected, 0), int64(points)))
		if res.Rejected > 0 {
			res.Message = outlet.Excerpt([]byte(msg))
		} else if msg != "" { // the spec: a warning, nothing refused
			res.Warning = outlet.Excerpt([]byte(msg))
		}
	case s == http.StatusTooManyRequests || s == http.StatusBadGateway ||
		s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout:
		res.Outcome = outlet.Retry
		res.Message = errorMessage(resp)
	case s == http.StatusRequestEntityTooLarge:
		res.Outcome = outlet.Split
		res.Message = errorMessage(resp)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		res.Outcome = outlet.Pause
		res.Message = errorMessage(resp)
	default: // other 4xx and 5xx, 500 included: the same body would be refused again
		res.Outcome = outlet.Permanent
		res.Message = errorMessage(resp)
	}
	return res
}

// isJSON reports whether a Content-Type is application/json.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// partialSuccess reads an ExportMetricsServiceResponse: the points its
// partial_success rejected and its message. The body may be empty,
// protobuf, or JSON if the Content-Type says so.
//
//	ExportMetricsServiceResponse{1: partial_success}
//	ExportMetricsPartialSuccess{1: int64 rejected_data_points, 2: string error_message}
func partialSuccess(body []byte, contentType string) (rejected int64, msg string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, "", nil
	}
	if isJSON(contentType) {
		return partialSuccessJSON(body)
	}
	err = eachField(body, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			switch {
			case num == 1 && typ == protowire.VarintType:
				rejected = int64(x)
			case num == 2 && typ == protowire.BytesType:
				msg = string(v)
			}
			return nil
		})
	})
	return rejected, msg, err
}

var errProto = errors.New("malformed protobuf")

// eachField calls f with every field of a protobuf message: its number and
// type, and its bytes (length-delimited) or value (varint and fixed).
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// partialSuccessJSON reads the JSON form: lowerCamelCase names (snake_case
// accepted too); int64 as a string or a number.
func partialSuccessJSON(body []byte) (int64, string, error) {
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, "", fmt.Errorf("json: %w", err)
	}
	ps := field(resp, "partialSuccess", "partial_success")
	if ps == nil || string(ps) == "null" {
		return 0, "", nil
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(ps, &p); err != nil {
		return 0, "", fmt.Errorf("json: %w", err)
	}
	var rejected int64
	if raw := field(p, "rejectedDataPoints", "rejected_data_points"); raw != nil {
		s := strings.Trim(string(raw), `"`)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("json: rejectedDataPoints %q", s)
		}
		rejected = n
	}
	var msg string
	if raw := field(p, "errorMessage", "error_message"); raw != nil {
		_ = json.Unmarshal(raw, &msg) // not a string: no message
	}
	return rejected, msg, nil
}

func field(m map[string]json.RawMessage, names ...string) json.RawMessage {
	for _, n := range names {
		if v, ok := m[n]; ok {
			return v
		}
	}
	return nil
}

// errorMessage is the receiver's reason for a failure: the message of a
// protobuf google.rpc.Status {1: code, 2: message}, else the start of the
// body. Never a header.
func errorMessage(resp *outlet.Response) string {
	ct := resp.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "application/x-protobuf" {
		var msg string
		err := eachField(resp.Body, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num == 2 && typ == protowire.BytesType {
				msg = string(v)
			}
			return nil
		})
		if err == nil {
			return outlet.Excerpt([]byte(msg))
		}
	}
	return outlet.Excerpt(resp.Body)
}

// MetricName returns the name a series named s is posted under (the
// drain's prefix is already part of s).
func MetricName(s string) string { return valid(s) }
