// Package fakeotlp is an OTLP/HTTP metrics receiver for tests: an
// http.Handler (serve it with httptest) that decodes requests with the
// official types and validates them like a real receiver
// (the OTLP/HTTP specification's checks, and Prometheus' and the
// collector's), stores what it accepts, records every request,
// and can be told to fail.
//
// Every request is checked, and refused with 400 (415 for the media type)
// as a whole if one thing is wrong: Content-Type application/x-protobuf,
// Content-Encoding gzip, a body that unmarshals into MetricsData; metric
// names non-empty, a data type set, temporality set on Sum, Histogram and
// ExponentialHistogram; every point stamped, after its start time if it
// has one, with unique attribute keys; exp-histogram count == zero_count +
// Σbuckets; Summary quantiles ascending, within [0, 1], values ≥ 0 and
// non-decreasing; and times non-decreasing per series and per Resource
// across requests ("out of order").
//
// A Personality then answers like a known receiver:
//
//	strict      the checks above (the default)
//	prometheus  500 to a request holding any delta point; 400 out of order
//	mimir       400 "invalid temporality and type combination" to any delta point
//	victoria    200, and delta Sum and histogram points silently dropped; no order checks
//	dynatrace   200 with partial_success for cumulative Sum and Summary points, which are dropped
//	flaky       503 with Retry-After: 1 to the first Flaky requests (3 unless set), then strict
package fakeotlp

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	metricsv1 "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Personality is the receiver the fake imitates.
type Personality string

// The personalities.
const (
	Strict     Personality = "strict"
	Prometheus Personality = "prometheus"
	Mimir      Personality = "mimir"
	Victoria   Personality = "victoria"
	Dynatrace  Personality = "dynatrace"
	Flaky      Personality = "flaky"
)

// The data types of points.
const (
	Gauge        = "gauge"
	Sum          = "sum"
	Histogram    = "histogram"
	ExpHistogram = "exponential_histogram"
	Summary      = "summary"
)

// Point is one accepted data point.
type Point struct {
	Resource    map[string]string // the resource's attributes (string values)
	Metric      string
	Type        string // Gauge, Sum, …
	Temporality metricsv1.AggregationTemporality
	Monotonic   bool
	Attrs       map[string]string // the point's attributes (string values)
	Start, Time uint64            // unix nanoseconds
	Value       float64           // Gauge and Sum (as_int converted)

	Exp     *metricsv1.ExponentialHistogramDataPoint // ExpHistogram
	Summary *metricsv1.SummaryDataPoint              // Summary
	Hist    *metricsv1.HistogramDataPoint            // Histogram
}

// Delta reports whether the point is a delta.
func (p *Point) Delta() bool {
	return p.Temporality == metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
}

// Request is one recorded request.
type Request struct {
	At              time.Time
	Path            string
	ContentType     string
	ContentEncoding string
	UserAgent       string
	Authorization   string
	Size            int // compressed body bytes
	Points          int // data points in the body (0 if it could not be read)
	Status          int
	Rejected        int    // points refused in a partial_success
	Error           string // why the request, or some of its points, were refused
}

// Server is the fake. Create it with New.
type Server struct {
	personality Personality

	mu           sync.Mutex
	flaky        int // flaky: requests still to fail
	requests     []Request
	points       []Point
	seriesTime   map[string]uint64 // series key → latest time
	resourceTime map[string]uint64 // resource key → latest time
	failUntil    time.Time
	auth         string // required Authorization value; "" accepts any
	maxBody      int    // bigger compressed bodies get 413; 0: no limit
	json         bool   // answer partial successes in JSON
}

// New returns a fake with personality p ("" is Strict).
func New(p Personality) *Server {
	if p == "" {
		p = Strict
	}
	return &Server{personality: p, flaky: 3, seriesTime: map[string]uint64{}, resourceTime: map[string]uint64{}}
}

// SetFlaky sets how many requests a flaky fake answers 503 before it
// accepts any.
func (s *Server) SetFlaky(n int) {
	s.mu.Lock()
	s.flaky = n
	s.mu.Unlock()
}

// FailUntil answers every request with 503 (Retry-After: 1) until t.
func (s *Server) FailUntil(t time.Time) {
	s.mu.Lock()
	s.failUntil = t
	s.mu.Unlock()
}

