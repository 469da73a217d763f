package postgres

import (
	"context"
	"math"
	"testing"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// TestRepairTotals: a lane whose stored running totals hold +Inf (stored
// before values were bounded) is rewritten without that series, which then
// starts again; a lane with finite totals is left as it is.
func TestRepairTotals(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	ctx := context.Background()
	poisoned := (&outlet.Totals{Minute: 600, Series: map[string]*outlet.Running{
		"c\x00":  {Kind: parse.Count, Start: 60, Sum: math.Inf(1), Last: 600},
		"m\x00":  {Kind: parse.Measure, Start: 60, Count: 3, Sum: math.NaN(), Last: 600},
		"ok\x00": {Kind: parse.Count, Start: 60, Sum: 7, Last: 600},
	}}).AppendBinary(nil)
	clean := (&outlet.Totals{Minute: 600, Series: map[string]*outlet.Running{
		"ok\x00": {Kind: parse.Count, Start: 60, Sum: 7, Last: 600},
	}}).AppendBinary(nil)
	for _, l := range []struct {
		drain  string
		totals []byte
	}{{"d1", poisoned}, {"d2", clean}} {
		if _, err := pool.Exec(ctx, `INSERT INTO lanes (drain_id, outlet, posted_through, totals) VALUES ($1, 'remotewrite', 600, $2)`, l.drain, l.totals); err != nil {
			t.Fatal(err)
		}
	}
	n, err := RepairTotals(ctx, pool)
	if err != nil || n != 2 {
		t.Fatalf("repaired %d series (%v), want 2", n, err)
	}
	for _, d := range []string{"d1", "d2"} {
		var b []byte
		if err := pool.QueryRow(ctx, `SELECT totals FROM lanes WHERE drain_id = $1`, d).Scan(&b); err != nil {
			t.Fatal(err)
		}
		if string(b) != string(clean) {
			t.Errorf("lane %s: totals %x, want %x (the finite series alone)", d, b, clean)
		}
	}
	if n, err := RepairTotals(ctx, pool); err != nil || n != 0 {
		t.Fatalf("a second repair found %d series (%v), want none", n, err)
	}
}
