package postgres

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/outlet"
)

// RepairTotals rewrites the lanes' stored running totals that hold a
// series whose total is not finite (stored before parse.MaxValue bounded
// values: count#c=1.7e308 twice made it +Inf, for good): that series is
// left out, so it starts again at its next minute, which receivers read as
// a counter reset. It returns how many series it repaired. Each lane is
// rewritten only if its totals are still those read (another dyno may be
// posting it), and a later read repairs what this one missed
// (outlet.DecodeTotals leaves such series out too).
func RepairTotals(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type lane struct {
		drain, outlet string
		totals        []byte
	}
	rows, err := pool.Query(ctx, `SELECT drain_id, outlet, totals FROM lanes WHERE totals IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("repair totals: %w", err)
	}
	var bad []lane
	repaired := 0
	err = forRows(rows, func(r pgx.Rows) error {
		var l lane
		if err := r.Scan(&l.drain, &l.outlet, &l.totals); err != nil {
			return err
		}
		t, err := outlet.DecodeTotals(l.totals)
		if err != nil || t.Repaired == 0 {
			return nil // unreadable ones are started anew by the poster, which logs it
		}
		repaired += t.Repaired
		l.totals = bytes.Clone(l.totals)
		bad = append(bad, l)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("repair totals: %w", err)
	}
	for _, l := range bad {
		t, _ := outlet.DecodeTotals(l.totals)
		if _, err := pool.Exec(ctx, `UPDATE lanes SET totals = $3 WHERE drain_id = $1 AND outlet = $2 AND totals = $4`,
			l.drain, l.outlet, t.AppendBinary(nil), l.totals); err != nil {
			return repaired, fmt.Errorf("repair totals: %w", err)
		}
	}
	return repaired, nil
}