// RequireAuth answers 401 to every request whose Authorization header is
// not v, until told otherwise; "" accepts any.
func (s *Server) RequireAuth(v string) {
	s.mu.Lock()
	s.auth = v
	s.mu.Unlock()
}

// SetMaxBody answers 413 to requests whose compressed body is longer than
// n bytes (0: no limit).
func (s *Server) SetMaxBody(n int) {
	s.mu.Lock()
	s.maxBody = n
	s.mu.Unlock()
}

// JSONResponses makes partial_success answers JSON (Content-Type
// application/json) rather than protobuf.
func (s *Server) JSONResponses(on bool) {
	s.mu.Lock()
	s.json = on
	s.mu.Unlock()
}

// refusal is a request refused as a whole.
type refusal struct {
	status int
	msg    string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	req := Request{At: time.Now(), Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"), UserAgent: r.Header.Get("User-Agent"),
		Authorization: r.Header.Get("Authorization"), Size: len(body)}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, rejected := s.serve(r, body, &req)
	if ref != nil {
		req.Status, req.Error = ref.status, ref.msg
		if ref.status == http.StatusServiceUnavailable || ref.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(ref.status)
		_, _ = w.Write(status(ref.status, ref.msg))
		s.requests = append(s.requests, req)
		return
	}
	req.Status = http.StatusOK
	if rejected > 0 {
		req.Rejected = rejected
		req.Error = "cumulative Sum and Summary points are not supported"
	}
	s.requests = append(s.requests, req)
	if s.json {
		w.Header().Set("Content-Type", "application/json")
		if rejected > 0 {
			fmt.Fprintf(w, `{"partialSuccess":{"rejectedDataPoints":"%d","errorMessage":%q}}`, rejected, req.Error)
		} else {
			_, _ = w.Write([]byte("{}"))
		}
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	if rejected > 0 {
		_, _ = w.Write(PartialSuccess(int64(rejected), req.Error))
	}
}

// serve checks and stores one request. s.mu is held.
func (s *Server) serve(r *http.Request, body []byte, req *Request) (*refusal, int) {
	switch {
	case !strings.HasSuffix(r.URL.Path, "/v1/metrics"):
		return &refusal{http.StatusNotFound, "not found"}, 0
	case r.Method != http.MethodPost:
		return &refusal{http.StatusMethodNotAllowed, "method not allowed"}, 0
	case s.auth != "" && req.Authorization != s.auth:
		return &refusal{http.StatusUnauthorized, "invalid credentials"}, 0
	case time.Now().Before(s.failUntil):
		return &refusal{http.StatusServiceUnavailable, "unavailable"}, 0
	case s.personality == Flaky && s.flaky > 0:
		s.flaky--
		return &refusal{http.StatusServiceUnavailable, "try again"}, 0
	case s.maxBody > 0 && len(body) > s.maxBody:
		return &refusal{http.StatusRequestEntityTooLarge, "request body too large"}, 0
	}
	if mt, _, _ := mime.ParseMediaType(req.ContentType); mt != "application/x-protobuf" {
		return &refusal{http.StatusUnsupportedMediaType, "unsupported content type " + req.ContentType}, 0
	}
	if req.ContentEncoding != "gzip" {
		return &refusal{http.StatusBadRequest, "content encoding " + req.ContentEncoding + ": want gzip"}, 0
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return &refusal{http.StatusBadRequest, "gzip: " + err.Error()}, 0
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return &refusal{http.StatusBadRequest, "gzip: " + err.Error()}, 0
	}
	var md metricsv1.MetricsData
	if err := proto.Unmarshal(raw, &md); err != nil {
		return &refusal{http.StatusBadRequest, "proto: " + err.Error()}, 0
	}
	points, err := flatten(&md)
	req.Points = len(points)
	if err != nil {
		return &refusal{http.StatusBadRequest, err.Error()}, 0
	}
	delta := false
	for i := range points {
		if points[i].Delta() {
			delta = true
		}
	}
	switch {
	case delta && s.personality == Prometheus:
		return &refusal{http.StatusInternalServerError, "delta temporality is not supported"}, 0
	case delta && s.personality == Mimir:
		return &refusal{http.StatusBadRequest, "invalid temporality and type combination"}, 0
	}
	if s.personality != Victoria {
		for i := range points {
			p := &points[i]
			if t, ok := s.seriesTime[seriesKey(p)]; ok && p.Time < t {
				return &refusal{http.StatusBadRequest, "out of order sample: " + p.Metric}, 0
			}
			if p.Time < s.resourceTime[attrsKey(p.Resource)] {
				return &refusal{http.StatusBadRequest, "out of order sample (resource): " + p.Metric}, 0
			}
		}
	}
	rejected := 0
	for _, p := range points {
		switch {
		case s.personality == Victoria && p.Delta() && p.Type != Gauge:
			continue
		case s.personality == Dynatrace && (p.Type == Summary ||
			p.Type == Sum && p.Temporality == metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE):
			rejected++
			continue
		}
		s.points = append(s.points, p)
		k, rk := seriesKey(&p), attrsKey(p.Resource)
		s.seriesTime[k] = max(s.seriesTime[k], p.Time)
		s.resourceTime[rk] = max(s.resourceTime[rk], p.Time)
	}
	return nil, rejected
}

// flatten checks a request and returns its points.
func flatten(md *metricsv1.MetricsData) ([]Point, error) {
	var out []Point
	for _, rm := range md.ResourceMetrics {
		res := map[string]string{}
		if rm.Resource != nil {
			var err error
			if res, err = attrs(rm.Resource.Attributes); err != nil {
				return nil, fmt.Errorf("resource: %w", err)
			}
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				pts, err := metricPoints(m)
				if err != nil {
					return nil, fmt.Errorf("metric %q: %w", m.Name, err)
				}
				for i := range pts {
					pts[i].Resource = res
				}
				out = append(out, pts...)
			}
		}
	}
	return out, nil
}

