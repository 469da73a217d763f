// Package remotewrite is the Prometheus remote write 1.0 outlet: a closed
// minute M of a drain becomes one or more snappy-compressed protobuf
// WriteRequests POSTed to the configured URL (Prometheus /api/v1/write,
// Mimir /api/v1/push, VictoriaMetrics /api/v1/write).
//
// # Series
//
// A drainmeter series named a.b becomes, with the names Prometheus gives
// cumulative OTLP metrics:
//
//	count    a_b_total                  the running total
//	measure  a_b{quantile="0"}          minute M's exact minimum
//	         a_b{quantile="0.5"|"0.95"|"0.99"}  minute M's nearest-rank percentiles
//	         a_b{quantile="1"}          minute M's exact maximum
//	         a_b_sum, a_b_count         running totals
//	sample   a_b                        the last value
//	unique   a_b                        the distinct count
//
// With Outlet.Histograms native (REMOTE_WRITE_HISTOGRAMS=native), a measure
// is instead
//
//	measure  a_b                        a native histogram: running bucket counts (the
//	                                    sketch's bins, schema 6 unless downscaled past
//	                                    NativeMaxBuckets), running count and sum
//	         a_b_min, a_b_max           minute M's exact minimum and maximum
//
// so that histogram_quantile aggregates across sources and dimensions,
// which quantile series never can. Prometheus stores native histograms
// from 2.40 on, with --enable-feature=native-histograms (without it, 2.42
// answers 500 "native histograms are disabled"); VictoriaMetrics 1.79
// answers 204 and drops them.
//
// Running totals come from the lane's outlet.Totals: they start when a
// series first appears and are forgotten after Config.Forget without it
// (Prometheus reads the restart as a counter reset). A count minute whose
// total is negative is kept out of its running total (counted kept_out),
// so that a counter never goes down. A count whose name
// already ends in _total gets no second suffix, as Prometheus' own OTLP
// translation does.
//
// Every sample is stamped M+60 s (the end of the minute) and carries the
// labels
//
//	__name__           the name: [a-zA-Z_:][a-zA-Z0-9_:]*, any other character
//	                   becomes _, a leading digit gets a _ prefix
//	job                the drain's name (its ID if it has none); on the built-in drain,
//	                   the sending app of the series (rollup.App)
//	source             the source, verbatim (omitted when empty)
//	drainmeter_rollup  rollup.Marker: process_type (the web rollup of web.1, web.2 …),
//	                   route (a route series), app (the whole-app rollup), dyno (any
//	                   other source) or none
//	…                  the drain's own Attributes, each key made a label name
//	                   (outlet.PromLabelName; checked never to be one of these)
//	quantile           measures' quantile series only
//	…                  one label per dimension: the key made a label name
//	                   ([a-zA-Z_][a-zA-Z0-9_]*, other characters become _, a
//	                   leading digit gets a _ prefix); a key that is one of the
//	                   labels above or starts with __ is prefixed exported_ (as
//	                   Prometheus does for scraped labels that clash); of two keys
//	                   that give the same label, the first (in key order) is kept
//
// sorted by name; labels with empty values are left out.
//
// Two drainmeter series of one kind can map to the same Prometheus series
// (a/b and a_b, say; a count hits and a count hits_total): they are merged
// into one (rollup.Series.Merge, on copies), whose running totals go on
// under one key, the one the lane's totals already have for that series if
// any. Series whose Prometheus series overlap otherwise (a sample x_sum and
// a measure x's x_sum) cannot be merged, and Prometheus refuses a request
// that holds a series twice: the first in key order is sent and the others
// are left out, counted as rejected.
//
// With Config.Hold (COUNTER_HOLD), counters — a count's _total, a measure's
// _sum and _count — are sent with their running totals in every minute for
// Hold after the last minute they were present in, and a counter's first
// sample is preceded by a 0 stamped a minute before it (the start of its
// first minute), so that increase() sees the first increment.
//
// A series present in the lane's previous minute P whose Prometheus series
// are not all in minute M gets a stale marker (NaN with bits
// 0x7ff0000000000002) for each missing one, counters and summaries
// included, so that Prometheus ends it at once rather than carrying its last
// value for five minutes. The marker is stamped at the end of the minute
// after P (M+60 s when P is M−1). After a gap longer than Prometheus' five
// minutes of lookback there are none: the series have ended already, and a
// marker that old could be refused as out of bounds, taking the whole
// request with it.
//
// Bodies are deterministic: the same drain, minute and previous totals give
// byte-identical requests, as Prometheus refuses a changed sample (a retry,
// or another dyno that rebuilds the minute, resends the very same bytes).
// A minute is split into requests of at most Config.MaxSamples samples,
// keeping a drainmeter series' samples together.
//
// # Answers
//
//	2xx                       accepted
//	5xx, 429, network error   retried with backoff, honouring Retry-After (until MaxAge)
//	401, 403                  the lane is paused until its credentials change
//	other 4xx                 dropped, counted as rejected (Prometheus answers 400 to an
//	                          out-of-order or changed sample, and rolls back the whole request)
//
// Credentials: userinfo in the URL is sent as Basic auth (never in the
// request URL), and the outlet's Headers are added to every request.
package remotewrite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// Config is the outlet's configuration.
type Config struct {
	Forget     time.Duration // a series absent this long has its running totals forgotten (default 1h)
	MaxSamples int           // samples per request at most (default 10 000)
	// Hold is how long after its last increment a counter (a count's
	// _total, a measure's _sum and _count) keeps being sent with its
	// running total, every minute the lane posts; a counter's first sample
	// is then preceded by a 0 at the end of the minute before, so that
	// increase() and rate() see its first increment. 0: neither (counters
	// are sent in the minutes they moved, then marked stale).
	Hold time.Duration
}

