package remotewrite

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drainmeter/drainmeter/outlet"
)

// decoded is one TimeSeries of a WriteRequest.
type decoded struct {
	Labels  []label
	Samples []decodedSample
	Hists   []decodedHist
}

// decodedHist is a native histogram, its buckets by Prometheus' index
// (bucket i of schema s: (2^((i-1)/2^s), 2^(i/2^s)]).
type decodedHist struct {
	Count, Zero    uint64
	Sum, Threshold float64
	Schema         int32
	Pos, Neg       map[int]uint64
	Ts             int64
}

func (h decodedHist) stale() bool { return math.Float64bits(h.Sum) == StaleNaN }

func (h decodedHist) String() string {
	if h.stale() {
		return "stale histogram"
	}
	side := func(m map[int]uint64) string {
		var parts []string
		for _, i := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%d:%d", i, m[i]))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("histogram{count=%d sum=%g schema=%d zero=%d threshold=%g positive=%s negative=%s}",
		h.Count, h.Sum, h.Schema, h.Zero, h.Threshold, side(h.Pos), side(h.Neg))
}

// decodeHistogram reads a Histogram as Prometheus 2.42 does
// (HistogramProtoToHistogram, then ValidateHistogram): spans' lengths
// match the deltas, counts never go below 0, and the count is the zero
// count and the buckets'.
func decodeHistogram(b []byte) (decodedHist, error) {
	h := decodedHist{Pos: map[int]uint64{}, Neg: map[int]uint64{}}
	var spans [2][][2]int64 // negative, positive: offset, length
	var deltas [2][]int64
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			h.Count = x
		case num == 3 && typ == protowire.Fixed64Type:
			h.Sum = math.Float64frombits(x)
		case num == 4 && typ == protowire.VarintType:
			h.Schema = int32(protowire.DecodeZigZag(x))
		case num == 5 && typ == protowire.Fixed64Type:
			h.Threshold = math.Float64frombits(x)
		case num == 6 && typ == protowire.VarintType:
			h.Zero = x
		case (num == 8 || num == 11) && typ == protowire.BytesType:
			var sp [2]int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					sp[0] = protowire.DecodeZigZag(x)
				case num == 2 && typ == protowire.VarintType:
					sp[1] = int64(x)
				default:
					return fmt.Errorf("BucketSpan field %d type %d", num, typ)
				}
				return nil
			})
			if err != nil {
				return err
			}
			side := 0
			if num == 11 {
				side = 1
			}
			spans[side] = append(spans[side], sp)
		case (num == 9 || num == 12) && typ == protowire.BytesType:
			side := 0
			if num == 12 {
				side = 1
			}
			for len(v) > 0 {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return protowire.ParseError(n)
				}
				deltas[side] = append(deltas[side], protowire.DecodeZigZag(x))
				v = v[n:]
			}
		case num == 15 && typ == protowire.VarintType:
			h.Ts = int64(x)
		default:
			return fmt.Errorf("Histogram field %d type %d", num, typ)
		}
		return nil
	})
	if err != nil || h.stale() {
		return h, err
	}
	if h.Schema < -4 || h.Schema > 8 {
		return h, fmt.Errorf("schema %d", h.Schema)
	}
	total := h.Zero
	for side, out := range []map[int]uint64{h.Neg, h.Pos} {
		var n int64
		for k, sp := range spans[side] {
			if sp[1] == 0 || k > 0 && sp[0] < 0 {
				return h, fmt.Errorf("span %v", sp)
			}
			n += sp[1]
		}
		if n != int64(len(deltas[side])) {
			return h, fmt.Errorf("spans of %d buckets, %d deltas", n, len(deltas[side]))
		}
		idx, c, d := 0, int64(0), 0
		for k, sp := range spans[side] {
			if k == 0 {
				idx = int(sp[0])
			} else {
				idx += int(sp[0])
			}
			for range sp[1] {
				c += deltas[side][d]
				d++
				if c < 0 {
					return h, fmt.Errorf("negative bucket count")
				}
				if c > 0 {
					out[idx] = uint64(c)
				}
				total += uint64(c)
				idx++
			}
		}
	}
	if total != h.Count {
		return h, fmt.Errorf("count %d, zero and buckets %d", h.Count, total)
	}
	return h, nil
}

type decodedSample struct {
	Value float64
	Ts    int64
}

func (d decoded) name() string { return d.label(labelName) }

