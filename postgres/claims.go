package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// LocalIDs is the batch ids this dyno has claimed, in memory
// (drain.RecentIDs).
type LocalIDs interface {
	Seen(drain, id string) bool
	Mark(drain, id string, now time.Time) bool
}

// ClaimsConfig configures the claims.
type ClaimsConfig struct {
	Window  time.Duration // claims wait this long for others to join their round trip (0: none; claims arriving during a round trip share the next anyway)
	Timeout time.Duration // a claim Postgres has not answered in this long is decided in memory
	MaxIDs  int           // ids held for a later write while Postgres is unreachable
}

// Claims is the Deduper shared by the web dynos: a batch's id
// (Logplex-Frame-Id, or X-Request-Id) is claimed in Postgres (the table
// frames_seen) before its measurements count, so a retry that reaches another dyno at
// once, while the first attempt is still being counted, counts once.
//
// Claims from concurrent requests are group-committed: one INSERT … ON
// CONFLICT DO NOTHING RETURNING per Window per dyno, however many requests
// wait. Ids this dyno claimed are remembered in memory too, so a retry to
// the same dyno costs no round trip.
//
// While Postgres is unreachable (a claim unanswered for Timeout), claims are
// decided in memory, logged once, and written when it is back; meanwhile a
// retry that reaches another dyno may count twice. Degraded tells.
type Claims struct {
	cfg   ClaimsConfig
	local LocalIDs
	pool  *pgxpool.Pool
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	pending  []*claim
	backlog  []batchID // claimed in memory, to write when Postgres is back
	dropped  int
	wake     chan struct{}
	degraded atomic.Bool
	outage   *outage
}

type batchID struct{ drain, id string }

type claim struct {
	batchID
	fresh bool
	err   error
	done  chan struct{}
}

// NewClaims returns claims over local; start Run.
func NewClaims(cfg ClaimsConfig, pool *pgxpool.Pool, local LocalIDs, log *slog.Logger, now func() time.Time) *Claims {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxIDs <= 0 {
		cfg.MaxIDs = 200_000
	}
	return &Claims{cfg: cfg, local: local, pool: pool, log: log, now: now, wake: make(chan struct{}, 1),
		outage: newOutage(log, "dedup: Postgres failing; batch ids are claimed in this dyno's memory only (a retry reaching another dyno may count twice)",
			"dedup: Postgres works again; batch ids claimed in memory written")}
}

// Degraded reports whether claims are being decided in memory only.
func (c *Claims) Degraded() bool { return c.degraded.Load() }

// Claim claims the batch id for the drain and reports whether the claim is
// the first (drain.Deduper).
func (c *Claims) Claim(ctx context.Context, drain, id string, now time.Time) (bool, error) {
	if c.local.Seen(drain, id) {
		return false, nil
	}
	if c.degraded.Load() {
		return c.claimLocally(drain, id, now), nil
	}
	cl := &claim{batchID: batchID{drain, id}, done: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, cl)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	select {
	case <-cl.done:
		if cl.err == nil {
			if cl.fresh {
				c.local.Mark(drain, id, now)
			}
			return cl.fresh, nil
		}
	case <-t.C:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Postgres did not answer: decide here, write it later.
	c.degraded.Store(true)
	return c.claimLocally(drain, id, now), nil
}

func (c *Claims) claimLocally(drain, id string, now time.Time) bool {
	if !c.local.Mark(drain, id, now) {
		return false
	}
	c.mu.Lock()
	if len(c.backlog) >= c.cfg.MaxIDs {
		c.backlog = c.backlog[1:]
		c.dropped++
	}
	c.backlog = append(c.backlog, batchID{drain, id})
	c.mu.Unlock()
	return true
}

// Run commits claims as they come, writes the backlog while degraded, and
// deletes ids older than an hour every minute, until ctx is done; then it
// writes the backlog once more.
func (c *Claims) Run(ctx context.Context) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			c.failPending(ctx.Err())
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c.writeBacklog(fctx)
			cancel()
			return
		case <-c.wake:
			// No waiting: claims that arrive while one commit is in flight
			// are committed together by the next (group commit without a
			// delay when idle). Window only lets a burst gather.
			if c.cfg.Window > 0 {
				time.Sleep(c.cfg.Window)
			}
			c.commit(ctx)
		case <-retry.C:
			if c.degraded.Load() {
				c.writeBacklog(ctx)
			}
		case <-prune.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.pool.Exec(pctx, `DELETE FROM frames_seen WHERE seen_at < now() - interval '1 hour'`)
			cancel()
			if ctx.Err() == nil {
				c.outage.report(err)
			}
		}
	}
}

