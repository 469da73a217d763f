package status

import (
	"testing"

	"github.com/drainmeter/drainmeter/outlet"
)

// TestOutletsShowTheirConfiguration: each outlet of a drain says which
// configuration its lane runs, never a credential.
func TestOutletsShowTheirConfiguration(t *testing.T) {
	d := &outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{
		{Kind: outlet.OTLP, URL: "https://otlp.example.com/v1/metrics", Version: 3, Temporality: outlet.Delta, PercentileGauges: true,
			Headers: []outlet.Header{{Name: "Authorization", Value: "Bearer s3cret"}}},
		{Kind: outlet.RemoteWrite, URL: "https://u:pw@prom.example.com/api/v1/write", Version: 7},
	}}
	lanes := []outlet.Status{{Drain: "d1", Kind: outlet.RemoteWrite, Target: "remotewrite https://prom.example.com/api/v1/write"}}
	got := map[string]string{}
	for _, o := range Outlets(d, lanes) {
		got[o.Kind] = o.Config
	}
	want := map[string]string{"otlp": "version 3, delta, percentile gauges", "remotewrite": "version 7"}
	if len(got) != len(want) || got["otlp"] != want["otlp"] || got["remotewrite"] != want["remotewrite"] {
		t.Errorf("configs %q, want %q", got, want)
	}
	for o, want := range map[*outlet.Outlet]string{
		{Kind: outlet.Log}: "no outlet set: rollups logged",
		{Kind: outlet.OTLP, URL: "https://a/v1/metrics"}:                            "config vars, cumulative",
		{Kind: outlet.Librato, Version: 2}:                                          "version 2",
		{Kind: outlet.OTLP, Temporality: outlet.Delta, MaxBuckets: 1000}:            "config vars, delta, max buckets 1000",
		{Kind: outlet.OTLP, Temporality: outlet.Delta, MaxBuckets: 160}:             "config vars, delta",
		{Kind: outlet.RemoteWrite, Version: 4, Histograms: outlet.NativeHistograms}: "version 4, native histograms",
	} {
		if got := ConfigDesc(o); got != want {
			t.Errorf("ConfigDesc(%+v) = %q, want %q", *o, got, want)
		}
	}
}
