package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
)

// StatusConfig configures the status source.
type StatusConfig struct {
	Version string
	Window  time.Duration // STATUS_RETENTION: the counters shown cover this long
	Silence time.Duration // WRITER_TIMEOUT: dynos silent this long are gone
	Builtin string        // the built-in drain's id, "" when it is off
}

// StatusSource gathers the status pages' data from Postgres: every dyno's
// counters (written per minute with the partials, so a dyno that died
// still counts), the lanes' states, and the drains table, so that every
// dyno shows the same thing.
type StatusSource struct {
	cfg      StatusConfig
	pool     *pgxpool.Pool
	drains   *Drains
	dest     outlet.Destinations
	db       func() string // the database state (DBHealth.State)
	dedup    func() bool   // claims degraded to memory
	now      func() time.Time
	partials *Partials // this dyno's writer: what it holds back; nil: none
}

// NewStatusSource returns the source. db reports the database's state
// (DBHealth.State); degraded whether batch ids are claimed in memory only.
func NewStatusSource(cfg StatusConfig, pool *pgxpool.Pool, drains *Drains, dest outlet.Destinations, db func() string, degraded func() bool, now func() time.Time) *StatusSource {
	if cfg.Window <= 0 {
		cfg.Window = 24 * time.Hour
	}
	if cfg.Silence <= 0 {
		cfg.Silence = time.Minute
	}
	return &StatusSource{cfg: cfg, pool: pool, drains: drains, dest: dest, db: db, dedup: degraded, now: now}
}

// WithPartials makes the snapshots show what this dyno's partial writer
// holds back: partial minutes queued and the oldest minute not written.
func (s *StatusSource) WithPartials(p *Partials) *StatusSource {
	s.partials = p
	return s
}

// Snapshot returns every drain's status, or drain id's only.
func (s *StatusSource) Snapshot(ctx context.Context, id string) (*status.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := s.now()
	snap := s.header(now)
	byID, order, err := s.drainList(ctx, id)
	if err != nil {
		return nil, err
	}
	since := rollup.FloorMinute(now.Add(-s.cfg.Window).Unix())
	var unknown **status.Refusals
	if id == "" {
		unknown = &snap.Unknown
	}
	if err := s.counters(ctx, byID, since, unknown); err != nil {
		return nil, err
	}
	if err := s.linesPerMinute(ctx, byID, now); err != nil {
		return nil, err
	}
	if err := s.activity(ctx, byID); err != nil {
		return nil, err
	}
	if err := s.openSeries(ctx, byID, snap); err != nil {
		return nil, err
	}
	if err := s.lanes(ctx, byID); err != nil {
		return nil, err
	}
	for _, did := range order {
		snap.Drains = append(snap.Drains, *byID[did])
	}
	sort.Slice(snap.Drains, func(i, j int) bool { return snap.Drains[i].Name < snap.Drains[j].Name })
	return snap, nil
}

// header returns a snapshot without its drains: the version, the store and
// the state of the database, the dedup and the partials' queue.
func (s *StatusSource) header(now time.Time) *status.Snapshot {
	snap := &status.Snapshot{Version: s.cfg.Version, Store: "postgres", Database: "ok", Dedup: "shared", Now: now.UTC(),
		Window: s.cfg.Window.String()}
	snap.Database = s.db()
	if s.partials != nil {
		snap.PartialsQueued, _ = s.partials.Queued()
		if t, ok := s.partials.Unwritten(); ok {
			snap.NotRecordedSince = &t
		}
	}
	if s.dedup() {
		snap.Dedup = "local"
	}
	return snap
}

// drainList returns the drains a snapshot shows, empty, by id and in the
// order they were listed: every drain (and the built-in one), or drain id
// only.
func (s *StatusSource) drainList(ctx context.Context, id string) (map[string]*status.Report, []string, error) {
	list, err := s.drains.List(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]*status.Report{}
	var order []string
	add := func(did, name string) {
		if id != "" && did != id {
			return
		}
		if byID[did] == nil {
			byID[did] = &status.Report{ID: did, Name: name, Apps: []string{}, LinesPerMinute: make([]uint64, 60),
				Rejected: map[string]uint64{}, Outlets: []status.Outlet{}}
			order = append(order, did)
		}
	}
	for _, d := range list {
		add(d.ID, d.Name)
	}
	if s.cfg.Builtin != "" {
		add(s.cfg.Builtin, s.cfg.Builtin)
	}
	return byID, order, nil
}

