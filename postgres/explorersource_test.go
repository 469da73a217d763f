package postgres

import (
	"context"
	"fmt"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/status"
)

// TestExplorerSummaryWrittenOnce: the explorer's summary of a minute is
// written by the sealing that seals it, once, with every writer's data;
// every dyno reads the same; refused pairs of every dyno are shown, the
// last status.MaxRefused of them.
func TestExplorerSummaryWrittenOnce(t *testing.T) {
	r := newRig(t, outlet.Log)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w1, w2 := r.writer("web.1.a", m), r.writer("web.2.b", m)
	w1.Closed([]*rollup.Minute{partialOf("d", m, 3)})
	w2.Closed([]*rollup.Minute{partialOf("d", m, 4)})
	w1.Swept(m.Add(61 * time.Second))
	w2.Swept(m.Add(61 * time.Second))
	r.flush(w1, w2)
	for range 2 { // two dynos' sealers: one seals
		if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM explorer_names WHERE drain_id = 'd'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d explorer rows (%v), want 1", rows, err)
	}

	ev := status.ExplorerEvents{Refused: map[string][]status.Refused{}, RefusedBy: map[string]map[string]map[string]uint64{
		"d": {"hits": {"bad_value": 70}}}, Late: map[string]map[string]uint64{"d": {"hits": 5}}}
	for i := range 70 {
		ev.Refused["d"] = append(ev.Refused["d"], status.Refused{At: time.Now(), Reason: "bad_value", Token: fmt.Sprintf("count#hits=x%d", i), Name: "hits"})
	}
	if err := WriteExplorerEvents(ctx, r.pool, ev); err != nil {
		t.Fatal(err)
	}
	x, err := NewExplorerSource(r.pool, time.Hour, time.Now).Explore(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if x.LastMinute == nil || !x.LastMinute.Equal(m) || len(x.Names) != 1 {
		t.Fatalf("explore: %+v", x)
	}
	hits := x.Names[0]
	if hits.Name != "hits" || hits.Last.Value != 7 || hits.Volume != 2 || hits.History[59].Value != 7 || hits.Refused["bad_value"] != 70 ||
		hits.Late != 5 || len(hits.Refused) != 1 {
		t.Errorf("hits: %+v", hits)
	}
	if len(x.Refused) != status.MaxRefused || x.Refused[0].Token != "count#hits=x69" {
		t.Errorf("%d refused pairs, newest %+v", len(x.Refused), x.Refused[0])
	}
	hist, err := NewExplorerSource(r.pool, time.Hour, time.Now).History(ctx, "d", "hits", false)
	if err != nil || len(hist) != 0 { // web.1 is a dyno
		t.Errorf("history without dynos: %v %v", hist, err)
	}
	hist, err = NewExplorerSource(r.pool, time.Hour, time.Now).History(ctx, "d", "hits", true)
	if err != nil || len(hist["web.1"]) != 60 || hist["web.1"][59].Value != 7 {
		t.Errorf("history with dynos: %v %v", hist, err)
	}
	if empty, err := NewExplorerSource(r.pool, time.Hour, time.Now).Explore(ctx, "other"); err != nil || len(empty.Names) != 0 || len(empty.Refused) != 0 {
		t.Errorf("another drain: %+v %v", empty, err)
	}
}

// TestExplorerReadsTheBusiestNames: names that change every minute cannot
// make a page read them all: the busiest status.MaxExplorerHour of the hour
// are shown, the rest counted as hidden.
func TestExplorerReadsTheBusiestNames(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-5 * time.Minute).Unix()
	n := status.MaxExplorerHour + 10
	if _, err := pool.Exec(ctx, `INSERT INTO explorer_minutes (drain_id, minute, names, omitted) VALUES ('d', $1, $2, 0)`, m, n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO explorer_names (drain_id, minute, name, kind, sources, count, value, detail)
		SELECT 'd', $1, 'n' || i, 'count', 1, i, i, '{"kind":"count"}' FROM generate_series(1, $2) AS i`, m, n); err != nil {
		t.Fatal(err)
	}
	x, err := NewExplorerSource(pool, time.Hour, time.Now).Explore(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Names) != status.MaxExplorerHour || x.Hidden != 10 {
		t.Fatalf("%d names shown, %d hidden; want %d and 10", len(x.Names), x.Hidden, status.MaxExplorerHour)
	}
	for _, nv := range x.Names {
		if nv.Name == "n1" || nv.Name == "n10" {
			t.Errorf("%s, among the quietest, shown", nv.Name)
		}
	}
}
