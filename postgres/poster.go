package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Reloader is a Destinations that can reload a drain now, bypassing its
// cache (when a lane's outlet is newer in the database than in the cache).
type Reloader interface {
	outlet.Destinations
	Reload(ctx context.Context, id string) (*outlet.Destination, bool, error)
}

// PosterConfig configures the durable lanes.
type PosterConfig struct {
	Owner     string        // WriterID
	Lease     time.Duration // a lane's lease lasts this long unless renewed; then another dyno may take it
	Workers   int           // lanes posting at once in this process
	Poll      time.Duration // how often to look for lanes with work
	Retention time.Duration // sealed minutes, shifts and gone writers are kept at most this long
	// StatusRetention is how long the status pages' per-minute counters
	// are kept (STATUS_RETENTION).
	StatusRetention time.Duration
	// Totals is the memory budget's share for running totals: a lane's
	// totals after the minute it posts are charged to it while it posts;
	// a lane whose totals do not fit forgets the series that moved longest
	// ago (outlet.Totals.Charge) before they are stored. nil: no limit.
	Totals *budget.Share
}

// Poster runs the lanes in the durable mode: every web runs one, and each
// (drain, outlet) lane is leased by one of them at a time (FOR UPDATE SKIP
// LOCKED), so its minutes go out strictly in order with one request in
// flight, whichever dyno posts them. A worker leases a lane, posts its next
// sealed minute (rebuilt from the sealed data and the running totals stored
// with the lane: identical bodies whoever builds them), records progress
// after every accepted request, and releases the lane; the lane that has
// waited longest goes next, so one drain's backlog does not hold up others.
//
// A dyno that dies mid-minute leaves the lane leased until the lease
// expires; the next dyno resumes at the first request not recorded as
// accepted. At most the one request in flight at the crash is sent twice.
// A worker stops sending when its lease is about to run out (a dyno cut off
// from Postgres), so two dynos never post one lane at once.
type Poster struct {
	cfg   PosterConfig
	pool  *pgxpool.Pool
	send  *outlet.Sender
	dest  Reloader
	stats *stats.Registry
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	leases map[laneKey]time.Time // the lanes this process holds, and until when (local clock, conservative)
	wake   chan struct{}
	outage *outage
}

type laneKey struct {
	drain, outlet string
}

// NewPoster returns a poster; start Run.
func NewPoster(cfg PosterConfig, pool *pgxpool.Pool, send *outlet.Sender, dest Reloader, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Poster {
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.StatusRetention <= 0 {
		cfg.StatusRetention = 24 * time.Hour
	}
	return &Poster{cfg: cfg, pool: pool, send: send, dest: dest, stats: reg, log: log, now: now,
		leases: map[laneKey]time.Time{}, wake: make(chan struct{}, 1),
		outage: newOutage(log, "lanes: Postgres failing; posting waits until it works again", "lanes: Postgres works again")}
}

// Wake makes idle workers look for work now (a minute was sealed).
func (p *Poster) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run posts until stop is closed; a request in flight then finishes (within
// OUTLET_TIMEOUT) and its progress is recorded, unless ctx ends first.
func (p *Poster) Run(ctx context.Context, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx, stop)
		}()
	}
	renew := time.NewTicker(p.cfg.Lease / 4)
	defer renew.Stop()
	clean := time.NewTicker(time.Minute)
	defer clean.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-renew.C:
			p.renew(ctx)
		case <-clean.C:
			p.clean(ctx)
		}
	}
}

