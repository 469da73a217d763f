package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	metricsv1 "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/otlp"
	"github.com/drainmeter/drainmeter/outlet/remotewrite"
	"github.com/drainmeter/drainmeter/rollup"
)

// rollupPrinter prints closed minutes as one outlet would send them: its
// own requests, built by its own backend, decoded back into lines, so that
// parse --rollup --format shows the names, labels and attributes the
// receiver gets.
type rollupPrinter struct {
	format  string // log, prometheus or otlp
	drain   *outlet.Destination
	outlet  outlet.Outlet
	backend outlet.Backend
	prev    *outlet.Totals // the running totals after the last minute printed
}

// parseFormats are --format's values (librato is printed by parse itself).
var parseFormats = []string{"log", "prometheus", "otlp", "librato"}

func newRollupPrinter(format string, temporality outlet.Temporality, pctGauges bool, percentiles []float64, name string) (*rollupPrinter, error) {
	p := &rollupPrinter{format: format, drain: &outlet.Destination{ID: "local", Name: name}}
	switch format {
	case "log":
		p.outlet = outlet.Outlet{Kind: outlet.Log}
		p.backend = outlet.NewLogBackend(io.Discard, percentiles)
	case "prometheus":
		p.outlet = outlet.Outlet{Kind: outlet.RemoteWrite}
		p.backend = remotewrite.New(nil, remotewrite.Config{})
	case "otlp":
		p.outlet = outlet.Outlet{Kind: outlet.OTLP, Temporality: temporality, PercentileGauges: pctGauges}
		p.backend = otlp.New(nil, otlp.Config{Version: version, Percentiles: percentiles})
	default:
		return nil, fmt.Errorf("--format %q: one of %s", format, strings.Join(parseFormats, ", "))
	}
	p.drain.Outlets = []outlet.Outlet{p.outlet}
	return p, nil
}

// print writes minute m's lines to w.
func (p *rollupPrinter) print(w io.Writer, m *rollup.Minute) error {
	enc, err := p.backend.Encode(p.drain, &p.outlet, m, p.prev)
	if err != nil {
		return err
	}
	if enc.Totals != nil {
		p.prev = enc.Totals
	}
	for _, r := range enc.Reqs {
		var err error
		switch p.format {
		case "log":
			_, err = w.Write(r.Body)
		case "prometheus":
			err = printRemoteWrite(w, r.Body)
		case "otlp":
			err = printOTLP(w, r.Body)
		}
		if err != nil {
			return fmt.Errorf("reading back the %s request: %w", p.format, err)
		}
	}
	if enc.Skipped > 0 {
		fmt.Fprintf(w, "# %d points left out: %s\n", enc.Skipped, enc.Note)
	}
	return nil
}

