package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/status"
)

// The metrics explorer in Postgres (migration 0015): the sealer writes each
// sealed minute's per-name summary in its own transaction, so that it is
// written once, by whoever seals the minute; every dyno reads the same.

// writeExplorerMinute writes the explorer's summary of a sealed minute.
func writeExplorerMinute(ctx context.Context, tx pgx.Tx, m *rollup.Minute) error {
	s := status.Summarize(m, 0)
	if len(s.Names) == 0 && s.Omitted == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i := range s.Names {
		nm := &s.Names[i]
		detail, err := json.Marshal(nm)
		if err != nil {
			return fmt.Errorf("explorer: %w", err)
		}
		b.Queue(`INSERT INTO explorer_names (drain_id, minute, name, kind, unit, sources, count, value, p50, p95, p99, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
			s.Drain, s.Minute, nm.Name, nm.Kind, nm.Unit, nm.Sources, nm.Count, nm.Value, nm.P50, nm.P95, nm.P99, detail)
	}
	b.Queue(`INSERT INTO explorer_minutes (drain_id, minute, names, omitted) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		s.Drain, s.Minute, len(s.Names), s.Omitted)
	return tx.SendBatch(ctx, b).Close()
}

// WriteExplorerEvents adds a dyno's refused pairs and overflowed names,
// keeping the last status.MaxRefused and status.MaxOverflowed per drain.
func WriteExplorerEvents(ctx context.Context, pool *pgxpool.Pool, ev status.ExplorerEvents) error {
	b := &pgx.Batch{}
	for id, rs := range ev.Refused {
		for _, r := range rs {
			b.Queue(`INSERT INTO explorer_refused (drain_id, at, reason, token, name) VALUES ($1, $2, $3, $4, $5)`,
				id, r.At, r.Reason, r.Token, r.Name)
		}
		b.Queue(`DELETE FROM explorer_refused WHERE drain_id = $1 AND id < (SELECT min(id) FROM
			(SELECT id FROM explorer_refused WHERE drain_id = $1 ORDER BY id DESC LIMIT $2) AS last)`, id, status.MaxRefused)
	}
	now := time.Now()
	count := func(id, name, what string, n uint64) {
		b.Queue(`INSERT INTO explorer_name_counts (drain_id, name, what, n, last_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (drain_id, name, what) DO UPDATE SET n = explorer_name_counts.n + excluded.n, last_at = excluded.last_at`,
			id, name, what, int64(n), now)
	}
	for id, by := range ev.RefusedBy {
		for name, reasons := range by {
			for reason, n := range reasons {
				count(id, name, reason, n)
			}
		}
	}
	for id, by := range ev.Late {
		for name, n := range by {
			count(id, name, lateCount, n)
		}
	}
	for id, os := range ev.Overflowed {
		for _, o := range os {
			b.Queue(`INSERT INTO explorer_overflowed (drain_id, name, at) VALUES ($1, $2, $3)
				ON CONFLICT (drain_id, name) DO UPDATE SET at = greatest(explorer_overflowed.at, excluded.at)`, id, o.Name, o.At)
		}
		b.Queue(`DELETE FROM explorer_overflowed WHERE drain_id = $1 AND name NOT IN
			(SELECT name FROM explorer_overflowed WHERE drain_id = $1 ORDER BY at DESC, name LIMIT $2)`, id, status.MaxOverflowed)
	}
	if b.Len() == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
}

// lateCount is the what of a name's late measurements in
// explorer_name_counts (the others are refusal reasons).
const lateCount = "late"

// explorerCleanup deletes what is older than the retention (the poster's
// clean runs it).
func explorerCleanup() []string {
	return []string{
		`DELETE FROM explorer_names WHERE minute < extract(epoch FROM now())::bigint - $1`,
		`DELETE FROM explorer_minutes WHERE minute < extract(epoch FROM now())::bigint - $1`,
		`DELETE FROM explorer_refused WHERE at < now() - $1 * interval '1 second'`,
		`DELETE FROM explorer_name_counts WHERE last_at < now() - $1 * interval '1 second'`,
		`DELETE FROM explorer_overflowed WHERE at < now() - $1 * interval '1 second'`,
	}
}

// ExplorerSource reads the explorer from Postgres: every dyno shows the
// same.
type ExplorerSource struct {
	pool      *pgxpool.Pool
	retention time.Duration
	now       func() time.Time
}

// NewExplorerSource returns the explorer's source.
func NewExplorerSource(pool *pgxpool.Pool, retention time.Duration, now func() time.Time) *ExplorerSource {
	return &ExplorerSource{pool: pool, retention: retention, now: now}
}

// topNames selects the $3 busiest names of drain $1 since minute $2 (as
// "top"), for the queries it opens.
const topNames = `WITH top AS (SELECT name FROM explorer_names WHERE drain_id = $1 AND minute >= $2
	GROUP BY name ORDER BY sum(count) DESC, name LIMIT $3) `

// Explore returns drain id's explorer: the names of its last 60 sealed
// minutes, the busiest MaxExplorerHour of them.
func (s *ExplorerSource) Explore(ctx context.Context, id string) (*status.Explore, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	x := &status.Explore{Drain: id, Store: "postgres", Now: s.now().UTC()}
	if err := s.explore(ctx, id, x); err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	return status.FinishExplore(x), nil
}

// explore fills x in steps: the drain's last minute, the busiest names of
// the hour up to it (their last minute and their history), what was late
// or refused of each, and the last refused pairs and overflowed names.
func (s *ExplorerSource) explore(ctx context.Context, id string, x *status.Explore) error {
	last, err := s.lastMinute(ctx, id, x)
	if err != nil {
		return err
	}
	names := map[string]*status.NameView{}
	if last != 0 {
		first := last - 59*60
		if err := s.hourNames(ctx, id, first, x, names); err != nil {
			return err
		}
		if err := s.hourHistory(ctx, id, first, names); err != nil {
			return err
		}
	}
	if err := s.nameCounts(ctx, id, names); err != nil {
		return err
	}
	for _, nv := range names {
		x.Names = append(x.Names, *nv)
	}
	if x.Refused, err = s.lastRefused(ctx, id); err != nil {
		return err
	}
	x.Overflowed, err = s.lastOverflowed(ctx, id)
	return err
}

// lastMinute returns the start of the drain's last minute in the explorer
// (0: none) and sets x's LastMinute and Omitted from it.
func (s *ExplorerSource) lastMinute(ctx context.Context, id string, x *status.Explore) (int64, error) {
	var last int64
	var omitted int
	err := s.pool.QueryRow(ctx, `SELECT minute, omitted FROM explorer_minutes WHERE drain_id = $1 ORDER BY minute DESC LIMIT 1`, id).Scan(&last, &omitted)
	switch {
	case err == pgx.ErrNoRows:
		return 0, nil
	case err != nil:
		return 0, err
	}
	t := time.Unix(last, 0).UTC()
	x.LastMinute, x.Omitted = &t, omitted
	return last, nil
}

// hourNames reads the busiest names of the hour from first, at most
// MaxExplorerHour of them, each with its last minute, into names; x.Hidden
// counts the others.
func (s *ExplorerSource) hourNames(ctx context.Context, id string, first int64, x *status.Explore, names map[string]*status.NameView) error {
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT name) FROM explorer_names WHERE drain_id = $1 AND minute >= $2`,
		id, first).Scan(&x.Hidden); err != nil {
		return err
	}
	x.Hidden = max(x.Hidden-status.MaxExplorerHour, 0)
	rows, err := s.pool.Query(ctx, topNames+`SELECT DISTINCT ON (n.name) n.name, n.minute, n.detail FROM explorer_names n JOIN top USING (name)
		WHERE n.drain_id = $1 AND n.minute >= $2 ORDER BY n.name, n.minute DESC`, id, first, status.MaxExplorerHour)
	if err != nil {
		return err
	}
	return forRows(rows, func(r pgx.Rows) error {
		var name string
		var minute int64
		var detail []byte
		if err := r.Scan(&name, &minute, &detail); err != nil {
			return err
		}
		nv := &status.NameView{Name: name, LastAt: time.Unix(minute, 0).UTC(), History: make([]status.Spark, 60)}
		if err := json.Unmarshal(detail, &nv.Last); err != nil {
			return err
		}
		nv.Kind, nv.Unit, nv.Sources = nv.Last.Kind, nv.Last.Unit, nv.Last.Sources
		for i := range nv.History {
			nv.History[i].Minute = first + int64(i)*60
		}
		names[name] = nv
		return nil
	})
}

// hourHistory fills the names' minutes of the hour from first, and their
// volume.
func (s *ExplorerSource) hourHistory(ctx context.Context, id string, first int64, names map[string]*status.NameView) error {
	rows, err := s.pool.Query(ctx, topNames+`SELECT n.name, n.minute, n.count, n.value, n.p50, n.p95, n.p99 FROM explorer_names n JOIN top USING (name)
		WHERE n.drain_id = $1 AND n.minute >= $2`, id, first, status.MaxExplorerHour)
	if err != nil {
		return err
	}
	return forRows(rows, func(r pgx.Rows) error {
		var name string
		var sp status.Spark
		if err := r.Scan(&name, &sp.Minute, &sp.Count, &sp.Value, &sp.P50, &sp.P95, &sp.P99); err != nil {
			return err
		}
		if nv := names[name]; nv != nil {
			if i := (sp.Minute - first) / 60; i >= 0 && i < 60 {
				nv.History[i] = sp
				nv.Volume += sp.Count
			}
		}
		return nil
	})
}

// nameCounts adds to the names what was late of each, and what was
// refused of each by reason.
func (s *ExplorerSource) nameCounts(ctx context.Context, id string, names map[string]*status.NameView) error {
	rows, err := s.pool.Query(ctx, `SELECT name, what, n FROM explorer_name_counts WHERE drain_id = $1`, id)
	if err != nil {
		return err
	}
	return forRows(rows, func(r pgx.Rows) error {
		var name, reason string
		var n int64
		if err := r.Scan(&name, &reason, &n); err != nil {
			return err
		}
		if nv := names[name]; nv != nil && reason == lateCount {
			nv.Late += uint64(n)
		} else if nv != nil {
			if nv.Refused == nil {
				nv.Refused = map[string]uint64{}
			}
			nv.Refused[reason] += uint64(n)
		}
		return nil
	})
}

// lastRefused returns the drain's last MaxRefused refused pairs, newest
// first.
func (s *ExplorerSource) lastRefused(ctx context.Context, id string) ([]status.Refused, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, reason, token, name FROM explorer_refused WHERE drain_id = $1 ORDER BY id DESC LIMIT $2`, id, status.MaxRefused)
	if err != nil {
		return nil, err
	}
	var out []status.Refused
	err = forRows(rows, func(r pgx.Rows) error {
		var rf status.Refused
		if err := r.Scan(&rf.At, &rf.Reason, &rf.Token, &rf.Name); err != nil {
			return err
		}
		rf.At = rf.At.UTC()
		out = append(out, rf)
		return nil
	})
	return out, err
}

