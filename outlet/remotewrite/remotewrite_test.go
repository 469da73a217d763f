package remotewrite

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

var update = flag.Bool("update", false, "rewrite golden files")

// base is the start of the fixed minutes: 2025-01-01T00:00:00Z.
var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var drain = &outlet.Destination{ID: "d1", Name: "myapp"}

func minuteOf(t testing.TB, drain string, start time.Time, ms []parse.Measurement) *rollup.Minute {
	t.Helper()
	return outlettest.MinuteOf(t, drain, start, ms)
}

var meas = outlettest.Meas

var withType = outlettest.WithType

func withDims(m parse.Measurement, kv ...string) parse.Measurement {
	var d []byte
	for i := 0; i < len(kv); i += 2 {
		d = rollup.AppendDim(d, kv[i], kv[i+1])
	}
	m.Dims = d
	return m
}

func uniques(name, src string, at time.Time, members ...string) []parse.Measurement {
	var out []parse.Measurement
	for _, mb := range members {
		m := meas(parse.Unique, name, src, 1, at)
		m.Member = []byte(mb)
		out = append(out, m)
	}
	return out
}

// fixedMinutes are two consecutive minutes covering every kind and label
// rule; the second lacks some series of the first (stale markers).
func fixedMinutes(t *testing.T) (*rollup.Minute, *rollup.Minute) {
	m0, m1 := base, base.Add(time.Minute)
	first := []parse.Measurement{
		withType(meas(parse.Count, "jobs.done", "worker.1", 10, m0), "worker"),
		meas(parse.Sample, "gone.gauge", "web.1", 5, m0),
		meas(parse.Measure, "gone.measure", "web.1", 2, m0),
		meas(parse.Count, "gone.count", "", 1, m0),
		meas(parse.Sample, "memory_rss", "web.1", 20, m0),
	}
	second := []parse.Measurement{
		withType(meas(parse.Count, "jobs.done", "worker.1", 3, m1), "worker"),
		withType(meas(parse.Count, "jobs.done", "worker.1", 4, m1), "worker"),
		meas(parse.Count, "requests_total", "router", 2, m1),
		meas(parse.Sample, "memory_rss", "web.1", 21.22, m1.Add(20*time.Second)),
		meas(parse.Sample, "memory_rss", "web.1", 19, m1.Add(10*time.Second)), // older: not the last value
		meas(parse.Sample, "queue depth", "", 7, m1),
		meas(parse.Sample, "5xx.rate", "web.1", 0.5, m1),
		meas(parse.Sample, "a/b", "web.1", 1, m1), // a_b
		meas(parse.Sample, "a_b", "web.1", 2, m1), // a_b again: merged (the same time: the later in key order wins)
		withDims(meas(parse.Sample, "weird", "web.1", 3, m1),
			"9lives", "z", "__name__", "y", "empty", "", "http.method", "GET", "job", "x"),
	}
	for i := 1; i <= 10; i++ {
		second = append(second, withDims(withType(meas(parse.Measure, "db.latency", "web.1", float64(i*i), m1.Add(time.Duration(i)*time.Second)), "web"), "route", "/users"))
	}
	second = append(second, uniques("users", "web.1", m1, "a", "b", "c")...)
	return minuteOf(t, "d1", m0, first), minuteOf(t, "d1", m1, second)
}

func newBackend(cfg Config) *Backend {
	return New(outlet.NewClient("drainmeter/test", 5*time.Second, time.Now), cfg)
}