type timed interface {
	GetStartTimeUnixNano() uint64
	GetTimeUnixNano() uint64
	GetAttributes() []*commonv1.KeyValue
}

func metricPoints(m *metricsv1.Metric) ([]Point, error) {
	if m.Name == "" {
		return nil, fmt.Errorf("empty metric name")
	}
	var out []Point
	add := func(typ string, t metricsv1.AggregationTemporality, mono bool, dp timed, p Point) error {
		if typ != Gauge && t == metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED {
			return fmt.Errorf("%s without aggregation temporality", typ)
		}
		p.Metric, p.Type, p.Temporality, p.Monotonic = m.Name, typ, t, mono
		p.Start, p.Time = dp.GetStartTimeUnixNano(), dp.GetTimeUnixNano()
		if p.Time == 0 {
			return fmt.Errorf("point without time")
		}
		if p.Start != 0 && p.Time <= p.Start {
			return fmt.Errorf("time %d not after start %d", p.Time, p.Start)
		}
		var err error
		if p.Attrs, err = attrs(dp.GetAttributes()); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}
	var err error
	switch d := m.Data.(type) {
	case *metricsv1.Metric_Gauge:
		for _, dp := range d.Gauge.DataPoints {
			if err = add(Gauge, 0, false, dp, Point{Value: number(dp)}); err != nil {
				return nil, err
			}
		}
	case *metricsv1.Metric_Sum:
		for _, dp := range d.Sum.DataPoints {
			if err = add(Sum, d.Sum.AggregationTemporality, d.Sum.IsMonotonic, dp, Point{Value: number(dp)}); err != nil {
				return nil, err
			}
		}
	case *metricsv1.Metric_Histogram:
		for _, dp := range d.Histogram.DataPoints {
			if err = checkHistogram(dp); err != nil {
				return nil, err
			}
			if err = add(Histogram, d.Histogram.AggregationTemporality, false, dp, Point{Hist: dp}); err != nil {
				return nil, err
			}
		}
	case *metricsv1.Metric_ExponentialHistogram:
		for _, dp := range d.ExponentialHistogram.DataPoints {
			if err = checkExpHistogram(dp); err != nil {
				return nil, err
			}
			if err = add(ExpHistogram, d.ExponentialHistogram.AggregationTemporality, false, dp, Point{Exp: dp}); err != nil {
				return nil, err
			}
		}
	case *metricsv1.Metric_Summary:
		for _, dp := range d.Summary.DataPoints {
			if err = checkSummary(dp); err != nil {
				return nil, err
			}
			// A Summary has no temporality field: it is cumulative.
			if err = add(Summary, metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, false, dp, Point{Summary: dp}); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("no data")
	}
	return out, nil
}

func number(dp *metricsv1.NumberDataPoint) float64 {
	switch v := dp.Value.(type) {
	case *metricsv1.NumberDataPoint_AsDouble:
		return v.AsDouble
	case *metricsv1.NumberDataPoint_AsInt:
		return float64(v.AsInt)
	}
	return math.NaN()
}

func checkHistogram(dp *metricsv1.HistogramDataPoint) error {
	if len(dp.BucketCounts) != 0 && len(dp.BucketCounts) != len(dp.ExplicitBounds)+1 {
		return fmt.Errorf("%d buckets for %d bounds", len(dp.BucketCounts), len(dp.ExplicitBounds))
	}
	var n uint64
	for _, c := range dp.BucketCounts {
		n += c
	}
	if len(dp.BucketCounts) > 0 && n != dp.Count {
		return fmt.Errorf("histogram count %d != Σbuckets %d", dp.Count, n)
	}
	return nil
}

func checkExpHistogram(dp *metricsv1.ExponentialHistogramDataPoint) error {
	if dp.Scale < -10 || dp.Scale > 20 {
		return fmt.Errorf("scale %d out of [-10, 20]", dp.Scale)
	}
	n := dp.ZeroCount
	for _, b := range []*metricsv1.ExponentialHistogramDataPoint_Buckets{dp.Positive, dp.Negative} {
		for _, c := range b.GetBucketCounts() {
			n += c
		}
	}
	if n != dp.Count {
		return fmt.Errorf("exponential histogram count %d != zero_count + Σbuckets %d", dp.Count, n)
	}
	if dp.Min != nil && dp.Max != nil && *dp.Min > *dp.Max {
		return fmt.Errorf("min %v > max %v", *dp.Min, *dp.Max)
	}
	return nil
}

func checkSummary(dp *metricsv1.SummaryDataPoint) error {
	if dp.Sum < 0 || math.IsNaN(dp.Sum) {
		return fmt.Errorf("summary sum %v < 0 (a Summary holds no negative values)", dp.Sum)
	}
	for i, q := range dp.QuantileValues {
		if q.Quantile < 0 || q.Quantile > 1 {
			return fmt.Errorf("quantile %v out of [0, 1]", q.Quantile)
		}
		if q.Value < 0 || math.IsNaN(q.Value) {
			return fmt.Errorf("quantile %v: value %v < 0", q.Quantile, q.Value)
		}
		if i > 0 {
			p := dp.QuantileValues[i-1]
			if q.Quantile <= p.Quantile {
				return fmt.Errorf("quantiles not ascending: %v after %v", q.Quantile, p.Quantile)
			}
			if q.Value < p.Value {
				return fmt.Errorf("quantile values decreasing: %v after %v", q.Value, p.Value)
			}
		}
	}
	return nil
}

// attrs returns attributes as a map, refusing duplicate and empty keys.
func attrs(kvs []*commonv1.KeyValue) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if kv.Key == "" {
			return nil, fmt.Errorf("empty attribute key")
		}
		if _, dup := m[kv.Key]; dup {
			return nil, fmt.Errorf("duplicate attribute %q", kv.Key)
		}
		switch v := kv.Value.GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		default:
			m[kv.Key] = fmt.Sprint(v)
		}
	}
	return m, nil
}