func (p *Poster) work(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		lc, err := p.claim(ctx)
		if ctx.Err() == nil {
			p.outage.report(err)
		}
		if err == nil && lc != nil {
			p.post(ctx, stop, lc)
			continue
		}
		t := time.NewTimer(p.cfg.Poll)
		select {
		case <-stop:
		case <-ctx.Done():
		case <-p.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// laneClaim is a leased lane as the database has it.
type laneClaim struct {
	key           laneKey
	postedThrough *int64
	chunkMinute   *int64
	chunk         int     // request of chunkMinute to send next, as first built ...
	splitAt       []int64 // ... less its first items (after a split): {minute, request, items}
	encoding      string
	totals        []byte
	attempts      int
	state         string
	outletVersion *int64
	uncertain     int // times the request at chunk was sent without an answer
	pauseReason   string
}

const claimLaneSQL = `UPDATE lanes l SET lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond'
FROM (
    SELECT l2.drain_id, l2.outlet FROM lanes l2
    LEFT JOIN outlets o ON o.drain_id = l2.drain_id AND o.kind = l2.outlet
    WHERE (l2.lease_until IS NULL OR l2.lease_until < now())
      AND (l2.next_attempt <= now()
           OR (l2.state = 'paused' AND o.version IS NOT NULL AND l2.paused_version IS DISTINCT FROM o.version::text))
      AND EXISTS (SELECT 1 FROM minutes m WHERE m.drain_id = l2.drain_id AND m.sealed_at IS NOT NULL
                  AND m.minute > coalesce(l2.posted_through, -1))
    ORDER BY l2.next_attempt
    LIMIT 1
    FOR UPDATE OF l2 SKIP LOCKED
) c
WHERE l.drain_id = c.drain_id AND l.outlet = c.outlet AND (l.lease_until IS NULL OR l.lease_until < now())
RETURNING l.drain_id, l.outlet, l.posted_through, l.chunk_minute, l.chunk, l.split_at, l.encoding, l.totals, l.attempts, l.state,
    (SELECT version FROM outlets o WHERE o.drain_id = l.drain_id AND o.kind = l.outlet), l.uncertain, coalesce(l.pause_reason, '')`

// claim leases the lane that has waited longest and has a sealed minute to post.
func (p *Poster) claim(ctx context.Context) (*laneClaim, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	deadline := p.now().Add(p.cfg.Lease)
	var lc laneClaim
	err := p.pool.QueryRow(ctx, claimLaneSQL, p.cfg.Owner, p.cfg.Lease.Milliseconds()).Scan(
		&lc.key.drain, &lc.key.outlet, &lc.postedThrough, &lc.chunkMinute, &lc.chunk, &lc.splitAt, &lc.encoding, &lc.totals,
		&lc.attempts, &lc.state, &lc.outletVersion, &lc.uncertain, &lc.pauseReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lanes: claim: %w", err)
	}
	p.mu.Lock()
	p.leases[lc.key] = deadline
	p.mu.Unlock()
	return &lc, nil
}

// leaseLeft returns how long this process may still act on the lane.
func (p *Poster) leaseLeft(k laneKey) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leases[k].Sub(p.now())
}

// outletOf finds the lane's outlet as configured now, reloading the drain
// when the database has a newer version than the cache.
func (p *Poster) outletOf(ctx context.Context, lc *laneClaim) (*outlet.Destination, *outlet.Outlet, error) {
	d, ok := p.dest.Destination(lc.key.drain)
	var o *outlet.Outlet
	if ok {
		o, ok = d.Outlet(outlet.Kind(lc.key.outlet))
	}
	if lc.outletVersion != nil && (!ok || o.Version < *lc.outletVersion) {
		var err error
		if d, ok, err = p.dest.Reload(ctx, lc.key.drain); err != nil {
			return nil, nil, err
		}
		if ok {
			o, ok = d.Outlet(outlet.Kind(lc.key.outlet))
		}
	}
	if !ok {
		return d, nil, nil
	}
	return d, o, nil
}

// post posts the lane's next minute, or as much of it as it can now.
func (p *Poster) post(ctx context.Context, stop <-chan struct{}, lc *laneClaim) {
	defer func() {
		p.mu.Lock()
		delete(p.leases, lc.key)
		p.mu.Unlock()
	}()
	d, o, mn, ok := p.load(ctx, lc)
	if !ok {
		return
	}
	key := o.EncodingKey()
	job, ok := p.build(lc, d, o, mn, key)
	if !ok {
		return
	}
	// The minute's requests are built: trimming the totals now changes only
	// what is stored for the next minute, never a body sent (or resent).
	charged, forgot := job.Totals.Charge(p.cfg.Totals, 0, mn.Start)
	defer p.cfg.Totals.Release(charged)
	if forgot > 0 {
		p.log.Warn("lanes: running totals trimmed to fit the memory budget's totals share; those counters restart from 0 when they come back",
			"drain", d.ID, "outlet", o.Kind, "series", forgot, "share", p.cfg.Totals.String())
	}
	p.sendJob(ctx, stop, lc, d, o, mn, job, key)
}

// load returns the lane's drain, outlet and next minute; ok=false when
// there is nothing to post now (the lane is released for later, or removed
// with its outlet).
func (p *Poster) load(ctx context.Context, lc *laneClaim) (d *outlet.Destination, o *outlet.Outlet, mn *rollup.Minute, ok bool) {
	d, o, err := p.outletOf(ctx, lc)
	if err != nil {
		p.log.Warn("lanes: cannot load the drain's outlets; later", "drain", lc.key.drain, "err", err)
		p.release(lc.key, laneUpdate{wait: 5 * time.Second, attempts: lc.attempts, state: lc.state})
		return nil, nil, nil, false
	}
	if o == nil {
		// The outlet was removed (or the drain is unknown here): its lane goes.
		p.log.Info("lanes: the drain no longer has this outlet; its lane is removed", "drain", lc.key.drain, "outlet", lc.key.outlet)
		p.exec(`DELETE FROM lanes WHERE drain_id = $1 AND outlet = $2 AND lease_owner = $3`, lc.key.drain, lc.key.outlet, p.cfg.Owner)
		return nil, nil, nil, false
	}
	mn, err = p.nextMinute(ctx, lc)
	if err != nil || mn == nil {
		if err != nil {
			p.log.Error("lanes: cannot read the next minute", "drain", lc.key.drain, "err", err)
		}
		p.release(lc.key, laneUpdate{wait: p.cfg.Poll, attempts: lc.attempts, state: lc.state})
		return nil, nil, nil, false
	}
	return d, o, mn, true
}

// build encodes the minute for the outlet (key: its encoding), resumed at
// the request the lane recorded when it was cut off in the middle of this
// minute; ok=false when the minute cannot be built (it is dropped, and
// counted).
func (p *Poster) build(lc *laneClaim, d *outlet.Destination, o *outlet.Outlet, mn *rollup.Minute, key string) (job *outlet.Job, ok bool) {
	var prev *outlet.Totals
	var err error
	if outlet.SameTotals(lc.encoding, key) && lc.totals != nil {
		if prev, err = outlet.DecodeTotals(lc.totals); err != nil {
			p.log.Error("lanes: running totals unreadable; starting them anew", "drain", d.ID, "outlet", o.Kind, "err", err)
			prev = nil
		}
	}
	job, err = p.send.Build(d, o, mn, prev)
	if err != nil {
		p.log.Error("lanes: cannot build the minute; dropped", "drain", d.ID, "outlet", o.Kind, "err", err)
		p.stats.Drain(d.ID).Add(stats.PostDropped, uint64(len(mn.Series)))
		p.finish(lc.key, mn.Start, nil, "", laneUpdate{state: string(outlet.StateGivingUp), lastError: err.Error(), dropped: uint64(len(mn.Series))})
		return nil, false
	}
	if lc.chunkMinute != nil && *lc.chunkMinute == mn.Start && lc.encoding == key {
		items := 0
		if s := lc.splitAt; len(s) == 3 && s[0] == mn.Start && s[1] == int64(lc.chunk) {
			items = int(s[2])
		}
		p.send.Resume(o, job, lc.chunk, items)
		// The same request as recorded: so many copies of it may have
		// arrived already, whichever dyno sent them.
		job.SetUncertain(lc.uncertain)
	}
	return job, true
}

// sendJob sends the minute's requests one by one, recording the lane's
// progress after each, until it is finished, must wait (a retry, a pause),
// is stopped, or the lease is about to pass to another dyno.
func (p *Poster) sendJob(ctx context.Context, stop <-chan struct{}, lc *laneClaim, d *outlet.Destination, o *outlet.Outlet, mn *rollup.Minute, job *outlet.Job, key string) {
	st := outlet.Status{State: outlet.State(lc.state)}
	if st.State == outlet.StatePaused {
		st.PauseReason = lc.pauseReason
	}
	attempts := lc.attempts
	var counted outlet.Status // counters already recorded
	delta := func() laneUpdate {
		u := laneUpdate{state: string(st.State), lastError: st.LastError, lastErrorAt: st.LastErrorAt, lastPostAt: st.LastPostAt,
			posted: st.Posted - counted.Posted, rejected: st.Rejected - counted.Rejected, dropped: st.Dropped - counted.Dropped,
			postUncertain: st.Uncertain - counted.Uncertain, uncertain: job.Uncertain(), pauseReason: st.PauseReason}
		counted = st
		return u
	}
	for {
		if left := p.leaseLeft(lc.key); left < p.send.Config().Timeout+5*time.Second {
			// Cut off from Postgres long enough that the lease may pass to
			// another dyno: stop sending.
			p.log.Warn("lanes: lease about to expire; stopping", "drain", d.ID, "outlet", o.Kind, "left", left.Round(time.Millisecond))
			u := delta()
			u.chunkMinute, u.encoding, u.attempts, u.wait = &job.Minute, key, attempts, time.Second
			u.chunk, u.chunkItems = job.Position()
			p.release(lc.key, u)
			return
		}
		// The request itself is not cancelled by stop: it finishes and is recorded.
		step := p.send.Step(ctx, d, o, job, &st, attempts)
		switch step.Action {
		case outlet.Continue:
			attempts = 0
			u := delta()
			u.chunkMinute, u.encoding = &job.Minute, key
			u.chunk, u.chunkItems = job.Position()
			if err := p.progress(lc.key, u); err != nil {
				// Progress could not be recorded: stop here; whoever takes
				// the lane resends from the last recorded request.
				p.log.Warn("lanes: cannot record progress; stopping", "drain", d.ID, "outlet", o.Kind, "err", err)
				return
			}
			select {
			case <-stop:
				u := laneUpdate{chunkMinute: &job.Minute, encoding: key, state: string(st.State), uncertain: job.Uncertain()}
				u.chunk, u.chunkItems = job.Position()
				p.release(lc.key, u)
				return
			default:
			}
		case outlet.Finished:
			u := delta()
			var totals []byte
			if job.Totals != nil {
				totals = job.Totals.AppendBinary(nil)
			}
			p.finish(lc.key, mn.Start, totals, key, u)
			p.Wake() // the lane may have more
			return
		case outlet.Wait:
			u := delta()
			u.chunkMinute, u.encoding, u.attempts, u.wait = &job.Minute, key, st.Attempts, step.Wait
			u.chunk, u.chunkItems = job.Position()
			if st.State == outlet.StatePaused {
				v := pausedVersion(o)
				u.pausedVersion = &v
			}
			p.release(lc.key, u)
			return
		}
	}
}

// pausedVersion names the outlet configuration whose credentials were
// refused: a change of it makes the lane try again at once.
func pausedVersion(o *outlet.Outlet) string {
	if o.Version > 0 {
		return strconv.FormatInt(o.Version, 10)
	}
	return "fp:" + o.Fingerprint()
}

// nextMinute reads the lane's next sealed minute, nil if there is none.
func (p *Poster) nextMinute(ctx context.Context, lc *laneClaim) (*rollup.Minute, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	after := int64(-1)
	if lc.postedThrough != nil {
		after = *lc.postedThrough
	}
	var minute int64
	var data []byte
	err := p.pool.QueryRow(ctx, `SELECT minute, data FROM minutes WHERE drain_id = $1 AND minute > $2 AND sealed_at IS NOT NULL
		ORDER BY minute LIMIT 1`, lc.key.drain, after).Scan(&minute, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rollup.DecodeMinute(lc.key.drain, minute, data)
}

// laneUpdate is what a worker records of a lane.
type laneUpdate struct {
	chunkMinute   *int64
	chunk         int
	chunkItems    int
	encoding      string
	attempts      int
	wait          time.Duration
	state         string
	pausedVersion *string
	lastError     string
	lastErrorAt   time.Time
	lastPostAt    time.Time
	posted        uint64
	rejected      uint64
	dropped       uint64
	postUncertain uint64 // measurements sent without an answer
	uncertain     int    // times the next request was sent without an answer
	pauseReason   string // while paused
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// splitAt is what lanes.split_at records of u: nil unless u stands inside
// a split request.
func (u laneUpdate) splitAt() []int64 {
	if u.chunkMinute == nil || u.chunkItems == 0 {
		return nil
	}
	return []int64{*u.chunkMinute, int64(u.chunk), int64(u.chunkItems)}
}

// progress records accepted requests of the minute being posted.
func (p *Poster) progress(k laneKey, u laneUpdate) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tag, err := p.pool.Exec(ctx, `UPDATE lanes SET chunk_minute = $4, chunk = $5, encoding = $6, attempts = 0, state = $7,
		last_post_at = coalesce($8, last_post_at), posted = posted + $9, rejected = rejected + $10, dropped = dropped + $11,
		last_error = coalesce($12, last_error), last_error_at = coalesce($13, last_error_at), split_at = $14,
		uncertain = $15, post_uncertain = post_uncertain + $16, pause_reason = NULL
		WHERE drain_id = $1 AND outlet = $2 AND lease_owner = $3`,
		k.drain, k.outlet, p.cfg.Owner, u.chunkMinute, u.chunk, u.encoding, u.state, nullTime(u.lastPostAt),
		int64(u.posted), int64(u.rejected), int64(u.dropped), nullString(u.lastError), nullTime(u.lastErrorAt), u.splitAt(),
		u.uncertain, int64(u.postUncertain))
	p.outage.report(err)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errors.New("lease lost")
	}
	return nil
}

// finish records that the lane's minute is done (posted or given up) and
// releases the lane; the running totals go with it.
func (p *Poster) finish(k laneKey, minute int64, totals []byte, encoding string, u laneUpdate) {
	p.exec(`UPDATE lanes SET posted_through = $4, chunk_minute = NULL, chunk = 0, split_at = NULL, encoding = $5, totals = $6,
		attempts = 0, state = $7, paused_version = NULL, next_attempt = now(), lease_owner = NULL, lease_until = NULL,
		last_post_at = coalesce($8, last_post_at), posted = posted + $9, rejected = rejected + $10, dropped = dropped + $11,
		last_error = coalesce($12, last_error), last_error_at = coalesce($13, last_error_at),
		uncertain = 0, post_uncertain = post_uncertain + $14, pause_reason = NULL
		WHERE drain_id = $1 AND outlet = $2 AND lease_owner = $3`,
		k.drain, k.outlet, p.cfg.Owner, minute, encoding, totals, u.state, nullTime(u.lastPostAt),
		int64(u.posted), int64(u.rejected), int64(u.dropped), nullString(u.lastError), nullTime(u.lastErrorAt), int64(u.postUncertain))
}

// release gives the lane back, to be tried again after u.wait.
func (p *Poster) release(k laneKey, u laneUpdate) {
	p.exec(`UPDATE lanes SET chunk_minute = coalesce($4, chunk_minute), chunk = CASE WHEN $4::bigint IS NULL THEN chunk ELSE $5 END,
		split_at = CASE WHEN $4::bigint IS NULL THEN split_at ELSE $17 END,
		encoding = CASE WHEN $6 = '' THEN encoding ELSE $6 END, attempts = $7,
		next_attempt = now() + $8 * interval '1 millisecond', state = $9, paused_version = coalesce($10, paused_version),
		lease_owner = NULL, lease_until = NULL,
		last_post_at = coalesce($11, last_post_at), posted = posted + $12, rejected = rejected + $13, dropped = dropped + $14,
		last_error = coalesce($15, last_error), last_error_at = coalesce($16, last_error_at),
		uncertain = CASE WHEN $4::bigint IS NULL THEN uncertain ELSE $18 END, post_uncertain = post_uncertain + $19,
		pause_reason = CASE WHEN $9 = 'paused' THEN coalesce($20, pause_reason) END
		WHERE drain_id = $1 AND outlet = $2 AND lease_owner = $3`,
		k.drain, k.outlet, p.cfg.Owner, u.chunkMinute, u.chunk, u.encoding, u.attempts, u.wait.Milliseconds(), u.state,
		u.pausedVersion, nullTime(u.lastPostAt), int64(u.posted), int64(u.rejected), int64(u.dropped),
		nullString(u.lastError), nullTime(u.lastErrorAt), u.splitAt(), u.uncertain, int64(u.postUncertain), nullString(u.pauseReason))
}

// exec runs a statement that ends a worker's hold on a lane. If Postgres
// cannot be reached the lease simply expires and another worker resumes
// from the last recorded progress.
func (p *Poster) exec(sql string, args ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.pool.Exec(ctx, sql, args...)
	p.outage.report(err)
}

// renew extends the leases of the lanes this process holds.
func (p *Poster) renew(ctx context.Context) {
	p.mu.Lock()
	n := len(p.leases)
	p.mu.Unlock()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	deadline := p.now().Add(p.cfg.Lease)
	rows, err := p.pool.Query(ctx, `UPDATE lanes SET lease_until = now() + $2 * interval '1 millisecond'
		WHERE lease_owner = $1 RETURNING drain_id, outlet`, p.cfg.Owner, p.cfg.Lease.Milliseconds())
	if err != nil {
		p.outage.report(err)
		return
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (laneKey, error) {
		var k laneKey
		err := r.Scan(&k.drain, &k.outlet)
		return k, err
	})
	p.outage.report(err)
	p.mu.Lock()
	for _, k := range keys {
		if _, ok := p.leases[k]; ok {
			p.leases[k] = deadline
		}
	}
	p.mu.Unlock()
}

// clean deletes sealed minutes every lane has posted (or that are past the
// retention), and old shifts and writers; and creates the missing lanes of
// drains with sealed minutes.
func (p *Poster) clean(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ret := p.cfg.Retention.Milliseconds()
	cleanups := []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM minutes m WHERE m.sealed_at IS NOT NULL AND m.sealed_at < now() - interval '1 minute'
		   AND EXISTS (SELECT 1 FROM lanes l WHERE l.drain_id = m.drain_id)
		   AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.drain_id = m.drain_id AND coalesce(l.posted_through, -1) < m.minute)`, nil},
		{`DELETE FROM minutes WHERE coalesce(sealed_at, done_at, ready_at) < now() - $1 * interval '1 millisecond'`, []any{ret}},
		{`DELETE FROM shifts WHERE at < now() - $1 * interval '1 millisecond'`, []any{ret}},
		{`DELETE FROM writers WHERE heartbeat_at < now() - greatest($1 * interval '1 millisecond', interval '1 hour')`, []any{ret}},
		{`DELETE FROM drain_counters WHERE minute < extract(epoch FROM now())::bigint - $1`, []any{int64(p.cfg.StatusRetention / time.Second)}},
	}
	for _, sql := range explorerCleanup() {
		cleanups = append(cleanups, struct {
			sql  string
			args []any
		}{sql, []any{int64(p.cfg.StatusRetention / time.Second)}})
	}
	for _, q := range cleanups {
		if _, err := p.pool.Exec(ctx, q.sql, q.args...); err != nil {
			p.outage.report(err)
			return
		}
	}
	rows, err := p.pool.Query(ctx, `SELECT DISTINCT m.drain_id FROM minutes m WHERE m.sealed_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.drain_id = m.drain_id)`)
	if err != nil {
		p.outage.report(err)
		return
	}
	drains, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		p.outage.report(err)
		return
	}
	for _, d := range drains {
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return ensureLanes(ctx, tx, p.dest, d) })
		p.outage.report(err)
	}
}

// ResumeBuiltin makes paused lanes of the built-in drain try again when
// its outlets' configuration (config vars) is not the one that was refused.
func (p *Poster) ResumeBuiltin(ctx context.Context, drain string, outlets []outlet.Outlet) error {
	for i := range outlets {
		o := &outlets[i]
		if _, err := p.pool.Exec(ctx, `UPDATE lanes SET next_attempt = now() WHERE drain_id = $1 AND outlet = $2
			AND state = 'paused' AND paused_version IS DISTINCT FROM $3`, drain, string(o.Kind), pausedVersion(o)); err != nil {
			return fmt.Errorf("lanes: %w", err)
		}
	}
	return nil
}
