package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// LocalIDs is the in-memory set of batch ids that SharedIDs keeps in step
// with the other dynos (drain.RecentIDs).
type LocalIDs interface {
	Claim(drain, id string, now time.Time) bool
	Release(drain, id string)
}

// SharedIDs counts a retried batch once across web dynos without a database
// write on the request path. Claims are decided in memory; ids of counted
// batches are written to frames_seen in batches every Interval, and every
// Interval the ids the other dynos counted are read back into memory. A
// retry that reaches another dyno more than about two Intervals after the
// first attempt was counted is therefore recognized (logplex retries after a
// 5 s timeout or a failed connection); one that arrives sooner may count twice.
type SharedIDs struct {
	local    LocalIDs
	pool     *pgxpool.Pool
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	pending []seenID
	since   time.Time // database time of the newest id read
	dropped int
	outage  *outage
}

type seenID struct{ drain, id string }

// maxPending bounds the ids held while the database is unreachable.
const maxPending = 200_000

// NewSharedIDs returns a shared set over local.
func NewSharedIDs(pool *pgxpool.Pool, local LocalIDs, interval time.Duration, log *slog.Logger, now func() time.Time) *SharedIDs {
	return &SharedIDs{local: local, pool: pool, log: log, interval: interval, now: now,
		outage: newOutage(log, "dedup: database unreachable; holding batch ids in memory", "dedup: database reachable again")}
}

// Claim reports whether the batch is new, from memory alone.
func (s *SharedIDs) Claim(drain, id string, now time.Time) bool { return s.local.Claim(drain, id, now) }

// Release forgets a claim whose batch was not counted.
func (s *SharedIDs) Release(drain, id string) { s.local.Release(drain, id) }

// Commit records that the batch was counted; the next flush shares it.
func (s *SharedIDs) Commit(drain, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= maxPending {
		s.pending = s.pending[1:]
		s.dropped++
	}
	s.pending = append(s.pending, seenID{drain, id})
}

// Run flushes and polls every interval, and deletes ids older than an hour
// every minute, until ctx is done; then it flushes once more.
func (s *SharedIDs) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	lastPrune := s.now()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s.flush(fctx)
			cancel()
			return
		case <-t.C:
		}
		s.flush(ctx)
		s.poll(ctx)
		if s.now().Sub(lastPrune) > time.Minute {
			lastPrune = s.now()
			if _, err := s.pool.Exec(ctx, `DELETE FROM frames_seen WHERE seen_at < now() - interval '1 hour'`); err != nil {
				s.outage.report(err)
			}
		}
	}
}

func (s *SharedIDs) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("dedup: batch ids dropped while the database was unreachable; retries of those batches may count twice", "ids", dropped)
	}
	if len(batch) == 0 {
		return
	}
	drains, ids := make([]string, len(batch)), make([]string, len(batch))
	for i, b := range batch {
		drains[i], ids[i] = b.drain, b.id
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO frames_seen (drain_id, frame_id)
		SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`, drains, ids)
	s.outage.report(err)
	if err != nil { // keep them for the next flush
		s.mu.Lock()
		s.pending = append(batch, s.pending...)
		if over := len(s.pending) - maxPending; over > 0 {
			s.pending = s.pending[over:]
			s.dropped += over
		}
		s.mu.Unlock()
	}
}

func (s *SharedIDs) poll(ctx context.Context) {
	since := s.since
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	// Read back a little before the newest id seen: rows committed late
	// with an earlier timestamp are not missed; re-reading is harmless.
	rows, err := s.pool.Query(ctx, `SELECT drain_id, frame_id, seen_at FROM frames_seen WHERE seen_at > $1 ORDER BY seen_at`,
		since.Add(-2*time.Second))
	if err != nil {
		s.outage.report(err)
		return
	}
	defer rows.Close()
	now := s.now()
	newest := s.since
	for rows.Next() {
		var d, id string
		var at time.Time
		if err := rows.Scan(&d, &id, &at); err != nil {
			s.outage.report(err)
			return
		}
		s.local.Claim(d, id, now)
		if at.After(newest) {
			newest = at
		}
	}
	if err := rows.Err(); err != nil {
		s.outage.report(err)
		return
	}
	s.since = newest
	s.outage.report(nil)
}