// linesPerMinute fills each drain's frames of the last 60 minutes.
func (s *StatusSource) linesPerMinute(ctx context.Context, byID map[string]*status.Report, now time.Time) error {
	first := rollup.FloorMinute(now.Unix()) - 59*60
	rows, err := s.pool.Query(ctx, `SELECT drain_id, minute, coalesce((counters ->> 'frames')::bigint, 0) FROM drain_counters WHERE minute >= $1`, first)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return forRows(rows, func(r pgx.Rows) error {
		var did string
		var minute, frames int64
		if err := r.Scan(&did, &minute, &frames); err != nil {
			return err
		}
		if d := byID[did]; d != nil && minute >= first && (minute-first)/60 < 60 {
			d.LinesPerMinute[(minute-first)/60] += uint64(frames)
		}
		return nil
	})
}

// activity fills each drain's last batch and the apps seen sending to it.
func (s *StatusSource) activity(ctx context.Context, byID map[string]*status.Report) error {
	rows, err := s.pool.Query(ctx, `SELECT drain_id, last_batch_at, apps FROM drain_activity`)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return forRows(rows, func(r pgx.Rows) error {
		var did string
		var last *time.Time
		var apps []string
		if err := r.Scan(&did, &last, &apps); err != nil {
			return err
		}
		if d := byID[did]; d != nil {
			if last != nil {
				t := last.UTC()
				d.LastBatchAt = &t
			}
			sort.Strings(apps)
			d.Apps = apps
		}
		return nil
	})
}

