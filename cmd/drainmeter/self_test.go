package main

import (
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// TestSelfMetricsOfSilentDrains: a drain with a lane but no line since
// this process started (a restart, or a web that never got its traffic)
// still gets its self-metrics, zeros, so that an alert on a silent app
// keeps firing; a drain whose only outlet is the log gets none.
func TestSelfMetricsOfSilentDrains(t *testing.T) {
	store := rollup.NewStore(rollup.Config{Grace: time.Second})
	dests := outlettest.NewDests(
		&outlet.Destination{ID: "quiet", Outlets: []outlet.Outlet{{Kind: outlet.OTLP, URL: "http://127.0.0.1:1/v1/metrics"}}},
		&outlet.Destination{ID: "logged", Outlets: []outlet.Outlet{{Kind: outlet.Log}}},
	)
	s := &selfMetrics{store: store, dest: dests, reg: stats.NewRegistry(), lanes: func() []outlet.Status {
		return []outlet.Status{{Drain: "quiet", Kind: outlet.OTLP}, {Drain: "logged", Kind: outlet.Log}}
	}}
	at := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	s.flush(at.Add(59 * time.Second))
	got := map[string]float64{}
	for _, m := range store.FlushAll() {
		for _, se := range m.Series {
			got[m.Drain+" "+se.Name] = se.Sum
		}
	}
	if v, ok := got["quiet drainmeter.frames"]; !ok || v != 0 {
		t.Errorf("the quiet drain's frames: %v %v, want a 0; got %v", v, ok, got)
	}
	for k := range got {
		if len(k) > 6 && k[:7] == "logged " {
			t.Errorf("a log-only drain got %s", k)
		}
	}
}
