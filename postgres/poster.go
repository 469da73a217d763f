package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Deliverer posts a merged minute and calls done once: final=true when the
// minute is finished with (posted, or given up on and counted), false when
// it was interrupted (shutdown) and must be tried again later. done must not
// block.
type Deliverer interface {
	Deliver(m *rollup.Minute, done func(final bool))
}

// PosterConfig configures the outlet workers' claims.
type PosterConfig struct {
	Owner       string        // WriterID
	Lease       time.Duration // a claim lasts this long unless renewed; another worker takes over after
	PerDrain    int           // minutes of one drain in flight in this process at most
	MaxInFlight int           // minutes in flight in this process at most
	Retention   time.Duration // finished minutes are kept this long (to recognize late partials), then deleted
	Poll        time.Duration // how often to look for ready minutes
}

// Poster is the outlet workers' side of the durable mode: it claims ready
// minutes with FOR UPDATE SKIP LOCKED (so every web dyno can run one and
// each minute goes to exactly one), merges their partials, hands them to the
// Deliverer, and records the outcome. Claims are leases, renewed while a
// minute is in flight; a worker that dies loses its lease and another takes
// the minute over. Retries back off in next_attempt, across restarts.
type Poster struct {
	cfg     PosterConfig
	pool    *pgxpool.Pool
	deliver Deliverer
	stats   *stats.Registry
	log     *slog.Logger

	mu       sync.Mutex
	inflight map[minuteKey]bool
	perDrain map[string]int
	marks    []mark // outcomes not yet recorded (the database may be away)
	wake     chan struct{}
	outage   *outage
}

type minuteKey struct {
	drain  string
	minute int64
}

type mark struct {
	key      minuteKey
	final    bool
	attempts int
}

// NewPoster returns a poster; start Run.
func NewPoster(cfg PosterConfig, pool *pgxpool.Pool, d Deliverer, reg *stats.Registry, log *slog.Logger) *Poster {
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.PerDrain <= 0 {
		cfg.PerDrain = 2
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 16
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	return &Poster{cfg: cfg, pool: pool, deliver: d, stats: reg, log: log,
		inflight: map[minuteKey]bool{}, perDrain: map[string]int{}, wake: make(chan struct{}, 1),
		outage: newOutage(log, "poster: Postgres unreachable; minutes wait there until it is back", "poster: Postgres reachable again")}
}

// Run claims and delivers minutes until ctx is done. It does not wait for
// the deliveries in flight: the outlet's Shutdown finishes or interrupts
// them, then Close records their outcomes.
func (p *Poster) Run(ctx context.Context) {
	poll := time.NewTicker(p.cfg.Poll)
	defer poll.Stop()
	renew := time.NewTicker(p.cfg.Lease / 3)
	defer renew.Stop()
	clean := time.NewTicker(time.Minute)
	defer clean.Stop()
	for {
		p.record(ctx)
		p.claimAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-p.wake:
		case <-renew.C:
			p.renew(ctx)
		case <-clean.C:
			p.clean(ctx)
		}
	}
}