// attrsKey is a canonical form of attributes.
func attrsKey(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

func seriesKey(p *Point) string {
	return attrsKey(p.Resource) + "\x01" + p.Metric + "\x01" + attrsKey(p.Attrs)
}

// status encodes a google.rpc.Status {1: code, 2: message}, the body of an
// OTLP/HTTP error.
func status(code int, msg string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, msg)
}

// PartialSuccess encodes an ExportMetricsServiceResponse with a
// partial_success {1: rejected_data_points, 2: error_message}.
func PartialSuccess(rejected int64, msg string) []byte {
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(rejected))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, msg)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Statuses returns the status of every request, in order.
func (s *Server) Statuses() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.Status
	}
	return out
}

// Points returns every accepted point, in arrival order.
func (s *Server) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.points)
}

// Series returns the accepted points of metric name whose attributes are
// exactly attrs, in arrival order, whatever their resource (tests post one
// drain at a time).
func (s *Server) Series(name string, attrs map[string]string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Point
	for _, p := range s.points {
		if p.Metric == name && maps.Equal(p.Attrs, attrs) {
			out = append(out, p)
		}
	}
	return out
}

// Cumulative returns the latest value (by time) of a cumulative Sum series.
func (s *Server) Cumulative(name string, attrs map[string]string) (float64, bool) {
	var v float64
	var at uint64
	ok := false
	for _, p := range s.Series(name, attrs) {
		if p.Type == Sum && !p.Delta() && p.Time >= at {
			v, at, ok = p.Value, p.Time, true
		}
	}
	return v, ok
}

