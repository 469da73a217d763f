package fakeotlp

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	metricsv1 "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const (
	delta      = metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	cumulative = metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	minute     = uint64(60e9)
)

func kv(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func body(app string, ms ...*metricsv1.Metric) *metricsv1.MetricsData {
	return &metricsv1.MetricsData{ResourceMetrics: []*metricsv1.ResourceMetrics{{
		Resource:     &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kv("service.name", app)}},
		ScopeMetrics: []*metricsv1.ScopeMetrics{{Metrics: ms}},
	}}}
}

func num(start, t uint64, v float64, attrs ...*commonv1.KeyValue) *metricsv1.NumberDataPoint {
	return &metricsv1.NumberDataPoint{Attributes: attrs, StartTimeUnixNano: start, TimeUnixNano: t,
		Value: &metricsv1.NumberDataPoint_AsDouble{AsDouble: v}}
}

func sum(name string, temp metricsv1.AggregationTemporality, pts ...*metricsv1.NumberDataPoint) *metricsv1.Metric {
	return &metricsv1.Metric{Name: name, Data: &metricsv1.Metric_Sum{Sum: &metricsv1.Sum{AggregationTemporality: temp, IsMonotonic: true, DataPoints: pts}}}
}

func gauge(name string, pts ...*metricsv1.NumberDataPoint) *metricsv1.Metric {
	return &metricsv1.Metric{Name: name, Data: &metricsv1.Metric_Gauge{Gauge: &metricsv1.Gauge{DataPoints: pts}}}
}

func exp(name string, p *metricsv1.ExponentialHistogramDataPoint) *metricsv1.Metric {
	return &metricsv1.Metric{Name: name, Data: &metricsv1.Metric_ExponentialHistogram{ExponentialHistogram: &metricsv1.ExponentialHistogram{
		AggregationTemporality: delta, DataPoints: []*metricsv1.ExponentialHistogramDataPoint{p}}}}
}

func summary(name string, t uint64, qs ...float64) *metricsv1.Metric {
	p := &metricsv1.SummaryDataPoint{StartTimeUnixNano: minute, TimeUnixNano: t, Count: 3, Sum: 6}
	for i := 0; i+1 < len(qs); i += 2 {
		p.QuantileValues = append(p.QuantileValues, &metricsv1.SummaryDataPoint_ValueAtQuantile{Quantile: qs[i], Value: qs[i+1]})
	}
	return &metricsv1.Metric{Name: name, Data: &metricsv1.Metric_Summary{Summary: &metricsv1.Summary{DataPoints: []*metricsv1.SummaryDataPoint{p}}}}
}

type post struct {
	md       *metricsv1.MetricsData
	ct, enc  string
	auth     string
	raw      []byte // instead of md
	status   int
	rejected int64
}

func (p post) do(t *testing.T, url string) {
	t.Helper()
	raw := p.raw
	if raw == nil {
		var err error
		if raw, err = proto.Marshal(p.md); err != nil {
			t.Fatal(err)
		}
	}
	b := raw
	if p.enc == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		b = buf.Bytes()
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/metrics", bytes.NewReader(b))
	req.Header.Set("Content-Type", p.ct)
	if p.enc != "" {
		req.Header.Set("Content-Encoding", p.enc)
	}
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != p.status {
		t.Errorf("status %d, want %d: %q", resp.StatusCode, p.status, answer)
	}
	if got := rejectedIn(answer); got != p.rejected {
		t.Errorf("partial_success rejected %d, want %d", got, p.rejected)
	}
}

// rejectedIn reads rejected_data_points from a protobuf response.
func rejectedIn(b []byte) int64 {
	if len(b) < 2 || b[0] != 0x0a {
		return 0
	}
	ps, _ := protowire.ConsumeBytes(b[1:])
	if len(ps) < 2 || ps[0] != 0x08 {
		return 0
	}
	v, _ := protowire.ConsumeVarint(ps[1:])
	return int64(v)
}