// commit claims the pending ids in one statement.
func (c *Claims) commit(ctx context.Context) {
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	// The same id twice in one batch (two copies of a batch at once): the
	// first claim decides, the others are duplicates.
	first := map[batchID]*claim{}
	var keys []batchID
	for _, cl := range batch {
		if first[cl.batchID] == nil {
			first[cl.batchID] = cl
			keys = append(keys, cl.batchID)
		}
	}
	// One order for every dyno: two dynos inserting the same ids in
	// different orders would deadlock (and fall back to memory).
	slices.SortFunc(keys, compareIDs)
	drains, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		drains[i], ids[i] = k.drain, k.id
	}
	qctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	won := map[batchID]bool{}
	rows, err := c.pool.Query(qctx, `INSERT INTO frames_seen (drain_id, frame_id)
		SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING RETURNING drain_id, frame_id`, drains, ids)
	if err == nil {
		for rows.Next() {
			var k batchID
			if err = rows.Scan(&k.drain, &k.id); err != nil {
				break
			}
			won[k] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if ctx.Err() == nil {
		c.outage.report(err)
	}
	if err != nil {
		err = fmt.Errorf("dedup: claim: %w", err)
	}
	for _, cl := range batch {
		cl.err = err
		cl.fresh = err == nil && first[cl.batchID] == cl && won[cl.batchID]
		close(cl.done)
	}
}

func (c *Claims) failPending(err error) {
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cl := range batch {
		cl.err = err
		close(cl.done)
	}
}

// writeBacklog writes the ids claimed in memory; once it succeeds, claims go
// to Postgres again.
func (c *Claims) writeBacklog(ctx context.Context) {
	c.mu.Lock()
	batch := c.backlog
	c.backlog = nil
	dropped := c.dropped
	c.dropped = 0
	c.mu.Unlock()
	if dropped > 0 {
		c.log.Warn("dedup: batch ids dropped while Postgres was failing; retries of those batches may count twice", "ids", dropped)
	}
	var err error
	if len(batch) > 0 {
		sorted := slices.Clone(batch)
		slices.SortFunc(sorted, compareIDs)
		drains, ids := make([]string, len(sorted)), make([]string, len(sorted))
		for i, b := range sorted {
			drains[i], ids[i] = b.drain, b.id
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.pool.Exec(wctx, `INSERT INTO frames_seen (drain_id, frame_id)
			SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`, drains, ids)
		cancel()
	} else {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.pool.Ping(pctx)
		cancel()
	}
	if ctx.Err() == nil {
		c.outage.report(err)
	}
	if err != nil {
		c.mu.Lock()
		c.backlog = append(batch, c.backlog...)
		if over := len(c.backlog) - c.cfg.MaxIDs; over > 0 {
			c.backlog = c.backlog[over:]
			c.dropped += over
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	empty := len(c.backlog) == 0
	c.mu.Unlock()
	if empty {
		c.degraded.Store(false)
	}
}

// compareIDs orders ids by drain, then id: the one order in which every
// dyno inserts them.
func compareIDs(a, b batchID) int {
	if c := strings.Compare(a.drain, b.drain); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}
