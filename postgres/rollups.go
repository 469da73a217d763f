package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// WriterID names this process in the partials it writes and the minutes it
// leases: the dyno name and a random boot id.
func WriterID(dyno string) string {
	if dyno == "" {
		dyno = "local"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return dyno + "." + hex.EncodeToString(b)
}

// PartialsConfig configures the partial writer.
type PartialsConfig struct {
	Writer     string        // WriterID
	ReadyAfter time.Duration // a minute is ready this long after it ends (GRACE + POST_DELAY)
	MaxBytes   int           // partials held in memory while Postgres is unreachable; beyond, the oldest are dropped
}

// Partials writes partial minutes to Postgres: it is the rollup's Sink in
// the durable mode. Closed only encodes and queues; Run writes the queue in
// batches (one transaction, one pipelined statement per partial). While
// Postgres is unreachable the queue is kept, up to MaxBytes, and retried.
type Partials struct {
	cfg   PartialsConfig
	pool  *pgxpool.Pool
	stats *stats.Registry
	log   *slog.Logger

	mu      sync.Mutex
	queue   []partialRow
	bytes   int
	dropped uint64
	wake    chan struct{}
	outage  *outage
}

type partialRow struct {
	drain        string
	minute       int64
	data         []byte
	measurements uint64
}

// NewPartials returns a writer; start Run.
func NewPartials(cfg PartialsConfig, pool *pgxpool.Pool, reg *stats.Registry, log *slog.Logger) *Partials {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	return &Partials{cfg: cfg, pool: pool, stats: reg, log: log, wake: make(chan struct{}, 1),
		outage: newOutage(log, "partials: cannot write to Postgres; holding them in memory", "partials: Postgres reachable again; caught up")}
}

// Closed encodes and queues partial minutes.
func (p *Partials) Closed(minutes []*rollup.Minute) {
	rows := make([]partialRow, 0, len(minutes))
	for _, m := range minutes {
		var n uint64
		for _, s := range m.Series {
			n += uint64(s.Count)
		}
		rows = append(rows, partialRow{drain: m.Drain, minute: m.Start, data: m.AppendBinary(nil), measurements: n})
	}
	p.mu.Lock()
	for _, r := range rows {
		p.queue = append(p.queue, r)
		p.bytes += len(r.data)
	}
	p.trimLocked()
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// trimLocked drops the oldest partials beyond MaxBytes, counting them.
func (p *Partials) trimLocked() {
	for p.bytes > p.cfg.MaxBytes && len(p.queue) > 0 {
		r := p.queue[0]
		p.queue = p.queue[1:]
		p.bytes -= len(r.data)
		p.stats.Drain(r.drain).Add(stats.PartialsDropped, r.measurements)
		p.dropped += r.measurements
	}
}

// Queued returns the partials and bytes waiting to be written.
func (p *Partials) Queued() (n, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue), p.bytes
}

// Run writes queued partials as they come, until ctx is done.
func (p *Partials) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
		if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
			// Kept for the next tick; logged once per outage.
			continue
		}
	}
}

// Flush writes everything queued now.
func (p *Partials) Flush(ctx context.Context) error {
	p.mu.Lock()
	batch := p.queue
	p.queue, p.bytes = nil, 0
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Error("partials dropped: Postgres was unreachable for longer than the buffer holds", "measurements", dropped)
	}
	if len(batch) == 0 {
		return nil
	}
	err := p.write(ctx, batch)
	p.outage.report(err)
	if err != nil {
		p.mu.Lock()
		p.queue = append(batch, p.queue...)
		for _, r := range batch {
			p.bytes += len(r.data)
		}
		p.trimLocked()
		p.mu.Unlock()
	}
	return err
}

// insertPartial locks the minute's row (creating it), and inserts the
// partial only if no worker has claimed the minute yet.
const insertPartial = `WITH m AS (
    INSERT INTO minutes (drain_id, minute, ready_at) VALUES ($1, $2, $3)
    ON CONFLICT (drain_id, minute) DO UPDATE
        SET late_partials = minutes.late_partials + (minutes.frozen_at IS NOT NULL)::int
    RETURNING frozen_at
)
INSERT INTO partials (drain_id, minute, writer, data)
SELECT $1, $2, $4, $5 FROM m WHERE m.frozen_at IS NULL
RETURNING id`

func (p *Partials) write(ctx context.Context, batch []partialRow) error {
	// One lock order for every writer: no deadlocks between dynos.
	sort.SliceStable(batch, func(i, j int) bool {
		if batch[i].drain != batch[j].drain {
			return batch[i].drain < batch[j].drain
		}
		return batch[i].minute < batch[j].minute
	})
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var late []partialRow
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		late = late[:0]
		b := &pgx.Batch{}
		for _, r := range batch {
			ready := time.Unix(r.minute+60, 0).Add(p.cfg.ReadyAfter)
			b.Queue(insertPartial, r.drain, r.minute, ready, p.cfg.Writer, r.data)
		}
		br := tx.SendBatch(ctx, b)
		for _, r := range batch {
			var id int64
			switch err := br.QueryRow().Scan(&id); {
			case errors.Is(err, pgx.ErrNoRows):
				late = append(late, r)
			case err != nil:
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("partials: %w", err)
	}
	for _, r := range late {
		p.stats.Drain(r.drain).Add(stats.Late, r.measurements)
		p.log.Warn("partial arrived after its minute was posted; counted late", "drain", r.drain,
			"minute", time.Unix(r.minute, 0).UTC().Format(time.RFC3339), "measurements", r.measurements)
	}
	return nil
}