func ok(md *metricsv1.MetricsData) post {
	return post{md: md, ct: "application/x-protobuf", enc: "gzip", status: 200}
}

func refused(md *metricsv1.MetricsData, status int) post {
	p := ok(md)
	p.status = status
	return p
}

// TestValidation: each check refuses the whole request.
func TestValidation(t *testing.T) {
	good := body("app", sum("c", delta, num(minute, 2*minute, 1)))
	hist := func(count, zero uint64, pos ...uint64) *metricsv1.MetricsData {
		return body("app", exp("h", &metricsv1.ExponentialHistogramDataPoint{StartTimeUnixNano: minute, TimeUnixNano: 2 * minute,
			Count: count, ZeroCount: zero, Scale: 6, Positive: &metricsv1.ExponentialHistogramDataPoint_Buckets{Offset: 3, BucketCounts: pos}}))
	}
	for name, p := range map[string]post{
		"good":                     ok(good),
		"json content type":        {md: good, ct: "application/json", enc: "gzip", status: 415},
		"not gzipped":              {md: good, ct: "application/x-protobuf", status: 400},
		"not protobuf":             {raw: []byte("hello"), ct: "application/x-protobuf", enc: "gzip", status: 400},
		"no name":                  refused(body("app", sum("", delta, num(minute, 2*minute, 1))), 400),
		"no temporality":           refused(body("app", sum("c", 0, num(minute, 2*minute, 1))), 400),
		"no time":                  refused(body("app", gauge("g", num(0, 0, 1))), 400),
		"time at start":            refused(body("app", sum("c", delta, num(minute, minute, 1))), 400),
		"duplicate attribute":      refused(body("app", gauge("g", num(0, minute, 1, kv("a", "1"), kv("a", "2")))), 400),
		"histogram count":          ok(hist(5, 1, 1, 0, 3)),
		"histogram count mismatch": refused(hist(5, 0, 1, 0, 3), 400),
		"summary":                  ok(body("app", summary("s", 2*minute, 0, 1, 0.5, 2, 1, 3))),
		"summary quantiles order":  refused(body("app", summary("s", 2*minute, 0.5, 2, 0, 1)), 400),
		"summary values order":     refused(body("app", summary("s", 2*minute, 0, 2, 1, 1)), 400),
		"summary negative":         refused(body("app", summary("s", 2*minute, 0, -1, 1, 3)), 400),
	} {
		t.Run(name, func(t *testing.T) {
			f := New(Strict)
			srv := httptest.NewServer(f)
			defer srv.Close()
			p.do(t, srv.URL)
			if stored := len(f.Points()); (p.status == 200) != (stored > 0) {
				t.Errorf("%d points stored", stored)
			}
		})
	}
}

// TestOrder: times must not go back per series, nor per resource.
func TestOrder(t *testing.T) {
	f := New(Strict)
	srv := httptest.NewServer(f)
	defer srv.Close()
	at := func(app, name string, minutes uint64) *metricsv1.MetricsData {
		return body(app, gauge(name, num(0, minutes*minute, 1)))
	}
	ok(at("a", "x", 5)).do(t, srv.URL)
	ok(at("a", "x", 5)).do(t, srv.URL)             // the same time again: fine
	refused(at("a", "x", 4), 400).do(t, srv.URL)   // the series goes back
	refused(at("a", "new", 4), 400).do(t, srv.URL) // a new series older than its resource
	ok(at("b", "x", 4)).do(t, srv.URL)             // another resource
	ok(at("a", "x", 6)).do(t, srv.URL)
	if got := f.Gauges("x", map[string]string{}); len(got) != 3 { // minutes 4 (b), 5 and 6 (a)
		t.Errorf("series x: %v", got)
	}
	if st := f.Statuses(); len(st) != 6 {
		t.Errorf("statuses %v", st)
	}
}

