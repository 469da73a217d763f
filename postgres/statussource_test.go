package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
)

// TestStatusSumsEveryDyno: the status source shows every dyno's counters
// added up, drains that never received anything, and the lanes' states.
func TestStatusSumsEveryDyno(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	keys := mustKeys(t)
	drains := NewDrains(r.pool, keys)
	shop, _, err := drains.Add(ctx, Spec{Name: ptr("shop"), Outlets: []OutletSpec{{Kind: outlet.OTLP, URL: "https://u:p@otlp.example.com/v1/metrics"}}})
	if err != nil {
		t.Fatal(err)
	}
	idle, _, err := drains.Add(ctx, Spec{Name: ptr("idle")})
	if err != nil {
		t.Fatal(err)
	}
	r.dests.Put(&outlet.Destination{ID: shop.ID, Name: "shop", Outlets: []outlet.Outlet{{Kind: outlet.OTLP, URL: "https://u:p@otlp.example.com/v1/metrics"}}})
	r.dests.Put(&outlet.Destination{ID: idle.ID, Name: "idle", Outlets: []outlet.Outlet{{Kind: outlet.Log}}})
	now := time.Now()
	delta := func(frames, badHeader uint64, app string) stats.Delta {
		var c stats.Snapshot
		c[stats.FramesAccepted], c[stats.RejectedBadHeader], c[stats.FramesRejected] = frames, badHeader, badHeader
		return stats.Delta{Drain: shop.ID, Counts: c, LastBatch: now, Apps: []string{app}}
	}
	w1, w2 := r.writer("web.1.a", now), r.writer("web.2.b", now)
	w1.Record(now, []stats.Delta{delta(10, 1, "shop")}, map[string]int{shop.ID: 40})
	w2.Record(now, []stats.Delta{delta(5, 0, "shop-staging")}, map[string]int{shop.ID: 2})
	w2.Record(now.Add(-time.Minute), []stats.Delta{delta(7, 0, "shop-staging")}, map[string]int{shop.ID: 2})
	r.flush(w1, w2)
	if _, err := r.pool.Exec(ctx, `INSERT INTO lanes (drain_id, outlet, state, last_error) VALUES ($1, 'otlp', 'retrying', 'HTTP 503: down')`, shop.ID); err != nil {
		t.Fatal(err)
	}
	src := NewStatusSource(StatusConfig{Version: "t"}, r.pool, drains, r.dests, func() string { return DBOK }, func() bool { return false }, time.Now)
	snap, err := src.Snapshot(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Drains) != 2 || snap.Dynos != 2 {
		t.Fatalf("%d drains, %d dynos", len(snap.Drains), snap.Dynos)
	}
	var got, waiting status.Report
	for _, d := range snap.Drains {
		if d.ID == shop.ID {
			got = d
		} else {
			waiting = d
		}
	}
	if got.Frames != 22 || got.FramesRejected != 1 || got.Rejected["bad_header"] != 1 || got.OpenSeries != 42 ||
		got.LinesPerMinute[59] != 15 || got.LinesPerMinute[58] != 7 || got.LastBatchAt == nil || len(got.Apps) != 2 {
		t.Fatalf("shop: %+v", got)
	}
	if len(got.Outlets) != 1 || got.Outlets[0].State != "retrying" || got.Outlets[0].LastError != "HTTP 503: down" ||
		got.Outlets[0].Target != "otlp https://otlp.example.com/v1/metrics" {
		t.Fatalf("outlets %+v", got.Outlets)
	}
	if waiting.LastBatchAt != nil || waiting.Frames != 0 || len(waiting.Outlets) != 1 || waiting.Outlets[0].Kind != "log" {
		t.Fatalf("idle: %+v", waiting)
	}
	one, err := src.Snapshot(ctx, idle.ID)
	if err != nil || len(one.Drains) != 1 || one.Drains[0].ID != idle.ID {
		t.Fatalf("one drain: %+v %v", one, err)
	}
}