// DefaultConfig holds the defaults. Hold's is COUNTER_HOLD's; a zero Hold
// is kept as it is (no hold).
var DefaultConfig = Config{Forget: time.Hour, MaxSamples: 10000, Hold: time.Hour}

// StaleNaN is the bit pattern of Prometheus' stale marker.
const StaleNaN uint64 = 0x7ff0000000000002

// Quantiles are the quantiles sent for measures: 0 is the exact minimum,
// 1 the exact maximum.
var Quantiles = []float64{0, 0.5, 0.95, 0.99, 1}

// Backend is the remote write outlet.
type Backend struct {
	client *outlet.Client
	cfg    Config
}

// New returns the backend; zero fields of cfg take their defaults.
func New(client *outlet.Client, cfg Config) *Backend {
	if cfg.Forget <= 0 {
		cfg.Forget = DefaultConfig.Forget
	}
	if cfg.MaxSamples <= 0 {
		cfg.MaxSamples = DefaultConfig.MaxSamples
	}
	cfg.Forget = max(cfg.Forget, cfg.Hold) // a held counter keeps its totals
	return &Backend{client: client, cfg: cfg}
}

// The label names drainmeter sets itself.
const (
	labelName     = "__name__"
	labelJob      = "job"
	labelSource   = "source"
	labelRollup   = "drainmeter_rollup"
	labelQuantile = "quantile"
)

type label struct{ name, value string }

// drainLabels are the labels of a drain's every series: job (the drain's
// name) and the user's attributes.
type drainLabels struct {
	job   string
	attrs []label
}

// staleLookback is the longest gap (seconds, from the previous minute's
// start to this one's) after which stale markers are still sent:
// Prometheus' lookback is five minutes.
const staleLookback = 5 * 60

// promSeries is one Prometheus series with its one sample, or its one
// native histogram.
type promSeries struct {
	labels  []byte // the encoded Label fields of TimeSeries: the series' identity
	value   float64
	hist    []byte // a native histogram's Histogram fields but its timestamp; nil: a sample
	zero    bool   // a counter's first sample: a 0 a minute before it first
	zeroH   []byte // with zero, for a native histogram: the empty histogram sent then
	counter bool   // a count's _total, a measure's _sum or _count or native histogram
}

// NativeMaxBuckets is the most buckets a side of a native histogram spans
// before its running counts are downscaled (for good): at scale 6, 16
// powers of two (1 ms to 65 s), and a request of 10,000 series stays
// within a few MB.
const NativeMaxBuckets = 1024