// printRemoteWrite prints a remote-write request (snappy, protobuf
// WriteRequest) in Prometheus' text form, one sample a line:
// name{label="value",…} value timestamp_ms.
func printRemoteWrite(w io.Writer, body []byte) error {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return err
	}
	var lines []string
	err = eachField(raw, func(num protowire.Number, v []byte) error {
		if num != 1 { // WriteRequest.timeseries
			return nil
		}
		var name string
		var labels []string
		var samples []string
		err := eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1: // Label
				var k, val string
				if err := eachField(v, func(num protowire.Number, v []byte) error {
					if num == 1 {
						k = string(v)
					} else if num == 2 {
						val = string(v)
					}
					return nil
				}); err != nil {
					return err
				}
				if k == "__name__" {
					name = val
				} else {
					labels = append(labels, k+"="+strconv.Quote(val))
				}
			case 2: // Sample: value (double, 1), timestamp (int64, 2)
				var value float64
				var ts int64
				for len(v) > 0 {
					n, typ, l := protowire.ConsumeTag(v)
					if l < 0 {
						return protowire.ParseError(l)
					}
					v = v[l:]
					switch {
					case n == 1 && typ == protowire.Fixed64Type:
						x, l := protowire.ConsumeFixed64(v)
						if l < 0 {
							return protowire.ParseError(l)
						}
						value, v = math.Float64frombits(x), v[l:]
					case n == 2 && typ == protowire.VarintType:
						x, l := protowire.ConsumeVarint(v)
						if l < 0 {
							return protowire.ParseError(l)
						}
						ts, v = int64(x), v[l:]
					default:
						l := protowire.ConsumeFieldValue(n, typ, v)
						if l < 0 {
							return protowire.ParseError(l)
						}
						v = v[l:]
					}
				}
				samples = append(samples, formatFloat(value)+" "+strconv.FormatInt(ts, 10))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, s := range samples {
			lines = append(lines, name+"{"+strings.Join(labels, ",")+"} "+s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// eachField calls f with each length-delimited field of a protobuf
// message; other fields are skipped.
func eachField(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// printOTLP prints an OTLP/HTTP request (gzip, protobuf) one data point a
// line: the metric's name and type, the point's attributes and values;
// first the resource's attributes.
func printOTLP(w io.Writer, body []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	// MetricsData has the wire form of ExportMetricsServiceRequest (field 1,
	// the resource metrics), without the collector package's gRPC.
	var req metricsv1.MetricsData
	if err := proto.Unmarshal(raw, &req); err != nil {
		return err
	}
	var b strings.Builder
	for _, rm := range req.GetResourceMetrics() {
		b.WriteString("resource" + attrs(rm.GetResource().GetAttributes()) + "\n")
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				head := "metric=" + quoteIfNeeded(m.GetName())
				if m.GetUnit() != "" {
					head += " unit=" + quoteIfNeeded(m.GetUnit())
				}
				switch d := m.GetData().(type) {
				case *metricsv1.Metric_Gauge:
					for _, p := range d.Gauge.GetDataPoints() {
						fmt.Fprintf(&b, "%s type=gauge%s value=%s %s\n", head, attrs(p.GetAttributes()), numberValue(p), pointTime(p.GetTimeUnixNano()))
					}
				case *metricsv1.Metric_Sum:
					t := temporalityName(d.Sum.GetAggregationTemporality())
					for _, p := range d.Sum.GetDataPoints() {
						fmt.Fprintf(&b, "%s type=sum temporality=%s monotonic=%t%s value=%s %s\n", head, t, d.Sum.GetIsMonotonic(),
							attrs(p.GetAttributes()), numberValue(p), pointTime(p.GetTimeUnixNano()))
					}
				case *metricsv1.Metric_Summary:
					for _, p := range d.Summary.GetDataPoints() {
						var qs []string
						for _, q := range p.GetQuantileValues() {
							qs = append(qs, formatFloat(q.GetQuantile())+":"+formatFloat(q.GetValue()))
						}
						fmt.Fprintf(&b, "%s type=summary%s count=%d sum=%s quantiles=%q %s\n", head, attrs(p.GetAttributes()),
							p.GetCount(), formatFloat(p.GetSum()), strings.Join(qs, " "), pointTime(p.GetTimeUnixNano()))
					}
				case *metricsv1.Metric_ExponentialHistogram:
					t := temporalityName(d.ExponentialHistogram.GetAggregationTemporality())
					for _, p := range d.ExponentialHistogram.GetDataPoints() {
						fmt.Fprintf(&b, "%s type=exponential_histogram temporality=%s%s count=%d sum=%s min=%s max=%s scale=%d %s\n", head, t,
							attrs(p.GetAttributes()), p.GetCount(), formatFloat(p.GetSum()), formatFloat(p.GetMin()), formatFloat(p.GetMax()),
							p.GetScale(), pointTime(p.GetTimeUnixNano()))
					}
				case *metricsv1.Metric_Histogram:
					t := temporalityName(d.Histogram.GetAggregationTemporality())
					for _, p := range d.Histogram.GetDataPoints() {
						fmt.Fprintf(&b, "%s type=histogram temporality=%s%s count=%d sum=%s %s\n", head, t, attrs(p.GetAttributes()),
							p.GetCount(), formatFloat(p.GetSum()), pointTime(p.GetTimeUnixNano()))
					}
				default:
					fmt.Fprintf(&b, "%s type=unknown\n", head)
				}
			}
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func temporalityName(t metricsv1.AggregationTemporality) string {
	switch t {
	case metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA:
		return "delta"
	case metricsv1.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE:
		return "cumulative"
	}
	return "unspecified"
}

func numberValue(p *metricsv1.NumberDataPoint) string {
	if v, ok := p.GetValue().(*metricsv1.NumberDataPoint_AsInt); ok {
		return strconv.FormatInt(v.AsInt, 10)
	}
	return formatFloat(p.GetAsDouble())
}

func pointTime(ns uint64) string {
	return "time=" + time.Unix(0, int64(ns)).UTC().Format(time.RFC3339)
}

// attrs is " k=v k2=v2", sorted by key.
func attrs(kvs []*commonv1.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		var v string
		switch x := kv.GetValue().GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			v = x.StringValue
		case *commonv1.AnyValue_IntValue:
			v = strconv.FormatInt(x.IntValue, 10)
		case *commonv1.AnyValue_DoubleValue:
			v = formatFloat(x.DoubleValue)
		case *commonv1.AnyValue_BoolValue:
			v = strconv.FormatBool(x.BoolValue)
		default:
			v = kv.GetValue().String()
		}
		parts = append(parts, kv.GetKey()+"="+quoteIfNeeded(v))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \"=\\") {
		return strconv.Quote(s)
	}
	return s
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