func TestPersonalities(t *testing.T) {
	mixed := func(t0 uint64) *metricsv1.MetricsData {
		return body("app",
			sum("d", delta, num(t0, t0+minute, 2)),
			sum("c", cumulative, num(minute, t0+minute, 7)),
			summary("s", t0+minute, 0, 1, 1, 2),
			gauge("g", num(0, t0+minute, 3)),
		)
	}
	cumulativeOnly := body("app", sum("c", cumulative, num(minute, 3*minute, 7)), gauge("g", num(0, 3*minute, 3)))
	for _, tc := range []struct {
		p        Personality
		posts    []post
		types    []string // stored
		requests int
	}{
		{Strict, []post{ok(mixed(minute))}, []string{Sum, Sum, Summary, Gauge}, 1},
		{Prometheus, []post{refused(mixed(minute), 500), ok(cumulativeOnly)}, []string{Sum, Gauge}, 2},
		{Mimir, []post{refused(mixed(minute), 400), ok(cumulativeOnly)}, []string{Sum, Gauge}, 2},
		{Victoria, []post{ok(mixed(2 * minute)), ok(mixed(minute))}, []string{Sum, Summary, Gauge, Sum, Summary, Gauge}, 2},
		{Dynatrace, []post{func() post { p := ok(mixed(minute)); p.rejected = 2; return p }()}, []string{Sum, Gauge}, 1},
		{Flaky, []post{refused(mixed(minute), 503), refused(mixed(minute), 503), refused(mixed(minute), 503), ok(mixed(minute))},
			[]string{Sum, Sum, Summary, Gauge}, 4},
	} {
		t.Run(string(tc.p), func(t *testing.T) {
			f := New(tc.p)
			srv := httptest.NewServer(f)
			defer srv.Close()
			for _, p := range tc.posts {
				p.do(t, srv.URL)
			}
			var types []string
			for _, p := range f.Points() {
				types = append(types, p.Type)
			}
			if !equal(types, tc.types) || len(f.Requests()) != tc.requests {
				t.Errorf("stored %v after %d requests; want %v after %d", types, len(f.Requests()), tc.types, tc.requests)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAuthAndFailures(t *testing.T) {
	f := New(Strict)
	srv := httptest.NewServer(f)
	defer srv.Close()
	md := body("app", gauge("g", num(0, minute, 1)))
	f.RequireAuth("Bearer good")
	p := refused(md, 401)
	p.auth = "Bearer bad"
	p.do(t, srv.URL)
	p.auth, p.status = "Bearer good", 200
	p.do(t, srv.URL)
	f.RequireAuth("")
	f.SetMaxBody(10)
	refused(md, 413).do(t, srv.URL)
	f.SetMaxBody(0)
	f.FailUntil(time.Now().Add(time.Hour))
	refused(md, 503).do(t, srv.URL)
	if r := f.Requests(); r[len(r)-1].Status != 503 {
		t.Errorf("last request %+v", r[len(r)-1])
	}
	f.FailUntil(time.Time{})
	ok(md).do(t, srv.URL)
	if v, ok := f.Gauges("g", map[string]string{})[minute]; !ok || v != 1 {
		t.Errorf("gauge %v %v", v, ok)
	}
}

func TestAccessors(t *testing.T) {
	f := New(Strict)
	srv := httptest.NewServer(f)
	defer srv.Close()
	web := kv("source", "web.1")
	for i := uint64(1); i <= 3; i++ {
		ok(body("app",
			sum("c", cumulative, num(minute, (i+1)*minute, float64(10*i), web)),
			sum("d", delta, num(i*minute, (i+1)*minute, float64(i), web)),
		)).do(t, srv.URL)
	}
	a := map[string]string{"source": "web.1"}
	if v, ok := f.Cumulative("c", a); !ok || v != 30 {
		t.Errorf("cumulative %v %v", v, ok)
	}
	if v := f.DeltaSum("d", a); v != 6 {
		t.Errorf("delta sum %v", v)
	}
	if v, ok := f.Cumulative("c", map[string]string{}); ok {
		t.Errorf("attributes must match exactly: %v", v)
	}
	if n := f.Names(); !equal(n, []string{"c", "d"}) {
		t.Errorf("names %v", n)
	}
}