// Encode builds minute m: its series (running totals advanced from prev)
// and stale markers for what prev's last minute had and m has not.
func (b *Backend) Encode(d *outlet.Destination, o *outlet.Outlet, m *rollup.Minute, prev *outlet.Totals) (outlet.Encoded, error) {
	native := o != nil && o.Native()
	m = merged(m, prev)
	var next *outlet.Totals
	if native {
		next = prev.AdvanceBuckets(m, int64(b.cfg.Forget/time.Second), NativeMaxBuckets)
	} else {
		next = prev.Advance(m, int64(b.cfg.Forget/time.Second))
		for _, r := range next.Series { // copies: running buckets of a native past never come back
			r.Hist = nil
		}
	}
	next.Trim(outlet.DefaultMaxTotalsBytes, m.Start)
	job := drainLabels{job: d.Name}
	if job.job == "" {
		job.job = d.ID
	}
	for _, a := range d.Attributes { // checked: none is one of drainmeter's labels
		if a.Value != "" {
			job.attrs = append(job.attrs, label{outlet.PromLabelName(a.Key), strings.ToValidUTF8(a.Value, "\uFFFD")})
		}
	}
	enc := outlet.Encoded{Totals: next}
	hold := int64(b.cfg.Hold / time.Second)
	taken := map[string]bool{} // identities already in the minute
	var groups [][]promSeries  // one per drainmeter series, in key order
	enc.KeptOut = next.KeptOut // a count minute with a negative total: name_total holds
	for _, s := range m.Sorted() {
		r := next.Series[s.Key()]
		g := seriesOf(job, s, r, false, native)
		if hold > 0 && r != nil && r.Start == m.Start {
			for i := range g {
				g[i].zero = g[i].counter
				if g[i].zero && g[i].hist != nil {
					// An empty histogram of the same schema a minute
					// before: rate() and increase() see the first minute.
					g[i].zeroH = appendHistogram(nil, &outlet.Hist{Scale: r.Hist.Scale}, 0)
				}
			}
		}
		if i := slices.IndexFunc(g, func(p promSeries) bool { return taken[string(p.labels)] }); i >= 0 {
			if enc.Skipped == 0 {
				enc.Note = fmt.Sprintf("series %q (source %q) maps to a Prometheus series already sent for another (%s); such series are left out",
					s.Name, s.Source, describe(g[i].labels))
			}
			enc.Skipped += len(g)
			continue
		}
		for _, p := range g {
			taken[string(p.labels)] = true
		}
		groups = append(groups, g)
	}
	if hold > 0 {
		// Counters that did not move in minute m, held: their running
		// totals again.
		var keys []string
		for k, r := range next.Series {
			if r.Last < m.Start && held(r, m.Start, hold) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			r := next.Series[k]
			var g []promSeries
			for _, p := range seriesOf(job, seriesOfKey(k, r), r, false, native) {
				if p.counter && !taken[string(p.labels)] {
					taken[string(p.labels)] = true
					g = append(g, p)
				}
			}
			if len(g) > 0 {
				groups = append(groups, g)
			}
		}
	}
	live := len(groups) // the groups after these are stale markers
	staleAt := (m.Start + 60) * 1000
	if prev != nil && m.Start-prev.Minute <= staleLookback {
		// A series ends at the end of the minute after its last: when the
		// drain was quiet in between, that is before minute m's end.
		staleAt = (prev.Minute + 120) * 1000
		keys := make([]string, 0, len(prev.Series))
		for k, r := range prev.Series {
			if (r.Last == prev.Minute || held(r, prev.Minute, hold)) && prev.Minute < m.Start {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			s := seriesOfKey(k, prev.Series[k])
			var g []promSeries
			for _, p := range seriesOf(job, s, prev.Series[k], true, native) {
				if !taken[string(p.labels)] {
					taken[string(p.labels)] = true
					g = append(g, p)
				}
			}
			if len(g) > 0 {
				groups = append(groups, g)
			}
		}
	}
	enc.Reqs = b.requests(groups, live, (m.Start+60)*1000, staleAt)
	return enc, nil
}

// held reports whether the counters of a series with running totals r are
// sent in the minute starting at minute: counts and measures (their _sum
// and _count), for hold seconds after their last minute.
func held(r *outlet.Running, minute, hold int64) bool {
	return hold > 0 && (r.Kind == parse.Count || r.Kind == parse.Measure) && r.Last <= minute && minute-r.Last <= hold
}

// identity is what makes two drainmeter series of one kind the same
// Prometheus series: the kind, the process-type flag, the metric name as
// sent, the source, and the dimensions as labels.
func identity(s *rollup.Series) string {
	name := MetricName(s.Name)
	source := s.Source
	if !utf8.ValidString(source) { // as baseLabels sends it
		source = strings.ToValidUTF8(source, "\uFFFD")
	}
	if s.Kind == parse.Count && !strings.HasSuffix(name, "_total") {
		name += "_total"
	}
	var b strings.Builder
	b.Grow(len(name) + len(source) + len(s.Dims) + 32)
	b.WriteByte(byte(s.Kind))
	b.WriteString(rollup.Marker(s.Source, s.Dims, s.ProcessType))
	b.WriteByte(0)
	b.WriteString(strings.ToValidUTF8(rollup.App(s.Dims), "\uFFFD"))
	b.WriteByte(0)
	b.WriteString(name)
	b.WriteByte(0)
	b.WriteString(source)
	for _, l := range dimLabels(s.Dims) {
		b.WriteByte(0)
		b.WriteString(l.name)
		b.WriteByte('=')
		b.WriteString(strings.ToValidUTF8(l.value, "\uFFFD"))
	}
	return b.String()
}

// merged returns m with the series that are one Prometheus series merged
// into one (on copies: m is not modified). The merged series is kept under
// the key its running totals already have in prev: a member's own key if
// prev has it (the first such in key order), else prev's key of a series of
// the same identity absent from m, else its first member's key. Without
// anything to merge or rename it returns m itself.
func merged(m *rollup.Minute, prev *outlet.Totals) *rollup.Minute {
	type group struct {
		s        *rollup.Series
		copied   bool
		key      string
		fromPrev bool // key is one prev has
	}
	inPrev := func(k string) bool {
		if prev == nil {
			return false
		}
		_, ok := prev.Series[k]
		return ok
	}
	sorted := m.Sorted()
	ids := make([]string, len(sorted))
	groups := make(map[string]*group, len(sorted))
	for i, s := range sorted {
		ids[i] = identity(s)
		g := groups[ids[i]]
		if g == nil {
			groups[ids[i]] = &group{s: s, key: s.Key(), fromPrev: inPrev(s.Key())}
			continue
		}
		if !g.copied {
			g.s, g.copied = g.s.Clone(), true
		}
		_ = g.s.Merge(s) // the same kind: sketches of one mapping always merge
		if !g.fromPrev && inPrev(s.Key()) {
			g.key, g.fromPrev = s.Key(), true
		}
	}
	// prev's keys of series absent from m, by identity (the first in key order).
	if prev != nil {
		var gone []string
		for k := range prev.Series {
			if m.Series[k] == nil {
				gone = append(gone, k)
			}
		}
		slices.Sort(gone)
		for _, k := range gone {
			if g := groups[identity(seriesOfKey(k, prev.Series[k]))]; g != nil && !g.fromPrev {
				g.key, g.fromPrev = k, true
			}
		}
	}
	same := len(groups) == len(sorted)
	for i := 0; same && i < len(sorted); i++ {
		same = groups[ids[i]].key == sorted[i].Key()
	}
	if same {
		return m
	}
	out := &rollup.Minute{Drain: m.Drain, Start: m.Start, Series: make(map[string]*rollup.Series, len(groups))}
	for _, g := range groups {
		if g.key != g.s.Key() {
			if !g.copied {
				c := *g.s // a shallow copy that only changes the names
				g.s = &c
			}
			name, rest, _ := strings.Cut(g.key, "\x00")
			source, dims, _ := strings.Cut(rest, "\x00")
			g.s.Name, g.s.Source, g.s.Dims = name, source, dims
		}
		out.Series[g.key] = g.s
	}
	return out
}

// requests packs groups into requests of at most MaxSamples samples,
// starting a new request rather than splitting a group (unless the group
// alone is larger). Samples are stamped ts; groups from index stale on are
// stale markers, stamped staleTs and not counted as points.
func (b *Backend) requests(groups [][]promSeries, stale int, ts, staleTs int64) []*outlet.Request {
	var reqs []*outlet.Request
	var body []byte
	n, points := 0, 0
	flush := func() {
		if n == 0 {
			return
		}
		reqs = append(reqs, &outlet.Request{
			Body:        snappy.Encode(nil, body),
			ContentType: "application/x-protobuf",
			Encoding:    "snappy",
			Header:      http.Header{"X-Prometheus-Remote-Write-Version": {"0.1.0"}},
			Points:      points,
		})
		body, n, points = nil, 0, 0
	}
	for i, g := range groups {
		if n > 0 && n+len(g) > b.cfg.MaxSamples {
			flush()
		}
		at := ts
		if i >= stale {
			at = staleTs
		}
		for _, p := range g {
			body = appendTimeSeries(body, p, at)
			n++
			if i < stale {
				points++
				if p.zero {
					points++
				}
			}
			if n >= b.cfg.MaxSamples {
				flush()
			}
		}
	}
	flush()
	return reqs
}

// seriesOf returns the Prometheus series of drainmeter series s, whose
// running totals (after minute M) are r. With stale, every value is a
// stale marker and only s's identity (kind, name, source, dims, process
// type) is used. With native, a measure is a native histogram (its running
// buckets, count and sum) and gauges NAME_min and NAME_max of the minute.
func seriesOf(job drainLabels, s *rollup.Series, r *outlet.Running, stale, native bool) []promSeries {
	base := baseLabels(job, s)
	name := MetricName(s.Name)
	one := func(name string, v float64, extra ...label) promSeries {
		ls := append(append(append(make([]label, 0, len(base)+2), base...), label{labelName, name}), extra...)
		slices.SortFunc(ls, func(a, b label) int { return strings.Compare(a.name, b.name) })
		if stale {
			v = math.Float64frombits(StaleNaN)
		}
		size := 0
		for _, l := range ls {
			size += 8 + len(l.name) + len(l.value)
		}
		return promSeries{labels: appendLabels(make([]byte, 0, size), ls), value: v}
	}
	if r == nil { // cannot happen: Advance has every series of the minute
		r = &outlet.Running{}
	}
	switch {
	case s.Kind == parse.Count:
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
		p := one(name, r.Sum)
		p.counter = true
		return []promSeries{p}
	case s.Kind == parse.Measure && native:
		h := one(name, 0)
		switch {
		case stale:
			h.hist = staleHistogram
		case r.Hist != nil:
			h.hist = appendHistogram(nil, r.Hist, r.Sum)
		default: // cannot happen: AdvanceBuckets gives every measure buckets
			h.hist = appendHistogram(nil, &outlet.Hist{Scale: rollup.Scale}, 0)
		}
		h.counter = true // running bucket counts: held like a counter
		return []promSeries{h, one(name+"_min", s.Min), one(name+"_max", s.Max)}
	case s.Kind == parse.Measure:
		out := make([]promSeries, 0, len(Quantiles)+2)
		for _, q := range Quantiles {
			if !stale && s.Sketch == nil {
				break // a held measure (rebuilt from its key): its counters only
			}
			var v float64
			if !stale {
				v = s.Quantile(q)
			}
			out = append(out, one(name, v, label{labelQuantile, strconv.FormatFloat(q, 'g', -1, 64)}))
		}
		sum, count := one(name+"_sum", r.Sum), one(name+"_count", float64(r.Count))
		sum.counter, count.counter = true, true
		return append(out, sum, count)
	default: // sample, unique
		var v float64
		if !stale {
			v = s.Summarize(nil).Value
		}
		return []promSeries{one(name, v)}
	}
}

// seriesOfKey rebuilds the identity of a series from its key in
// rollup.Minute.Series (name NUL source [NUL dims]) and its running state.
func seriesOfKey(key string, r *outlet.Running) *rollup.Series {
	name, rest, _ := strings.Cut(key, "\x00")
	source, dims, _ := strings.Cut(rest, "\x00")
	return &rollup.Series{Kind: r.Kind, Name: name, Source: source, Dims: dims, ProcessType: r.ProcessType}
}

// baseLabels returns the labels every Prometheus series of s has, but
// __name__ (and quantile), unsorted.
func baseLabels(dl drainLabels, s *rollup.Series) []label {
	job := dl.job
	if app := rollup.App(s.Dims); app != "" {
		job = app // a sending app of the built-in drain is its own job
	}
	ls := append(make([]label, 0, 4+len(dl.attrs)), label{labelJob, job}, label{labelRollup, rollup.Marker(s.Source, s.Dims, s.ProcessType)})
	if s.Source != "" {
		ls = append(ls, label{labelSource, s.Source})
	}
	for _, l := range dimLabels(s.Dims) {
		if !slices.ContainsFunc(dl.attrs, func(a label) bool { return a.name == l.name }) {
			ls = append(ls, l)
		}
	}
	ls = append(ls, dl.attrs...)
	for i := range ls {
		if !utf8.ValidString(ls[i].value) { // Prometheus drops a series whose label is not UTF-8
			ls[i].value = strings.ToValidUTF8(ls[i].value, "\uFFFD")
		}
	}
	for i := range ls {
		if ls[i].value == "" { // job, at worst
			ls = slices.Delete(ls, i, i+1)
			break
		}
	}
	return ls
}

// dimLabels returns the labels of dimensions dims, in key order: each key
// made a label name; a key that is one of drainmeter's labels or starts
// with __ prefixed exported_; of two keys that give the same label, the
// first; empty values left out.
func dimLabels(dims string) []label {
	var ls []label
	rollup.EachDim(dims, func(k, v string) {
		if v == "" || !rollup.Labelled(k) {
			return
		}
		n := LabelName(k)
		switch {
		case n == labelName, n == labelJob, n == labelSource, n == labelRollup, n == labelQuantile, strings.HasPrefix(n, "__"):
			n = "exported_" + n
		}
		if slices.ContainsFunc(ls, func(l label) bool { return l.name == n }) {
			return
		}
		ls = append(ls, label{n, v})
	})
	return ls
}

// MetricName makes s a valid Prometheus metric name (outlet.PromMetricName).
func MetricName(s string) string { return outlet.PromMetricName(s) }

// LabelName makes s a valid Prometheus label name (outlet.PromLabelName).
func LabelName(s string) string { return outlet.PromLabelName(s) }

// The wire format (remote write 1.0):
//
//	WriteRequest{1: repeated TimeSeries}
//	TimeSeries{1: repeated Label, 2: repeated Sample, 4: repeated Histogram}
//	Label{1: string name, 2: string value}
//	Sample{1: double value, 2: int64 timestamp_ms}
//	Histogram{1: uint64 count_int, 3: double sum, 4: sint32 schema, 5: double zero_threshold,
//	          6: uint64 zero_count_int, 8: repeated BucketSpan negative_spans,
//	          9: repeated sint64 negative_deltas (packed), 11: positive_spans, 12: positive_deltas,
//	          14: ResetHint reset_hint, 15: int64 timestamp_ms}
//	BucketSpan{1: sint32 offset, 2: uint32 length}
//
// A native histogram's bucket i of schema s holds (2^((i-1)·2^-s), 2^(i·2^-s)]
// (of |v| for the negative side): the sketch's (and OTLP's) bucket i-1.
// The first span's offset is its first index, each next one's the gap
// after the span before; deltas are each bucket's count less the bucket
// before it (0 before the first), across spans.

// staleHistogram is a native histogram's stale marker: its sum is the stale
// NaN (Prometheus reads nothing else of it).
var staleHistogram = func() []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 0)
	b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, StaleNaN)
}()

