package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// SealerConfig configures the sealer.
type SealerConfig struct {
	Grace   time.Duration // GRACE
	Silence time.Duration // WRITER_TIMEOUT
	// AppRollup gives each sealed minute its app rollups
	// (rollup.AddAppRollups), built from the merged partials.
	AppRollup bool
}

// Sealer merges the partials of ready minutes into sealed minutes, once.
// Every web runs one; for each drain one sealer at a time does the work
// (the drain's rollup row is its lock). A minute is ready when the
// watermark has passed it: every live writer has closed and written it.
// Sealing a drain also records that every minute up to the watermark is
// sealed (sealed_through), so that a partial arriving later for any of
// them is shifted to a later minute rather than posted behind minutes the
// outlets have already sent.
type Sealer struct {
	cfg   SealerConfig
	pool  *pgxpool.Pool
	dest  outlet.Destinations
	stats *stats.Registry
	log   *slog.Logger
	now   func() time.Time
}

// NewSealer returns a sealer; dest tells which outlets (lanes) a drain has.
func NewSealer(cfg SealerConfig, pool *pgxpool.Pool, dest outlet.Destinations, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Sealer {
	if cfg.Silence <= 0 {
		cfg.Silence = time.Minute
	}
	return &Sealer{cfg: cfg, pool: pool, dest: dest, stats: reg, log: log, now: now}
}

// SealReady seals every drain's ready minutes and returns how many minutes
// it sealed.
func (s *Sealer) SealReady(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := watermark(ctx, s.pool, s.cfg.Silence, s.now(), s.cfg.Grace)
	if err != nil {
		return 0, err
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT drain_id FROM partials WHERE minute <= $1`, w)
	if err != nil {
		return 0, fmt.Errorf("sealer: %w", err)
	}
	drains, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("sealer: %w", err)
	}
	n := 0
	for _, d := range drains {
		k, err := s.sealDrain(ctx, d, w)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type partialData struct {
	id     int64
	minute int64
	data   []byte
}

// sealDrain seals the drain's minutes up to w.
func (s *Sealer) sealDrain(ctx context.Context, drain string, w int64) (int, error) {
	sealedMinutes := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		sealedMinutes = 0
		// Writers hold the row FOR SHARE while they write: wait for them, a
		// while. This transaction holds it FOR UPDATE: bound its idle time
		// (a sealer cut off from Postgres would hold up every writer).
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'; `+boundIdleTx); err != nil {
			return err
		}
		var sealedThrough int64
		if err := tx.QueryRow(ctx, `SELECT sealed_through FROM drain_rollups WHERE drain_id = $1 FOR UPDATE`, drain).Scan(&sealedThrough); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, minute, data FROM partials WHERE drain_id = $1 AND minute <= $2 ORDER BY minute, id`, drain, w)
		if err != nil {
			return err
		}
		parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partialData, error) {
			var p partialData
			err := r.Scan(&p.id, &p.minute, &p.data)
			return p, err
		})
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			return nil // another sealer was first
		}
		var ids []int64
		for i := 0; i < len(parts); {
			j := i
			for j < len(parts) && parts[j].minute == parts[i].minute {
				j++
			}
			minute := parts[i].minute
			merged := &rollup.Minute{Drain: drain, Start: minute, Series: map[string]*rollup.Series{}}
			for _, p := range parts[i:j] {
				ids = append(ids, p.id)
				part, err := rollup.DecodeMinute(drain, minute, p.data)
				if err != nil {
					s.log.Error("sealer: unreadable partial skipped", "drain", drain, "minute", rollup.MinuteString(minute), "err", err)
					continue
				}
				if part.Repaired > 0 {
					s.log.Warn("sealer: series with a sum that is not finite left out (stored before values were bounded)",
						"drain", drain, "minute", rollup.MinuteString(minute), "series", part.Repaired)
				}
				conflicts, err := merged.Merge(part)
				if err != nil {
					s.log.Error("sealer: partial could not be merged", "drain", drain, "minute", rollup.MinuteString(minute), "err", err)
				}
				s.stats.Drain(drain).Add(stats.KindConflict, uint64(conflicts))
			}
			if s.cfg.AppRollup {
				rollup.AddAppRollups(merged)
			}
			tag, err := tx.Exec(ctx, `INSERT INTO minutes (drain_id, minute, data, sealed_at, frozen_at, series)
				VALUES ($1, $2, $3, now(), now(), $4) ON CONFLICT (drain_id, minute) DO NOTHING`,
				drain, minute, merged.AppendBinary(nil), len(merged.Series))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				// Cannot happen (writers shift partials of sealed minutes),
				// except for partials an older version wrote: move them on.
				to := max(sealedThrough, w) + 60
				s.log.Error("sealer: partials for a sealed minute; moved to a later minute", "drain", drain,
					"minute", rollup.MinuteString(minute), "to", rollup.MinuteString(to))
				if _, err := tx.Exec(ctx, `UPDATE partials SET minute = $2, shifted_from = coalesce(shifted_from, minute) WHERE id = ANY($1)`,
					ids[len(ids)-(j-i):], to); err != nil {
					return err
				}
				ids = ids[:len(ids)-(j-i)]
			} else {
				sealedMinutes++
				// The explorer's summary, written once: by this sealing.
				if err := writeExplorerMinute(ctx, tx, merged); err != nil {
					return err
				}
			}
			i = j
		}
		if _, err := tx.Exec(ctx, `DELETE FROM partials WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE drain_rollups SET sealed_through = greatest(sealed_through, $2) WHERE drain_id = $1`, drain, w); err != nil {
			return err
		}
		return ensureLanes(ctx, tx, s.dest, drain)
	})
	if err != nil {
		return 0, fmt.Errorf("sealer: drain %s: %w", drain, err)
	}
	return sealedMinutes, nil
}

// ensureLanes creates the lanes of the drain's current outlets: those the
// database has now (the log's when it has none), and those this dyno's
// cache has, for the built-in drain of config vars. A cached copy a little
// older than drains set thus never keeps the new outlet's lane from being
// created; a lane that the cache added and the drain no longer has is
// removed by the poster.
func ensureLanes(ctx context.Context, tx pgx.Tx, dest outlet.Destinations, drain string) error {
	kinds := []string{}
	if d, ok := dest.Destination(drain); ok {
		for _, o := range d.Outlets {
			kinds = append(kinds, string(o.Kind))
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO lanes (drain_id, outlet)
		SELECT $1, unnest($2::text[])
		UNION SELECT d.id, coalesce(o.kind, 'log') FROM drains d LEFT JOIN outlets o ON o.drain_id = d.id WHERE d.id = $1
		ON CONFLICT DO NOTHING`, drain, kinds)
	return err
}
