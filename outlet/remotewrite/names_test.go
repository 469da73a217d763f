package remotewrite

import (
	"slices"
	"testing"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// TestSeriesNames: the names SeriesNames gives (the status pages show
// them) are exactly those Encode posts, kind by kind.
func TestSeriesNames(t *testing.T) {
	for _, c := range []struct {
		kind parse.Kind
		name string
	}{
		{parse.Count, "jobs.done"}, {parse.Count, "hits_total"}, {parse.Measure, "db.latency"},
		{parse.Sample, "memory-rss"}, {parse.Unique, "9users"}, {parse.Measure, "héllo/x"},
	} {
		for _, native := range []bool{false, true} {
			m := minuteOf(t, "d1", base, []parse.Measurement{meas(c.kind, c.name, "web.1", 3, base)})
			var o *outlet.Outlet
			if native {
				o = &outlet.Outlet{Kind: outlet.RemoteWrite, Histograms: outlet.NativeHistograms}
			}
			enc, err := newBackend(Config{}).Encode(drain, o, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			var posted []string
			for _, r := range enc.Reqs {
				for _, d := range decodeRequest(t, r) {
					if n := d.name(); !slices.Contains(posted, n) {
						posted = append(posted, n)
					}
				}
			}
			got := SeriesNames(c.kind, c.name, native)
			slices.Sort(posted)
			sorted := slices.Sorted(slices.Values(got))
			if !slices.Equal(sorted, posted) {
				t.Errorf("%v %s native %v: SeriesNames %v, Encode posts %v", c.kind, c.name, native, got, posted)
			}
		}
	}
}

// TestLabelsOf: the labels appendLabels writes read back in order, by
// name (labelValue) and as a message (describe); a truncated encoding
// yields the whole labels before it and stops.
func TestLabelsOf(t *testing.T) {
	ls := []label{{labelName, "router_service_ms"}, {"job", "web-app"}, {"dyno", `web.1 "x"`}}
	b := appendLabels(nil, ls)
	var got []label
	for k, v := range labelsOf(b) {
		got = append(got, label{k, v})
	}
	if !slices.Equal(got, ls) {
		t.Errorf("labelsOf = %q, want %q", got, ls)
	}
	seq, n := labelsOf(b), 0
	for range seq {
		n++
	}
	for range seq {
		n++
	}
	if n != 2*len(ls) {
		t.Errorf("the same labelsOf ranged over twice yields %d labels, want %d", n, 2*len(ls))
	}
	if v := labelValue(b, "job"); v != "web-app" {
		t.Errorf(`labelValue(job) = %q, want "web-app"`, v)
	}
	if v := labelValue(b, "app"); v != "" {
		t.Errorf(`labelValue(app) = %q, want ""`, v)
	}
	if d, want := describe(b), `router_service_ms{job="web-app",dyno="web.1 \"x\""}`; d != want {
		t.Errorf("describe = %s, want %s", d, want)
	}
	got = nil
	for k, v := range labelsOf(b[:len(b)-3]) {
		got = append(got, label{k, v})
	}
	if !slices.Equal(got, ls[:2]) {
		t.Errorf("labelsOf(truncated) = %q, want the first two labels", got)
	}
}