func (d decoded) label(n string) string {
	for _, l := range d.Labels {
		if l.name == n {
			return l.value
		}
	}
	return ""
}

// id is the series' labels as name{k="v",…}.
func (d decoded) id() string {
	var b strings.Builder
	b.WriteString(d.name())
	b.WriteByte('{')
	first := true
	for _, l := range d.Labels {
		if l.name == labelName {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", l.name, l.value)
	}
	b.WriteByte('}')
	return b.String()
}

func (s decodedSample) stale() bool { return math.Float64bits(s.Value) == StaleNaN }

func (s decodedSample) String() string {
	if s.stale() {
		return "stale"
	}
	return strconv.FormatFloat(s.Value, 'g', -1, 64)
}

// decodeRequest checks a request's headers, uncompresses its body and
// decodes the WriteRequest, checking what Prometheus checks: labels sorted
// by name, unique, non-empty, valid names; at least one sample.
func decodeRequest(t *testing.T, r *outlet.Request) []decoded {
	t.Helper()
	if r.ContentType != "application/x-protobuf" || r.Encoding != "snappy" ||
		r.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
		t.Fatalf("headers: %q %q %v", r.ContentType, r.Encoding, r.Header)
	}
	return decodeBody(t, r.Body)
}

func decodeBody(t *testing.T, body []byte) []decoded {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var out []decoded
	err = fields(raw, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return fmt.Errorf("WriteRequest field %d type %d", num, typ)
		}
		ts, err := decodeTimeSeries(v)
		if err != nil {
			return err
		}
		out = append(out, ts)
		return nil
	})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func decodeTimeSeries(b []byte) (decoded, error) {
	var d decoded
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			var l label
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if typ != protowire.BytesType || (num != 1 && num != 2) {
					return fmt.Errorf("Label field %d type %d", num, typ)
				}
				if num == 1 {
					l.name = string(v)
				} else {
					l.value = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			d.Labels = append(d.Labels, l)
		case num == 2 && typ == protowire.BytesType:
			var s decodedSample
			err := fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.Fixed64Type:
					s.Value = math.Float64frombits(x)
				case num == 2 && typ == protowire.VarintType:
					s.Ts = int64(x)
				default:
					return fmt.Errorf("Sample field %d type %d", num, typ)
				}
				return nil
			})
			if err != nil {
				return err
			}
			d.Samples = append(d.Samples, s)
		case num == 4 && typ == protowire.BytesType:
			h, err := decodeHistogram(v)
			if err != nil {
				return err
			}
			d.Hists = append(d.Hists, h)
		default:
			return fmt.Errorf("TimeSeries field %d type %d", num, typ)
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	if len(d.Samples)+len(d.Hists) == 0 {
		return d, fmt.Errorf("%s: no sample", d.id())
	}
	for i, l := range d.Labels {
		if l.value == "" || !validLabelName(l.name) {
			return d, fmt.Errorf("%s: label %q=%q", d.id(), l.name, l.value)
		}
		if i > 0 && d.Labels[i-1].name >= l.name {
			return d, fmt.Errorf("%s: labels not sorted or not unique", d.id())
		}
	}
	if !validMetricName(d.name()) {
		return d, fmt.Errorf("%s: metric name", d.id())
	}
	return d, nil
}

// fields calls f with each field of a message: bytes fields' contents in v,
// varint and fixed64 values in x.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			return fmt.Errorf("wire type %d", typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func validMetricName(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func validLabelName(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// render writes an encoded minute as text, one line per series:
// name{labels} value @ts, requests separated by a header line. Times are
// shown relative to base (ms).
func render(t *testing.T, enc outlet.Encoded, base int64) string {
	t.Helper()
	var b strings.Builder
	for i, r := range enc.Reqs {
		fmt.Fprintf(&b, "# request %d: %d points\n", i+1, r.Points)
		for _, d := range decodeRequest(t, r) {
			for _, s := range d.Samples {
				fmt.Fprintf(&b, "%s %s @%+ds\n", d.id(), s, (s.Ts-base)/1000)
			}
			for _, h := range d.Hists {
				fmt.Fprintf(&b, "%s %s @%+ds\n", d.id(), h, (h.Ts-base)/1000)
			}
		}
	}
	if enc.Skipped > 0 {
		fmt.Fprintf(&b, "# skipped %d: %s\n", enc.Skipped, enc.Note)
	}
	return b.String()
}