// TestGolden encodes two fixed minutes and compares their decoded requests
// with testdata/minutes.golden (measures as summaries) and
// testdata/native.golden (as native histograms).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		path  string
		hists outlet.Histograms
	}{
		{"testdata/minutes.golden", ""},
		{"testdata/native.golden", outlet.NativeHistograms},
	} {
		b := newBackend(Config{})
		o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: "http://example.com/api/v1/write", Histograms: tc.hists}
		first, second := fixedMinutes(t)
		enc1, err := b.Encode(drain, o, first, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc2, err := b.Encode(drain, o, second, enc1.Totals)
		if err != nil {
			t.Fatal(err)
		}
		got := "## minute 1 (times from its start)\n" + render(t, enc1, base.UnixMilli()) +
			"\n## minute 2 (times from its start), after minute 1\n" + render(t, enc2, base.Add(time.Minute).UnixMilli())
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tc.path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("requests differ from %s (go test -update to accept):\n%s", tc.path, got)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ in, metric, label string }{
		{"a.b", "a_b", "a_b"},
		{"a_b", "a_b", "a_b"},
		{"a:b", "a:b", "a_b"},
		{"router.service.ms", "router_service_ms", "router_service_ms"},
		{"queue depth", "queue_depth", "queue_depth"},
		{"5xx", "_5xx", "_5xx"},
		{"0", "_0", "_0"},
		{"_x9", "_x9", "_x9"},
		{"Abc.DEF-ghi/jkl", "Abc_DEF_ghi_jkl", "Abc_DEF_ghi_jkl"},
		{"héllo", "h_llo", "h_llo"}, // one rune, one _
		{"a\xffb", "a_b", "a_b"},    // an invalid byte, one _
		{"日本", "__", "__"},          // two runes
		{"", "_", "_"},              // cannot happen (names are never empty); still valid
		{"__name__", "__name__", "__name__"},
		{":x", ":x", "_x"},
	} {
		if got := MetricName(tc.in); got != tc.metric || !validMetricName(got) {
			t.Errorf("MetricName(%q) = %q, want %q", tc.in, got, tc.metric)
		}
		if got := LabelName(tc.in); got != tc.label || !validLabelName(got) {
			t.Errorf("LabelName(%q) = %q, want %q", tc.in, got, tc.label)
		}
	}
}

