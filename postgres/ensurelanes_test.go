package postgres

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
)

// TestEnsureLanesFromTheDatabase: the lanes a sealing creates are the
// drain's outlets as the database has them, even when this dyno's cached
// copy is older than drains set; the built-in drain's come from config.
func TestEnsureLanesFromTheDatabase(t *testing.T) {
	drains, _ := newDrains(t)
	pool := drains.pool
	ctx := context.Background()
	d, _, err := drains.Add(ctx, Spec{Name: ptr("shop")}) // no outlet: the log
	if err != nil {
		t.Fatal(err)
	}
	// The cache still says log; the database has OTLP now.
	stale := outlettest.NewDests(&outlet.Destination{ID: d.ID, Outlets: []outlet.Outlet{{Kind: outlet.Log}}},
		&outlet.Destination{ID: "default", Outlets: []outlet.Outlet{{Kind: outlet.RemoteWrite}}})
	if _, err := drains.Set(ctx, d.ID, Spec{Outlets: []OutletSpec{{Kind: outlet.OTLP, URL: "https://otlp.example.com/v1/metrics"}}}); err != nil {
		t.Fatal(err)
	}
	lanes := func(id string) []string {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ensureLanes(ctx, tx, stale, id) }); err != nil {
			t.Fatal(err)
		}
		rows, _ := pool.Query(ctx, `SELECT outlet FROM lanes WHERE drain_id = $1 ORDER BY outlet`, id)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// log: the stale copy's, removed by the poster once it reads the drain again.
	if got, want := lanes(d.ID), []string{"log", "otlp"}; !slices.Equal(got, want) {
		t.Errorf("lanes %q, want %q", got, want)
	}
	if got, want := lanes("default"), []string{"remotewrite"}; !slices.Equal(got, want) {
		t.Errorf("built-in drain: lanes %q, want %q", got, want)
	}
	// Every outlet removed: the log's lane, whatever the cache says.
	if _, err := drains.Set(ctx, d.ID, Spec{Remove: []outlet.Kind{outlet.OTLP}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM lanes`); err != nil {
		t.Fatal(err)
	}
	stale.Put(&outlet.Destination{ID: d.ID, Outlets: []outlet.Outlet{{Kind: outlet.OTLP}}})
	if got, want := lanes(d.ID), []string{"log", "otlp"}; !slices.Equal(got, want) {
		t.Errorf("after removing every outlet: lanes %q, want %q", got, want)
	}
}