// appendHistogram appends the fields of a native Histogram of running
// buckets h and running sum (all but its timestamp). Its count is the
// buckets' total, so that the two always agree.
func appendHistogram(b []byte, h *outlet.Hist, sum float64) []byte {
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, h.Total())
	b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(sum))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(h.Scale)))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, h.Zero)
	b = appendBuckets(b, 8, 9, h.Neg)
	return appendBuckets(b, 11, 12, h.Pos)
}

// appendBuckets appends one side of a native histogram: its spans (field
// spans) and its packed deltas (field deltas).
func appendBuckets(b []byte, spans, deltas protowire.Number, side map[int]uint64) []byte {
	if len(side) == 0 {
		return b
	}
	idx := make([]int, 0, len(side))
	for i, c := range side {
		if c > 0 {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	type span struct{ offset, length int }
	var ss []span
	for k, i := range idx {
		switch {
		case k == 0:
			ss = append(ss, span{i + 1, 1}) // Prometheus' index is the sketch's + 1
		case i == idx[k-1]+1:
			ss[len(ss)-1].length++
		default:
			ss = append(ss, span{i - idx[k-1] - 1, 1})
		}
	}
	for _, s := range ss {
		size := protowire.SizeTag(1) + protowire.SizeVarint(protowire.EncodeZigZag(int64(s.offset))) +
			protowire.SizeTag(2) + protowire.SizeVarint(uint64(s.length))
		b = protowire.AppendTag(b, spans, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(s.offset)))
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s.length))
	}
	var packed []byte
	prev := int64(0)
	for _, i := range idx {
		c := int64(side[i])
		packed = protowire.AppendVarint(packed, protowire.EncodeZigZag(c-prev))
		prev = c
	}
	b = protowire.AppendTag(b, deltas, protowire.BytesType)
	return protowire.AppendBytes(b, packed)
}