// DeltaSum returns the sum of a delta Sum series' values.
func (s *Server) DeltaSum(name string, attrs map[string]string) float64 {
	var v float64
	for _, p := range s.Series(name, attrs) {
		if p.Type == Sum && p.Delta() {
			v += p.Value
		}
	}
	return v
}

// Summaries returns a series' Summary points by time (unix nanoseconds).
func (s *Server) Summaries(name string, attrs map[string]string) map[uint64]*metricsv1.SummaryDataPoint {
	out := map[uint64]*metricsv1.SummaryDataPoint{}
	for _, p := range s.Series(name, attrs) {
		if p.Summary != nil {
			out[p.Time] = p.Summary
		}
	}
	return out
}

// ExpHistograms returns a series' exponential-histogram points by time.
func (s *Server) ExpHistograms(name string, attrs map[string]string) map[uint64]*metricsv1.ExponentialHistogramDataPoint {
	out := map[uint64]*metricsv1.ExponentialHistogramDataPoint{}
	for _, p := range s.Series(name, attrs) {
		if p.Exp != nil {
			out[p.Time] = p.Exp
		}
	}
	return out
}

// Gauges returns a series' gauge values by time.
func (s *Server) Gauges(name string, attrs map[string]string) map[uint64]float64 {
	out := map[uint64]float64{}
	for _, p := range s.Series(name, attrs) {
		if p.Type == Gauge {
			out[p.Time] = p.Value
		}
	}
	return out
}

// Names returns the names of the accepted metrics, sorted.
func (s *Server) Names() []string {
	set := map[string]bool{}
	for _, p := range s.Points() {
		set[p.Metric] = true
	}
	names := slices.Collect(maps.Keys(set))
	sort.Strings(names)
	return names
}

// ExpQuantile is what a receiver can read of an exponential histogram: its
// estimate of the nearest-rank q-quantile (the ceil(q·count)-th smallest
// value), the value of the bucket that holds that rank, bucket i of scale s
// being (base^i, base^(i+1)], base = 2^(2^-s), and its value the point
// within (base-1)/(base+1) of both bounds (negative buckets mirrored; the
// zero bucket's value 0), clamped to the point's min and max if it has
// them. NaN for an empty histogram.
func ExpQuantile(p *metricsv1.ExponentialHistogramDataPoint, q float64) float64 {
	if p.Count == 0 {
		return math.NaN()
	}
	rank := uint64(max(1, math.Ceil(q*float64(p.Count))))
	base := math.Exp2(math.Exp2(-float64(p.Scale)))
	value := func(i int) float64 { return 2 * math.Pow(base, float64(i)+1) / (1 + base) }
	clamp := func(v float64) float64 {
		if p.Min != nil {
			v = max(v, p.GetMin())
		}
		if p.Max != nil {
			v = min(v, p.GetMax())
		}
		return v
	}
	var seen uint64
	neg := p.GetNegative()
	for k := len(neg.GetBucketCounts()) - 1; k >= 0; k-- { // the most negative first
		if seen += neg.BucketCounts[k]; seen >= rank {
			return clamp(-value(int(neg.Offset) + k))
		}
	}
	if seen += p.ZeroCount; seen >= rank {
		return clamp(0)
	}
	pos := p.GetPositive()
	for k, c := range pos.GetBucketCounts() {
		if seen += c; seen >= rank {
			return clamp(value(int(pos.Offset) + k))
		}
	}
	return clamp(math.Inf(1))
}