// lastOverflowed returns the drain's last MaxOverflowed names refused by
// the series guards, newest first.
func (s *ExplorerSource) lastOverflowed(ctx context.Context, id string) ([]status.Overflowed, error) {
	rows, err := s.pool.Query(ctx, `SELECT at, name FROM explorer_overflowed WHERE drain_id = $1 ORDER BY at DESC, name LIMIT $2`, id, status.MaxOverflowed)
	if err != nil {
		return nil, err
	}
	var out []status.Overflowed
	err = forRows(rows, func(r pgx.Rows) error {
		var o status.Overflowed
		if err := r.Scan(&o.At, &o.Name); err != nil {
			return err
		}
		o.At = o.At.UTC()
		out = append(out, o)
		return nil
	})
	return out, err
}

// History returns one name's last 60 minutes per source, from the stored
// summaries: process types and sources that are not dynos, and dynos (the
// 20 busiest of each minute) when dynos is set.
func (s *ExplorerSource) History(ctx context.Context, id, name string, dynos bool) (map[string][]status.Spark, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string][]status.Spark{}
	var last int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(minute), 0) FROM explorer_minutes WHERE drain_id = $1`, id).Scan(&last)
	if err != nil || last == 0 {
		return out, err
	}
	first := last - 59*60
	rows, err := s.pool.Query(ctx, `SELECT minute, detail FROM explorer_names WHERE drain_id = $1 AND name = $2 AND minute >= $3`, id, name, first)
	if err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	err = forRows(rows, func(r pgx.Rows) error {
		var minute int64
		var detail []byte
		if err := r.Scan(&minute, &detail); err != nil {
			return err
		}
		var nm status.NameMinute
		if err := json.Unmarshal(detail, &nm); err != nil {
			return err
		}
		i := int((minute - first) / 60)
		if i < 0 || i >= 60 {
			return nil
		}
		for _, p := range nm.BySource {
			if dynos || p.ProcessType || !parse.IsDynoName([]byte(p.Source)) {
				status.AddSourceSpark(out, p, i, minute)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	return out, nil
}