// Close records the outcomes still pending, within ctx.
func (p *Poster) Close(ctx context.Context) error {
	for {
		p.record(ctx)
		p.mu.Lock()
		left := len(p.marks)
		p.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("poster: %d minute outcomes not recorded (their leases expire and another worker posts them again)", left)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *Poster) claimAll(ctx context.Context) {
	for ctx.Err() == nil {
		p.mu.Lock()
		if len(p.inflight) >= p.cfg.MaxInFlight {
			p.mu.Unlock()
			return
		}
		busy := []string{} // not nil: NOT (drain_id = ANY(NULL)) is never true
		for d, n := range p.perDrain {
			if n >= p.cfg.PerDrain {
				busy = append(busy, d)
			}
		}
		p.mu.Unlock()
		m, attempts, err := p.claim(ctx, busy)
		p.outage.report(err)
		if err != nil || m == nil {
			return
		}
		key := minuteKey{m.Drain, m.Start}
		p.mu.Lock()
		p.inflight[key] = true
		p.perDrain[m.Drain]++
		p.mu.Unlock()
		p.deliver.Deliver(m, func(final bool) {
			p.mu.Lock()
			p.marks = append(p.marks, mark{key: key, final: final, attempts: attempts})
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
		})
	}
}

const claimSQL = `UPDATE minutes SET frozen_at = coalesce(frozen_at, now()), lease_owner = $1,
    lease_until = now() + $2 * interval '1 millisecond', attempts = attempts + 1
WHERE (drain_id, minute) = (
    SELECT drain_id, minute FROM minutes
    WHERE done_at IS NULL AND ready_at <= now() AND next_attempt <= now()
      AND (lease_until IS NULL OR lease_until < now()) AND NOT (drain_id = ANY($3))
    ORDER BY next_attempt, minute
    LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING drain_id, minute, attempts`

// claim leases one ready minute and loads its merged partials.
func (p *Poster) claim(ctx context.Context, busy []string) (*rollup.Minute, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var drain string
	var minute int64
	var attempts int
	err := p.pool.QueryRow(ctx, claimSQL, p.cfg.Owner, p.cfg.Lease.Milliseconds(), busy).Scan(&drain, &minute, &attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("poster: claim: %w", err)
	}
	rows, err := p.pool.Query(ctx, `SELECT data FROM partials WHERE drain_id = $1 AND minute = $2 ORDER BY id`, drain, minute)
	if err != nil {
		p.release(ctx, minuteKey{drain, minute}, attempts)
		return nil, 0, fmt.Errorf("poster: partials: %w", err)
	}
	merged := &rollup.Minute{Drain: drain, Start: minute, Series: map[string]*rollup.Series{}}
	parts := 0
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			p.release(ctx, minuteKey{drain, minute}, attempts)
			return nil, 0, fmt.Errorf("poster: partials: %w", err)
		}
		part, err := rollup.DecodeMinute(drain, minute, data)
		if err != nil {
			p.log.Error("poster: unreadable partial skipped", "drain", drain, "minute", minute, "err", err)
			continue
		}
		conflicts, err := merged.Merge(part)
		if err != nil {
			p.log.Error("poster: partial could not be merged", "drain", drain, "minute", minute, "err", err)
		}
		p.stats.Drain(drain).Add(stats.KindConflict, uint64(conflicts))
		parts++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		p.release(ctx, minuteKey{drain, minute}, attempts)
		return nil, 0, fmt.Errorf("poster: partials: %w", err)
	}
	p.log.Debug("poster: claimed", "drain", drain, "minute", time.Unix(minute, 0).UTC().Format(time.RFC3339),
		"partials", parts, "series", len(merged.Series), "attempt", attempts)
	return merged, attempts, nil
}

// record writes the outcomes of finished deliveries.
func (p *Poster) record(ctx context.Context) {
	p.mu.Lock()
	marks := p.marks
	p.marks = nil
	p.mu.Unlock()
	var failed []mark
	for _, m := range marks {
		var err error
		if m.final {
			err = p.finish(ctx, m.key)
		} else {
			err = p.release(ctx, m.key, m.attempts)
		}
		p.outage.report(err)
		if err != nil {
			failed = append(failed, m)
			continue
		}
		p.mu.Lock()
		delete(p.inflight, m.key)
		if p.perDrain[m.key.drain]--; p.perDrain[m.key.drain] <= 0 {
			delete(p.perDrain, m.key.drain)
		}
		p.mu.Unlock()
	}
	if len(failed) > 0 { // keep them (and their leases, renewed) until the database is back
		p.mu.Lock()
		p.marks = append(failed, p.marks...)
		p.mu.Unlock()
	}
}

// finish marks a minute done and deletes its partials.
func (p *Poster) finish(ctx context.Context, k minuteKey) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE minutes SET done_at = now(), outcome = 'posted', lease_owner = NULL, lease_until = NULL
			WHERE drain_id = $1 AND minute = $2`, k.drain, k.minute); err != nil {
			return fmt.Errorf("poster: finish: %w", err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM partials WHERE drain_id = $1 AND minute = $2`, k.drain, k.minute)
		return err
	})
}

// release gives a minute back for a later try, backing off with attempts.
func (p *Poster) release(ctx context.Context, k minuteKey, attempts int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	backoff := min(time.Duration(attempts)*5*time.Second, 5*time.Minute)
	_, err := p.pool.Exec(ctx, `UPDATE minutes SET lease_owner = NULL, lease_until = NULL,
		next_attempt = now() + $3 * interval '1 millisecond' WHERE drain_id = $1 AND minute = $2 AND lease_owner = $4`,
		k.drain, k.minute, backoff.Milliseconds(), p.cfg.Owner)
	if err != nil {
		return fmt.Errorf("poster: release: %w", err)
	}
	return nil
}

// renew extends the leases of the minutes in flight.
func (p *Poster) renew(ctx context.Context) {
	p.mu.Lock()
	n := len(p.inflight)
	p.mu.Unlock()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.pool.Exec(ctx, `UPDATE minutes SET lease_until = now() + $2 * interval '1 millisecond'
		WHERE lease_owner = $1 AND done_at IS NULL`, p.cfg.Owner, p.cfg.Lease.Milliseconds())
	p.outage.report(err)
}

// clean deletes finished minutes past the retention.
func (p *Poster) clean(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := p.pool.Exec(ctx, `DELETE FROM minutes WHERE done_at < now() - $1 * interval '1 millisecond'`, p.cfg.Retention.Milliseconds())
	p.outage.report(err)
}

// InFlight returns the minutes this process is delivering.
func (p *Poster) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}