// TestLabels checks whole label sets, one series at a time.
func TestLabels(t *testing.T) {
	at := base.Add(5 * time.Second)
	for _, tc := range []struct {
		name  string
		drain outlet.Destination
		m     []parse.Measurement
		want  []string
	}{
		{"dyno source", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{meas(parse.Sample, "mem", "web.1", 1, at)},
			[]string{`mem{drainmeter_rollup="dyno",job="app",source="web.1"}`}},
		{"no source, no name: job is the drain's ID", outlet.Destination{ID: "d1"},
			[]parse.Measurement{meas(parse.Sample, "mem", "", 1, at)},
			[]string{`mem{drainmeter_rollup="none",job="d1"}`}},
		{"process-type rollup", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{withType(meas(parse.Count, "hits", "web.2", 1, at), "web")},
			[]string{`hits_total{drainmeter_rollup="process_type",job="app",source="web"}`,
				`hits_total{drainmeter_rollup="dyno",job="app",source="web.2"}`}},
		{"verbatim source", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{meas(parse.Sample, "db.size", `HEROKU_POSTGRESQL "RED"`, 1, at)},
			[]string{`db_size{drainmeter_rollup="dyno",job="app",source="HEROKU_POSTGRESQL \"RED\""}`}},
		{"a source that is not UTF-8 made valid (two such: one series)", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{meas(parse.Sample, "mem", "w\xffb", 1, at), meas(parse.Sample, "mem", "w\xfeb", 2, at)},
			[]string{`mem{drainmeter_rollup="dyno",job="app",source="w�b"}`}},
		{"dims: sanitized, clashing names exported_, empty values left out", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{withDims(meas(parse.Sample, "x", "web.1", 1, at),
				"__x", "1", "drainmeter_rollup", "2", "quantile", "3", "route", "", "source", "4", "status.code", "200")},
			[]string{`x{drainmeter_rollup="dyno",exported___x="1",exported_drainmeter_rollup="2",exported_quantile="3",exported_source="4",job="app",source="web.1",status_code="200"}`}},
		{"dims that give the same label: the first kept", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{withDims(meas(parse.Sample, "x", "", 1, at), "a-b", "1", "a.b", "2", "a_b", "3")},
			[]string{`x{a_b="1",drainmeter_rollup="none",job="app"}`}},
		{"measure", outlet.Destination{ID: "d1", Name: "app"},
			[]parse.Measurement{meas(parse.Measure, "lat", "", 4, at), meas(parse.Measure, "lat", "", 2, at)},
			[]string{
				`lat{drainmeter_rollup="none",job="app",quantile="0"}`,
				`lat{drainmeter_rollup="none",job="app",quantile="0.5"}`,
				`lat{drainmeter_rollup="none",job="app",quantile="0.95"}`,
				`lat{drainmeter_rollup="none",job="app",quantile="0.99"}`,
				`lat{drainmeter_rollup="none",job="app",quantile="1"}`,
				`lat_sum{drainmeter_rollup="none",job="app"}`,
				`lat_count{drainmeter_rollup="none",job="app"}`}},
		{"unique", outlet.Destination{ID: "d1", Name: "app"},
			uniques("users.active", "web.1", at, "u1", "u2"),
			[]string{`users_active{drainmeter_rollup="dyno",job="app",source="web.1"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := newBackend(Config{}).Encode(&tc.drain, nil, minuteOf(t, tc.drain.ID, base, tc.m), nil)
			if err != nil {
				t.Fatal(err)
			}
			if enc.Skipped != 0 {
				t.Errorf("%d series left out (%s): they should merge", enc.Skipped, enc.Note)
			}
			var got []string
			for _, r := range enc.Reqs {
				for _, d := range decodeRequest(t, r) {
					got = append(got, d.id())
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDeterministic: the same drain, minute and previous totals give
// byte-identical requests, even when the minute is rebuilt (other map
// orders) and the totals went through their binary encoding, as on
// another dyno.
func TestDeterministic(t *testing.T) {
	b := newBackend(Config{MaxSamples: 20})
	first, second := fixedMinutes(t)
	enc1, err := b.Encode(drain, nil, first, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := outlet.DecodeTotals(enc1.Totals.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.Encode(drain, nil, second, enc1.Totals)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, again := fixedMinutes(t)
		c, err := b.Encode(drain, nil, again, prev)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Reqs) != len(c.Reqs) || len(a.Reqs) < 2 {
			t.Fatalf("%d and %d requests", len(a.Reqs), len(c.Reqs))
		}
		for i := range a.Reqs {
			if !bytes.Equal(a.Reqs[i].Body, c.Reqs[i].Body) || a.Reqs[i].Points != c.Reqs[i].Points {
				t.Fatalf("request %d differs", i)
			}
		}
	}
	if !bytes.Equal(a.Totals.AppendBinary(nil), newTotals(t, b, second, prev).AppendBinary(nil)) {
		t.Error("totals differ")
	}
}

func newTotals(t *testing.T, b *Backend, m *rollup.Minute, prev *outlet.Totals) *outlet.Totals {
	t.Helper()
	enc, err := b.Encode(drain, nil, m, prev)
	if err != nil {
		t.Fatal(err)
	}
	return enc.Totals
}

// all decodes every request of enc into id → sample.
func all(t *testing.T, enc outlet.Encoded) map[string]decodedSample {
	t.Helper()
	out := map[string]decodedSample{}
	for _, r := range enc.Reqs {
		for _, d := range decodeRequest(t, r) {
			if _, dup := out[d.id()]; dup {
				t.Fatalf("%s twice in a minute", d.id())
			}
			if len(d.Samples) != 1 {
				t.Fatalf("%s: %d samples", d.id(), len(d.Samples))
			}
			out[d.id()] = d.Samples[0]
		}
	}
	return out
}

func TestRunningTotals(t *testing.T) {
	b := newBackend(Config{Forget: 3 * time.Minute})
	var prev *outlet.Totals
	var total, sum float64
	var count int
	for i := range 4 {
		start := base.Add(time.Duration(i) * time.Minute)
		ms := []parse.Measurement{meas(parse.Count, "c", "", float64(i+1), start)}
		for v := range i + 1 {
			ms = append(ms, meas(parse.Measure, "m", "", float64(v), start))
		}
		enc, err := b.Encode(drain, nil, minuteOf(t, "d1", start, ms), prev)
		if err != nil {
			t.Fatal(err)
		}
		total += float64(i + 1)
		sum += float64(i * (i + 1) / 2)
		count += i + 1
		got := all(t, enc)
		want := map[string]float64{
			`c_total{drainmeter_rollup="none",job="myapp"}`:           total,
			`m_sum{drainmeter_rollup="none",job="myapp"}`:             sum,
			`m_count{drainmeter_rollup="none",job="myapp"}`:           float64(count),
			`m{drainmeter_rollup="none",job="myapp",quantile="1"}`:    float64(i),
			`m{drainmeter_rollup="none",job="myapp",quantile="0"}`:    0,
			`m{drainmeter_rollup="none",job="myapp",quantile="0.5"}`:  got[`m{drainmeter_rollup="none",job="myapp",quantile="0.5"}`].Value,
			`m{drainmeter_rollup="none",job="myapp",quantile="0.95"}`: got[`m{drainmeter_rollup="none",job="myapp",quantile="0.95"}`].Value,
			`m{drainmeter_rollup="none",job="myapp",quantile="0.99"}`: got[`m{drainmeter_rollup="none",job="myapp",quantile="0.99"}`].Value,
		}
		if len(got) != len(want) {
			t.Fatalf("minute %d: %v", i, got)
		}
		for id, v := range want {
			if s, ok := got[id]; !ok || s.Value != v || s.Ts != start.Add(time.Minute).UnixMilli() {
				t.Errorf("minute %d: %s = %v, want %v at %d", i, id, s, v, start.Add(time.Minute).UnixMilli())
			}
		}
		prev = enc.Totals
	}
	// Absent longer than Forget: the totals start again.
	start := base.Add(8 * time.Minute)
	enc, err := b.Encode(drain, nil, minuteOf(t, "d1", start, []parse.Measurement{meas(parse.Count, "c", "", 5, start)}), prev)
	if err != nil {
		t.Fatal(err)
	}
	if got := all(t, enc)[`c_total{drainmeter_rollup="none",job="myapp"}`]; got.Value != 5 {
		t.Errorf("after a long absence: %v", got)
	}
}

// TestStaleMarkers: every Prometheus series of a drainmeter series present
// in the lane's previous minute and gone in this one gets a stale marker,
// process-type labels included (through the totals' binary encoding), and
// only once.
func TestStaleMarkers(t *testing.T) {
	b := newBackend(Config{})
	m0, m1, m2 := base, base.Add(time.Minute), base.Add(2*time.Minute)
	first := minuteOf(t, "d1", m0, []parse.Measurement{
		meas(parse.Sample, "g", "web.1", 1, m0),
		withType(meas(parse.Count, "c", "web.1", 1, m0), "web"),
		meas(parse.Measure, "m", "", 1, m0),
		meas(parse.Sample, "kept", "web.1", 1, m0),
		meas(parse.Sample, "a.b", "web.1", 1, m0), // a_b
		meas(parse.Sample, "x", "web.1", 1, m0),   // a sample, then a count: x, then x_total
	})
	second := minuteOf(t, "d1", m1, []parse.Measurement{
		meas(parse.Sample, "kept", "web.1", 2, m1),
		meas(parse.Sample, "a_b", "web.1", 2, m1), // the same Prometheus series as a.b: no marker
		meas(parse.Count, "x", "web.1", 1, m1),
	})
	third := minuteOf(t, "d1", m2, []parse.Measurement{meas(parse.Sample, "kept", "web.1", 3, m2)})

	enc1, err := b.Encode(drain, nil, first, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := outlet.DecodeTotals(enc1.Totals.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := b.Encode(drain, nil, second, prev)
	if err != nil {
		t.Fatal(err)
	}
	got := all(t, enc2)
	var stale []string
	for id, s := range got {
		if s.stale() {
			stale = append(stale, id)
			if s.Ts != m1.Add(time.Minute).UnixMilli() {
				t.Errorf("%s stamped %d", id, s.Ts)
			}
		} else if math.IsNaN(s.Value) {
			t.Errorf("%s: a NaN that is not a stale marker", id)
		}
	}
	slices.Sort(stale)
	want := []string{
		`c_total{drainmeter_rollup="dyno",job="myapp",source="web.1"}`,
		`c_total{drainmeter_rollup="process_type",job="myapp",source="web"}`,
		`g{drainmeter_rollup="dyno",job="myapp",source="web.1"}`,
		`m_count{drainmeter_rollup="none",job="myapp"}`,
		`m_sum{drainmeter_rollup="none",job="myapp"}`,
		`m{drainmeter_rollup="none",job="myapp",quantile="0"}`,
		`m{drainmeter_rollup="none",job="myapp",quantile="0.5"}`,
		`m{drainmeter_rollup="none",job="myapp",quantile="0.95"}`,
		`m{drainmeter_rollup="none",job="myapp",quantile="0.99"}`,
		`m{drainmeter_rollup="none",job="myapp",quantile="1"}`,
		`x{drainmeter_rollup="dyno",job="myapp",source="web.1"}`,
	}
	if !slices.Equal(stale, want) {
		t.Errorf("stale markers\n%s\nwant\n%s", strings.Join(stale, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != len(want)+3 {
		t.Errorf("%d series: %v", len(got), got)
	}
	points := 0
	for _, r := range enc2.Reqs {
		points += r.Points
	}
	if points != 3 {
		t.Errorf("%d points: stale markers are not measurements", points)
	}
	// The minute after: the gone series were not in the previous minute.
	enc3, err := b.Encode(drain, nil, third, enc2.Totals)
	if err != nil {
		t.Fatal(err)
	}
	got = all(t, enc3)
	for id, s := range got {
		if s.stale() && id != `a_b{drainmeter_rollup="dyno",job="myapp",source="web.1"}` && id != `x_total{drainmeter_rollup="dyno",job="myapp",source="web.1"}` {
			t.Errorf("stale marker for %s again", id)
		}
	}
	if len(got) != 3 {
		t.Errorf("third minute: %v", got)
	}
	// A quiet minute between (the drain sent nothing in m1): the series of
	// m0 that m2 lacks end at m1's end, not at m2's.
	enc, err := b.Encode(drain, nil, third, prev)
	if err != nil {
		t.Fatal(err)
	}
	markers := 0
	for id, s := range all(t, enc) {
		switch {
		case s.stale():
			markers++
			if s.Ts != m1.Add(time.Minute).UnixMilli() {
				t.Errorf("after a quiet minute: %s's marker stamped %d, want the quiet minute's end %d", id, s.Ts, m1.Add(time.Minute).UnixMilli())
			}
		case s.Ts != m2.Add(time.Minute).UnixMilli():
			t.Errorf("after a quiet minute: %s stamped %d", id, s.Ts)
		}
	}
	if markers == 0 {
		t.Error("after a quiet minute: no stale markers")
	}
	// After a gap longer than Prometheus' lookback: no markers (the series
	// ended; a marker hours old would be refused with the whole request).
	later := base.Add(3 * time.Hour)
	enc, err = b.Encode(drain, nil, minuteOf(t, "d1", later, []parse.Measurement{meas(parse.Sample, "kept", "web.1", 3, later)}), prev)
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range all(t, enc) {
		if s.stale() || s.Ts != later.Add(time.Minute).UnixMilli() {
			t.Errorf("after three hours: %s stamped %d, stale %v", id, s.Ts, s.stale())
		}
	}
}

// TestDuplicates: drainmeter series of one kind that map to one Prometheus
// series are merged into one; series of other kinds whose Prometheus
// series overlap: the first in key order is sent, the others counted and
// explained. The minute is not modified; the totals go on under one key.
func TestDuplicates(t *testing.T) {
	at := base.Add(time.Second)
	m := minuteOf(t, "d1", base, []parse.Measurement{
		meas(parse.Sample, "a_b", "web.1", 3, at.Add(time.Second)), // the latest: the merged sample's value
		meas(parse.Sample, "a/b", "web.1", 2, at),
		meas(parse.Sample, "a.b", "web.1", 1, at),
		meas(parse.Sample, "a.b", "web.2", 4, at), // another source: another series
		meas(parse.Count, "hits", "", 1, at),
		meas(parse.Count, "hits_total", "", 2, at), // hits_total too
		meas(parse.Measure, "x.y", "", 1, at),
		meas(parse.Measure, "x/y", "", 9, at),
		meas(parse.Measure, "x_y", "", 5, at),
		meas(parse.Sample, "lat_count", "", 9, at), // lat's _count
		meas(parse.Measure, "lat", "", 5, at),
	})
	b := newBackend(Config{})
	enc, err := b.Encode(drain, nil, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := all(t, enc)
	want := map[string]float64{
		`a_b{drainmeter_rollup="dyno",job="myapp",source="web.1"}`: 3,
		`a_b{drainmeter_rollup="dyno",job="myapp",source="web.2"}`: 4,
		`hits_total{drainmeter_rollup="none",job="myapp"}`:         3,
		`x_y_count{drainmeter_rollup="none",job="myapp"}`:          3,
		`x_y_sum{drainmeter_rollup="none",job="myapp"}`:            15,
		`x_y{drainmeter_rollup="none",job="myapp",quantile="0"}`:   1,
		`x_y{drainmeter_rollup="none",job="myapp",quantile="1"}`:   9,
		`lat_count{drainmeter_rollup="none",job="myapp"}`:          1, // the measure sorts before the sample
	}
	for id, v := range want {
		if got[id].Value != v {
			t.Errorf("%s = %v, want %v", id, got[id], v)
		}
	}
	if len(got) != 2+1+7+7 {
		t.Errorf("%d series", len(got))
	}
	if enc.Skipped != 1 || !strings.Contains(enc.Note, `"lat_count"`) {
		t.Errorf("skipped %d: %s", enc.Skipped, enc.Note)
	}
	if len(m.Series) != 11 || m.Series["a.b\x00web.1"].Last != 1 || m.Series["hits\x00"].Sum != 1 || m.Series["x.y\x00"].Count != 1 {
		t.Error("Encode modified the minute")
	}
	// The next minute has only hits_total and x/y: their totals go on.
	next := base.Add(time.Minute)
	enc2, err := b.Encode(drain, nil, minuteOf(t, "d1", next, []parse.Measurement{
		meas(parse.Count, "hits_total", "", 4, next),
		meas(parse.Measure, "x/y", "", 2, next),
	}), enc.Totals)
	if err != nil {
		t.Fatal(err)
	}
	got = all(t, enc2)
	if v := got[`hits_total{drainmeter_rollup="none",job="myapp"}`]; v.Value != 7 || v.stale() {
		t.Errorf("hits_total's running total: %v, want 7", v)
	}
	if v := got[`x_y_count{drainmeter_rollup="none",job="myapp"}`]; v.Value != 4 {
		t.Errorf("x_y_count's running total: %v, want 4", v)
	}
}

// TestChunks: at most MaxSamples per request, a drainmeter series' samples
// kept together when they fit, every series sent once, stale markers too.
func TestChunks(t *testing.T) {
	var ms []parse.Measurement
	for i := range 5 {
		ms = append(ms, meas(parse.Measure, fmt.Sprintf("m%d", i), "", 1, base))
		ms = append(ms, meas(parse.Sample, fmt.Sprintf("g%d", i), "", 1, base))
	}
	m := minuteOf(t, "d1", base, ms)
	for _, max := range []int{1, 3, 7, 8, 10, 16, 100} {
		enc, err := newBackend(Config{MaxSamples: max}).Encode(drain, nil, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{} // series → request
		points := 0
		for i, r := range enc.Reqs {
			ds := decodeRequest(t, r)
			if len(ds) > max || len(ds) == 0 || r.Points != len(ds) {
				t.Fatalf("max %d: request %d has %d series, %d points", max, i, len(ds), r.Points)
			}
			for _, d := range ds {
				name := strings.TrimSuffix(strings.TrimSuffix(d.name(), "_sum"), "_count")
				if j, ok := seen[name]; ok && j != i && max >= 7 {
					t.Errorf("max %d: %s split across requests", max, name)
				}
				seen[name] = i
			}
			points += r.Points
		}
		if points != 5*7+5 {
			t.Errorf("max %d: %d points", max, points)
		}
	}
}

// TestSend checks the request on the wire and what each answer means.
func TestSend(t *testing.T) {
	type seen struct {
		path, auth, ce, ct, version, ua, extra string
		body                                   []byte
	}
	var (
		mu     sync.Mutex
		last   seen
		status int
		answer string
		header = http.Header{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Encoding"), r.Header.Get("Content-Type"),
			r.Header.Get("X-Prometheus-Remote-Write-Version"), r.Header.Get("User-Agent"), r.Header.Get("X-Scope-OrgID"), body}
		st, ans := status, answer
		for k, v := range header {
			w.Header()[k] = v
		}
		mu.Unlock()
		w.WriteHeader(st)
		_, _ = io.WriteString(w, ans)
	}))
	defer srv.Close()

	b := newBackend(Config{})
	enc, err := b.Encode(drain, nil, minuteOf(t, "d1", base, []parse.Measurement{meas(parse.Sample, "g", "", 1, base)}), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := enc.Reqs[0]
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/api/v1/write"
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: u, Headers: []outlet.Header{{Name: "X-Scope-OrgID", Value: "tenant1"}}}

	for _, tc := range []struct {
		status     int
		retryAfter int
		answer     string
		want       outlet.Outcome
	}{
		{200, 0, "", outlet.Accepted},
		{204, 0, "", outlet.Accepted},
		{400, 0, "out of order sample", outlet.Permanent},
		{400, 0, "duplicate sample for timestamp", outlet.Permanent},
		{401, 0, "unauthorized", outlet.Pause},
		{403, 0, "forbidden", outlet.Pause},
		{404, 0, "404 page not found", outlet.Permanent},
		{413, 0, "too large", outlet.Permanent},
		{429, 7, "slow down", outlet.Retry},
		{500, 0, "too old sample", outlet.Retry},
		{502, 0, "", outlet.Retry},
		{503, 120, "", outlet.Retry},
	} {
		mu.Lock()
		status, answer = tc.status, tc.answer
		header = http.Header{}
		if tc.retryAfter != 0 {
			header.Set("Retry-After", fmt.Sprint(tc.retryAfter))
		}
		mu.Unlock()
		res := b.Send(t.Context(), o, r)
		if res.Outcome != tc.want || res.Status != tc.status || res.Message != tc.answer {
			t.Errorf("%d: %+v, want %v", tc.status, res, tc.want)
		}
		if res.RetryAfter != time.Duration(tc.retryAfter)*time.Second {
			t.Errorf("%d: Retry-After %v", tc.status, res.RetryAfter)
		}
	}
	mu.Lock()
	got := last
	mu.Unlock()
	if got.path != "/api/v1/write" || got.auth != "Basic dXNlcjpzM2NyZXQ=" || got.ce != "snappy" ||
		got.ct != "application/x-protobuf" || got.version != "0.1.0" || got.ua != "drainmeter/test" || got.extra != "tenant1" {
		t.Errorf("request %+v", got)
	}
	if raw, err := snappy.Decode(nil, got.body); err != nil || len(raw) == 0 || !bytes.Equal(got.body, r.Body) {
		t.Errorf("body: %v", err)
	}

	// A network error: retried; the message names neither the URL nor the password.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	o.URL = strings.Replace(closed.URL, "http://", "http://user:s3cret@", 1) + "/api/v1/write?token=abc"
	res := b.Send(t.Context(), o, r)
	if res.Outcome != outlet.Retry || res.Status != 0 || strings.Contains(res.Message, "s3cret") || strings.Contains(res.Message, "abc") || res.Message == "" {
		t.Errorf("network error: %+v", res)
	}
	// A URL that cannot be posted to: permanent, and no credentials shown.
	o.URL = "ftp://user:s3cret@example.com/x"
	if res := b.Send(t.Context(), o, r); res.Outcome != outlet.Permanent || strings.Contains(res.Message, "s3cret") {
		t.Errorf("bad URL: %+v", res)
	}
}

// BenchmarkEncode encodes a minute of 1 000 series (a third each counts,
// measures and samples) after a previous minute.
func BenchmarkEncode(b *testing.B) {
	t := &testing.T{}
	var ms []parse.Measurement
	for i := range 1000 {
		name := fmt.Sprintf("metric.%04d", i)
		switch i % 3 {
		case 0:
			ms = append(ms, meas(parse.Count, name, "web.1", 1, base))
		case 1:
			for v := range 20 {
				ms = append(ms, meas(parse.Measure, name, "web.1", float64(v), base))
			}
		default:
			ms = append(ms, meas(parse.Sample, name, "web.1", 1, base))
		}
	}
	m := minuteOf(t, "d1", base, ms)
	be := newBackend(Config{})
	first, err := be.Encode(drain, nil, m, nil)
	if err != nil {
		b.Fatal(err)
	}
	next := &rollup.Minute{Drain: m.Drain, Start: m.Start + 60, Series: m.Series}
	var size int
	enc, _ := be.Encode(drain, nil, next, first.Totals)
	for _, r := range enc.Reqs {
		size += len(r.Body)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Encode(drain, nil, next, first.Totals); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRoutesAndEvents: a route series gets a route label and no source;
// a minute's events are not remote write's.
func TestRoutesAndEvents(t *testing.T) {
	start := time.Date(2024, 5, 1, 12, 34, 0, 0, time.UTC)
	ev := parse.Measurement{Kind: parse.Event, Name: []byte("heroku.deploys"), Member: []byte("Deploy d706b4a"), Time: start}
	m := minuteOf(t, "d1", start, []parse.Measurement{
		withDims(meas(parse.Count, "router.requests", "", 1, start), parse.RouteDim, "GET /users/:id"),
		withDims(meas(parse.Count, "router.requests", "", 1, start), parse.RouteDim, "GET /users/:id"),
		withDims(meas(parse.Count, "router.requests", "", 1, start), parse.RouteDim, "other"), ev})
	enc, err := newBackend(Config{}).Encode(drain, nil, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range enc.Reqs {
		for _, d := range decodeRequest(t, r) {
			got = append(got, fmt.Sprintf("%s %v", d.id(), d.Samples))
		}
	}
	want := []string{`router_requests_total{drainmeter_rollup="route",job="myapp",route="GET /users/:id"} [2]`,
		`router_requests_total{drainmeter_rollup="route",job="myapp",route="other"} [1]`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// hists decodes every native histogram of enc into id → histogram.
func hists(t *testing.T, enc outlet.Encoded) map[string]decodedHist {
	t.Helper()
	out := map[string]decodedHist{}
	for _, r := range enc.Reqs {
		for _, d := range decodeRequest(t, r) {
			for _, h := range d.Hists {
				if _, dup := out[d.id()]; dup {
					t.Fatalf("%s twice in a minute", d.id())
				}
				out[d.id()] = h
			}
		}
	}
	return out
}

// TestNativeHistogramRunning: a measure's native histogram carries running
// buckets, count and sum, across a minute it is absent from (stale marker
// in between) and through the durable encoding of the totals; every value
// is in Prometheus' bucket for it (index = OTLP-spec bucket + 1), powers of
// two in the bucket they close.
func TestNativeHistogramRunning(t *testing.T) {
	b := newBackend(Config{})
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: "http://x/api/v1/write", Histograms: outlet.NativeHistograms}
	const id = `m{drainmeter_rollup="dyno",job="myapp",source="web.1"}`
	minutes := [][]float64{{1, 2, 4, 8, 3, 1000, 0.125}, nil, {8, 8, 1024, -2, 0}}
	want := map[int]uint64{}
	wantNeg := map[int]uint64{}
	var wantZero, count uint64
	var sum float64
	var prev *outlet.Totals
	for i, vs := range minutes {
		start := base.Add(time.Duration(i) * time.Minute)
		ms := []parse.Measurement{meas(parse.Count, "c", "web.1", 1, start)}
		for _, v := range vs {
			ms = append(ms, meas(parse.Measure, "m", "web.1", v, start))
			switch {
			case v > 0:
				want[rollup.MapToIndex(v, rollup.Scale)+1]++
			case v < 0:
				wantNeg[rollup.MapToIndex(-v, rollup.Scale)+1]++
			default:
				wantZero++
			}
			count++
			sum += v
		}
		enc, err := b.Encode(drain, o, minuteOf(t, "d1", start, ms), prev)
		if err != nil {
			t.Fatal(err)
		}
		h, ok := hists(t, enc)[id]
		switch {
		case vs == nil:
			if !ok || !h.stale() {
				t.Errorf("minute %d: %v, want a stale marker", i, h)
			}
		case !ok || h.stale() || h.Schema != 6 || h.Count != count || h.Sum != sum || h.Zero != wantZero ||
			!maps.Equal(h.Pos, want) || !maps.Equal(h.Neg, wantNeg):
			t.Errorf("minute %d: %v, want count %d sum %v zero %d positive %v negative %v", i, h, count, sum, wantZero, want, wantNeg)
		}
		if vs != nil {
			got := all(t, outlet.Encoded{Reqs: onlySamples(enc.Reqs)})
			lo, hi := slices.Min(vs), slices.Max(vs)
			if got[`m_min{drainmeter_rollup="dyno",job="myapp",source="web.1"}`].Value != lo ||
				got[`m_max{drainmeter_rollup="dyno",job="myapp",source="web.1"}`].Value != hi {
				t.Errorf("minute %d: min and max %v", i, got)
			}
		}
		// As the durable mode keeps them.
		if prev, err = outlet.DecodeTotals(enc.Totals.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
	}
}

// onlySamples returns requests holding only the float series of reqs.
func onlySamples(reqs []*outlet.Request) []*outlet.Request {
	var out []*outlet.Request
	for _, r := range reqs {
		raw, _ := snappy.Decode(nil, r.Body)
		var body []byte
		for len(raw) > 0 {
			_, _, n := protowire.ConsumeTag(raw)
			v, m := protowire.ConsumeBytes(raw[n:])
			ts, _ := decodeTimeSeries(v)
			if len(ts.Hists) == 0 {
				body = append(body, raw[:n+m]...)
			}
			raw = raw[n+m:]
		}
		c := *r
		c.Body = snappy.Encode(nil, body)
		out = append(out, &c)
	}
	return out
}

// TestNativeHistogramDownscale: a running histogram wider than
// NativeMaxBuckets a side is downscaled exactly and stays at the lower
// schema; counts stay exact.
func TestNativeHistogramDownscale(t *testing.T) {
	b := newBackend(Config{})
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: "http://x/api/v1/write", Histograms: outlet.NativeHistograms}
	const id = `m{drainmeter_rollup="none",job="myapp"}`
	var prev *outlet.Totals
	for i, vs := range [][]float64{{1e-3, 1e6}, {5}} { // 1e-3 … 1e6: 1,914 buckets at scale 6
		start := base.Add(time.Duration(i) * time.Minute)
		var ms []parse.Measurement
		for _, v := range vs {
			ms = append(ms, meas(parse.Measure, "m", "", v, start))
		}
		enc, err := b.Encode(drain, o, minuteOf(t, "d1", start, ms), prev)
		if err != nil {
			t.Fatal(err)
		}
		h := hists(t, enc)[id]
		want := map[int]uint64{rollup.MapToIndex(1e-3, 5) + 1: 1, rollup.MapToIndex(1e6, 5) + 1: 1}
		if i == 1 {
			want[rollup.MapToIndex(5, 5)+1]++
		}
		if h.Schema != 5 || !maps.Equal(h.Pos, want) || h.Count != uint64(2+i) {
			t.Errorf("minute %d: %v, want schema 5 and %v", i, h, want)
		}
		prev = enc.Totals
	}
}