// openSeries fills each drain's open series, summed over the live dynos,
// and the number of live dynos.
func (s *StatusSource) openSeries(ctx context.Context, byID map[string]*status.Report, snap *status.Snapshot) error {
	rows, err := s.pool.Query(ctx, `SELECT w.key, sum(w.value::bigint), (SELECT count(*) FROM writers
			WHERE gone_at IS NULL AND heartbeat_at > now() - $1 * interval '1 millisecond')
		FROM writers, jsonb_each_text(open_series) AS w
		WHERE gone_at IS NULL AND heartbeat_at > now() - $1 * interval '1 millisecond' GROUP BY w.key`, s.cfg.Silence.Milliseconds())
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	err = forRows(rows, func(r pgx.Rows) error {
		var did string
		var n, dynos int64
		if err := r.Scan(&did, &n, &dynos); err != nil {
			return err
		}
		if d := byID[did]; d != nil {
			d.OpenSeries = int(n)
		}
		snap.Dynos = int(dynos)
		return nil
	})
	if err != nil {
		return err
	}
	if snap.Dynos == 0 {
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM writers WHERE gone_at IS NULL AND heartbeat_at > now() - $1 * interval '1 millisecond'`,
			s.cfg.Silence.Milliseconds()).Scan(&snap.Dynos); err != nil {
			return fmt.Errorf("status: %w", err)
		}
	}
	return nil
}

// counters sums every dyno's counters since a minute.
func (s *StatusSource) counters(ctx context.Context, byID map[string]*status.Report, since int64, unknown **status.Refusals) error {
	rows, err := s.pool.Query(ctx, `SELECT drain_id, c.key, sum(c.value::bigint) FROM drain_counters, jsonb_each_text(counters) AS c
		WHERE minute >= $1 GROUP BY drain_id, c.key`, since)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	snaps := map[string]*stats.Snapshot{}
	err = forRows(rows, func(r pgx.Rows) error {
		var did, key string
		var n int64
		if err := r.Scan(&did, &key, &n); err != nil {
			return err
		}
		if byID[did] == nil && did != stats.UnknownDrain {
			return nil
		}
		c, ok := stats.CounterByName(key)
		if !ok {
			return nil // a counter of another version
		}
		if snaps[did] == nil {
			snaps[did] = &stats.Snapshot{}
		}
		snaps[did][c] = uint64(n)
		return nil
	})
	if err != nil {
		return err
	}
	for did, snap := range snaps {
		if did == stats.UnknownDrain {
			continue
		}
		status.FillCounters(byID[did], *snap)
	}
	// When each drain was last refused: to the minute, from the minutes
	// whose counters hold a refusal.
	var keys []string
	for _, c := range stats.RefusalCounters {
		keys = append(keys, c.String())
	}
	rows, err = s.pool.Query(ctx, `SELECT drain_id, max(minute) FROM drain_counters WHERE minute >= $1 AND counters ?| $2 GROUP BY drain_id`,
		since, keys)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	last := map[string]*time.Time{}
	err = forRows(rows, func(r pgx.Rows) error {
		var did string
		var minute int64
		if err := r.Scan(&did, &minute); err != nil {
			return err
		}
		t := time.Unix(minute, 0).UTC()
		last[did] = &t
		return nil
	})
	if err != nil {
		return err
	}
	for did, d := range byID {
		d.LastRefusedAt = last[did]
	}
	if u := snaps[stats.UnknownDrain]; u != nil && unknown != nil {
		*unknown = &status.Refusals{Refused: status.RefusedCounts(*u), LastRefusedAt: last[stats.UnknownDrain]}
	}
	return nil
}

// Lanes returns every lane's status (for self-metrics).
func (s *StatusSource) Lanes(ctx context.Context) ([]outlet.Status, error) {
	lanes, err := s.laneStatuses(ctx)
	if err != nil {
		return nil, err
	}
	var out []outlet.Status
	for _, ls := range lanes {
		out = append(out, ls...)
	}
	return out, nil
}

// lanes fills each drain's outlets from its lanes and its configuration.
func (s *StatusSource) lanes(ctx context.Context, byID map[string]*status.Report) error {
	lanes, err := s.laneStatuses(ctx)
	if err != nil {
		return err
	}
	for did, d := range byID {
		od, _ := s.dest.Destination(did)
		var ls []outlet.Status
		for _, l := range lanes[did] {
			if od != nil {
				if o, ok := od.Outlet(l.Kind); ok {
					l.Target = o.Redacted()
				}
			}
			ls = append(ls, l)
		}
		d.Outlets = status.Outlets(od, ls)
		d.Attributes = status.Attributes(od)
		if od != nil && did == s.cfg.Builtin && od.Name != "" {
			d.Name = od.Name
		}
	}
	return nil
}

// laneStatuses reads the lanes, by drain.
func (s *StatusSource) laneStatuses(ctx context.Context) (map[string][]outlet.Status, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.drain_id, l.outlet, l.state, l.last_post_at, coalesce(l.last_error, ''), l.last_error_at,
			l.posted, l.rejected, l.dropped, l.post_uncertain, coalesce(l.pause_reason, ''),
			CASE WHEN l.state IN ('retrying', 'paused', 'uncertain') AND l.next_attempt > now() THEN l.next_attempt END,
			(SELECT count(*) FROM minutes m WHERE m.drain_id = l.drain_id AND m.sealed_at IS NOT NULL
				AND m.minute > coalesce(l.posted_through, -1))
			+ (SELECT count(DISTINCT p.minute) FROM partials p WHERE p.drain_id = l.drain_id)
		FROM lanes l`)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	lanes := map[string][]outlet.Status{}
	err = forRows(rows, func(r pgx.Rows) error {
		var st outlet.Status
		var kind, state string
		var lastPost, lastErrAt, next *time.Time
		var posted, rejected, dropped, uncertain, waiting int64
		if err := r.Scan(&st.Drain, &kind, &state, &lastPost, &st.LastError, &lastErrAt, &posted, &rejected, &dropped,
			&uncertain, &st.PauseReason, &next, &waiting); err != nil {
			return err
		}
		if next != nil {
			st.NextAttempt = *next
		}
		st.Uncertain = uint64(uncertain)
		st.Kind, st.State = outlet.Kind(kind), outlet.State(state)
		if lastPost != nil {
			st.LastPostAt = *lastPost
		}
		if lastErrAt != nil {
			st.LastErrorAt = *lastErrAt
		}
		st.Posted, st.Rejected, st.Dropped, st.Waiting = uint64(posted), uint64(rejected), uint64(dropped), int(waiting)
		lanes[st.Drain] = append(lanes[st.Drain], st)
		return nil
	})
	return lanes, err
}

// forRows calls f for every row and closes rows.
func forRows(rows pgx.Rows, f func(pgx.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return fmt.Errorf("status: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}