// appendLabels appends the Label fields (TimeSeries field 1) of ls.
func appendLabels(b []byte, ls []label) []byte {
	for _, l := range ls {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(
			protowire.SizeTag(1)+protowire.SizeBytes(len(l.name))+protowire.SizeTag(2)+protowire.SizeBytes(len(l.value))))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, l.name)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, l.value)
	}
	return b
}

// appendTimeSeries appends p as a WriteRequest field 1: its labels and one
// sample at ts (ms), or its native histogram at ts.
func appendTimeSeries(b []byte, p promSeries, ts int64) []byte {
	if p.hist != nil {
		hist := len(p.hist) + protowire.SizeTag(15) + protowire.SizeVarint(uint64(ts))
		size := len(p.labels) + protowire.SizeTag(4) + protowire.SizeBytes(hist)
		zeroTs := ts - 60_000
		zero := len(p.zeroH) + protowire.SizeTag(15) + protowire.SizeVarint(uint64(zeroTs))
		if p.zero {
			size += protowire.SizeTag(4) + protowire.SizeBytes(zero)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = append(b, p.labels...)
		if p.zero { // histograms in time order
			b = appendHistogramAt(b, zero, p.zeroH, zeroTs)
		}
		return appendHistogramAt(b, hist, p.hist, ts)
	}
	sample := protowire.SizeTag(1) + protowire.SizeFixed64() + protowire.SizeTag(2) + protowire.SizeVarint(uint64(ts))
	size := len(p.labels) + protowire.SizeTag(2) + protowire.SizeBytes(sample)
	zeroTs := ts - 60_000
	zeroSample := protowire.SizeTag(1) + protowire.SizeFixed64() + protowire.SizeTag(2) + protowire.SizeVarint(uint64(zeroTs))
	if p.zero {
		size += protowire.SizeTag(2) + protowire.SizeBytes(zeroSample)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = append(b, p.labels...)
	if p.zero { // samples in time order
		b = appendSample(b, zeroSample, 0, zeroTs)
	}
	return appendSample(b, sample, p.value, ts)
}

// appendHistogramAt appends a TimeSeries field 4 of size bytes: the
// Histogram fields fields and timestamp ts.
func appendHistogramAt(b []byte, size int, fields []byte, ts int64) []byte {
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = append(b, fields...)
	b = protowire.AppendTag(b, 15, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(ts))
}

// appendSample appends a TimeSeries field 2 of size bytes.
func appendSample(b []byte, size int, v float64, ts int64) []byte {
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(v))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(ts))
}

// describe renders encoded labels as name{label="value",…} for a message.
func describe(labels []byte) string {
	var name string
	var rest []string
	for k, v := range labelsOf(labels) {
		if k == labelName {
			name = v
		} else {
			rest = append(rest, k+"="+strconv.Quote(v))
		}
	}
	return name + "{" + strings.Join(rest, ",") + "}"
}

// Send posts r to the outlet's URL with its current credentials.
func (b *Backend) Send(ctx context.Context, o *outlet.Outlet, r *outlet.Request) outlet.Result {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return outlet.Result{Outcome: outlet.Permanent, Message: "invalid remote write URL " + outlet.RedactURL(o.URL)}
	}
	user := u.User
	u.User = nil
	resp, err := b.client.Post(ctx, u.String(), r, func(req *http.Request) {
		if user != nil {
			pass, _ := user.Password()
			req.SetBasicAuth(user.Username(), pass)
		}
		for _, h := range o.Headers {
			req.Header.Set(h.Name, h.Value)
		}
	})
	if err != nil {
		return outlet.Result{Outcome: outlet.Retry, Message: err.Error()}
	}
	return outlet.Result{Outcome: Outcome(resp.Status), Status: resp.Status, RetryAfter: resp.RetryAfter,
		Message: outlet.Excerpt(resp.Body)}
}

// Outcome says what an answer's status means.
func Outcome(status int) outlet.Outcome {
	switch {
	case status >= 200 && status < 300:
		return outlet.Accepted
	case status == http.StatusTooManyRequests || status >= 500:
		return outlet.Retry
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return outlet.Pause
	default:
		return outlet.Permanent
	}
}
