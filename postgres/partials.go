package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// WriterID names this process in the partials it writes and the lanes it
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
	Writer   string        // WriterID
	Grace    time.Duration // the store's GRACE: a minute closes this long after it ends
	Silence  time.Duration // WRITER_TIMEOUT: a writer silent this long holds no minute back
	MaxBytes int           // partials held in memory while Postgres is unreachable; beyond, the oldest are dropped
}

// Partials writes partial minutes to Postgres: it is the rollup's Sink in
// the durable mode. Closed only encodes and queues; Run writes the queue in
// batches, one transaction each, and with it the writer's watermark: how far
// this process has closed and written its minutes (Swept tells it). A minute
// is sealed and posted once every live writer's watermark has passed it.
//
// A partial whose minute was already sealed when it reached Postgres (this
// process lost its connection for longer than WRITER_TIMEOUT, say) is not
// dropped: it is written to the drain's next unsealed minute and counted as
// late_shifted, so totals stay exact.
//
// While Postgres is unreachable the queue is kept, up to MaxBytes, and
// retried; the watermark then stays where it was.
type Partials struct {
	cfg   PartialsConfig
	pool  *pgxpool.Pool
	stats *stats.Registry
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	queue    []partialRow
	bytes    int
	dropped  uint64
	swept    int64 // every minute starting at or before this is closed and queued
	counters map[counterKey]stats.Snapshot
	activity map[string]activity
	open     map[string]int
	wake     chan struct{}
	outage   *outage
	health   *DBHealth // told of every write; nil: none
	// unwritten is the start of the oldest minute whose partials or
	// status counters a failed write had to keep for the next; 0 once a
	// write succeeds.
	unwritten int64
}

type counterKey struct {
	drain  string
	minute int64
}

type activity struct {
	lastBatch time.Time
	apps      []string
}

type partialRow struct {
	drain        string
	minute       int64
	data         []byte
	measurements uint64
}

// NewPartials returns a writer; call Register, then start Run.
func NewPartials(cfg PartialsConfig, pool *pgxpool.Pool, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Partials {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.Silence <= 0 {
		cfg.Silence = time.Minute
	}
	return &Partials{cfg: cfg, pool: pool, stats: reg, log: log, now: now, wake: make(chan struct{}, 1),
		counters: map[counterKey]stats.Snapshot{}, activity: map[string]activity{}, open: map[string]int{},
		swept:  rollup.ClosedThrough(now(), cfg.Grace),
		outage: newOutage(log, "partials: cannot write to Postgres; holding them in memory", "partials: Postgres writes succeed again; caught up")}
}

// Register records this writer. A new process has closed every minute it
// can no longer accept lines for (those that ended GRACE ago).
func (p *Partials) Register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.mu.Lock()
	w := p.swept
	p.mu.Unlock()
	_, err := p.pool.Exec(ctx, `INSERT INTO writers (id, closed_through) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET closed_through = excluded.closed_through, heartbeat_at = now(), gone_at = NULL`,
		p.cfg.Writer, w)
	if err != nil {
		return fmt.Errorf("partials: register writer: %w", err)
	}
	return nil
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
	p.signal()
}

// Record queues what this process's counters did (stats.Recorder's
// deltas) at now, and its open series per drain, for the status pages: they
// are added to Postgres with the next write, every dyno's summed.
func (p *Partials) Record(now time.Time, deltas []stats.Delta, open map[string]int) {
	minute := rollup.FloorMinute(now.Unix())
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range deltas {
		k := counterKey{d.Drain, minute}
		c := p.counters[k]
		for i := range c {
			c[i] += d.Counts[i]
		}
		p.counters[k] = c
		a := p.activity[d.Drain]
		if d.LastBatch.After(a.lastBatch) {
			a.lastBatch = d.LastBatch
		}
		a.apps = d.Apps
		p.activity[d.Drain] = a
	}
	p.open = open
}

// Swept records that the store closed every minute it could at now and
// handed them to Closed: the watermark the next write records.
func (p *Partials) Swept(now time.Time) {
	w := rollup.ClosedThrough(now, p.cfg.Grace)
	p.mu.Lock()
	if w > p.swept {
		p.swept = w
	}
	p.mu.Unlock()
}

// SweptAll records that every minute is closed (at shutdown, after
// FlushAll): this writer holds nothing back any more.
func (p *Partials) SweptAll() {
	p.mu.Lock()
	p.swept = math.MaxInt64
	p.mu.Unlock()
}

func (p *Partials) signal() {
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

// ReportTo makes every write's outcome known to h (the database state of
// /health and the status page). Call it before Run.
func (p *Partials) ReportTo(h *DBHealth) { p.health = h }

// Unwritten returns the start of the oldest minute whose partials or status
// counters are held in memory because writes fail (the per-minute figures
// from it on are not yet recorded), and whether there is one.
func (p *Partials) Unwritten() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unwritten == 0 {
		return time.Time{}, false
	}
	return time.Unix(p.unwritten, 0).UTC(), true
}

// Queued returns the partials and bytes waiting to be written.
func (p *Partials) Queued() (n, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue), p.bytes
}

// Run writes queued partials and the watermark every second (at once when
// minutes are queued), until ctx is done.
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
		_ = p.flush(ctx) // kept for the next tick; an outage is logged once
	}
}

// Flush writes everything queued now, and the watermark.
func (p *Partials) Flush(ctx context.Context) error { return p.flush(ctx) }

// Close writes what is left and records that this writer is gone, so that
// it holds no minute back.
func (p *Partials) Close(ctx context.Context) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.pool.Exec(ctx, `UPDATE writers SET gone_at = now() WHERE id = $1`, p.cfg.Writer); err != nil {
		return fmt.Errorf("partials: %w", err)
	}
	return nil
}

func (p *Partials) flush(ctx context.Context) error {
	p.mu.Lock()
	batch := p.queue
	p.queue, p.bytes = nil, 0
	swept := p.swept
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Error("partials dropped: Postgres took no writes for longer than the buffer holds", "measurements", dropped)
	}
	p.mu.Lock()
	st := statusRows{counters: p.counters, activity: p.activity, open: p.open}
	p.counters, p.activity = map[counterKey]stats.Snapshot{}, map[string]activity{}
	p.mu.Unlock()
	err := p.write(ctx, batch, swept, st)
	if err != nil {
		p.requeue(batch)
		p.requeueStatus(st)
		p.heldBack(batch, st)
	} else {
		p.mu.Lock()
		p.unwritten = 0
		p.mu.Unlock()
	}
	if ctx.Err() != nil && err != nil {
		return err // cancelled (shutdown): not an outage; the caller flushes again
	}
	p.outage.report(err)
	if p.health != nil {
		p.health.Wrote(err)
	}
	return err
}

// heldBack records the oldest minute a failed write kept in memory.
func (p *Partials) heldBack(batch []partialRow, st statusRows) {
	oldest := int64(0)
	older := func(m int64) {
		if oldest == 0 || m < oldest {
			oldest = m
		}
	}
	for _, r := range batch {
		older(r.minute)
	}
	for k := range st.counters {
		older(k.minute)
	}
	if oldest == 0 {
		return
	}
	p.mu.Lock()
	if p.unwritten == 0 || oldest < p.unwritten {
		p.unwritten = oldest
	}
	p.mu.Unlock()
}

// statusRows are the status counters a write adds.
type statusRows struct {
	counters map[counterKey]stats.Snapshot
	activity map[string]activity
	open     map[string]int
}

func (p *Partials) requeueStatus(st statusRows) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range st.counters {
		cur := p.counters[k]
		for i := range cur {
			cur[i] += c[i]
		}
		p.counters[k] = cur
	}
	for d, a := range st.activity {
		cur := p.activity[d]
		if a.lastBatch.After(cur.lastBatch) {
			cur.lastBatch = a.lastBatch
		}
		if cur.apps == nil {
			cur.apps = a.apps
		}
		p.activity[d] = cur
	}
}

// writeStatus adds the status counters in tx.
func (p *Partials) writeStatus(ctx context.Context, tx pgx.Tx, st statusRows) error {
	if len(st.counters) > 0 {
		var drains []string
		var minutes []int64
		var counts [][]byte
		// In one order for every dyno (they upsert the same rows): no deadlocks.
		keys := slices.SortedFunc(maps.Keys(st.counters), func(a, b counterKey) int {
			if c := strings.Compare(a.drain, b.drain); c != 0 {
				return c
			}
			return cmp.Compare(a.minute, b.minute)
		})
		for _, k := range keys {
			c := st.counters[k]
			obj := map[string]uint64{}
			for i, v := range c {
				if v != 0 {
					obj[stats.Counter(i).String()] = v
				}
			}
			if len(obj) == 0 {
				continue
			}
			b, _ := json.Marshal(obj)
			drains, minutes, counts = append(drains, k.drain), append(minutes, k.minute), append(counts, b)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO drain_counters (drain_id, minute, counters)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[])
			ON CONFLICT (drain_id, minute) DO UPDATE SET counters = drainmeter_add_counts(drain_counters.counters, excluded.counters)`,
			drains, minutes, counts); err != nil {
			return err
		}
	}
	for _, d := range slices.Sorted(maps.Keys(st.activity)) {
		a := st.activity[d]
		var last *time.Time
		if !a.lastBatch.IsZero() {
			last = &a.lastBatch
		}
		apps := a.apps
		if apps == nil {
			apps = []string{}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO drain_activity (drain_id, last_batch_at, apps) VALUES ($1, $2, $3)
			ON CONFLICT (drain_id) DO UPDATE SET last_batch_at = greatest(drain_activity.last_batch_at, excluded.last_batch_at),
				apps = (SELECT coalesce(array_agg(DISTINCT a ORDER BY a), '{}') FROM (
					SELECT unnest(drain_activity.apps || excluded.apps) AS a LIMIT 32) t)`,
			d, last, apps); err != nil {
			return err
		}
	}
	open, _ := json.Marshal(st.open)
	if st.open == nil {
		open = []byte("{}")
	}
	_, err := tx.Exec(ctx, `UPDATE writers SET open_series = $2 WHERE id = $1`, p.cfg.Writer, open)
	return err
}

func (p *Partials) requeue(batch []partialRow) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = append(batch, p.queue...)
	for _, r := range batch {
		p.bytes += len(r.data)
	}
	p.trimLocked()
}

// idleTxTimeout bounds how long Postgres keeps a transaction of a web open
// while nothing arrives from it. A dyno cut off from Postgres in the middle
// of a transaction (a network partition) would otherwise keep its row
// locks — the drains' rollup rows, their status counters — until the server
// learns that the connection is dead: the whole partition, or hours of TCP
// keepalive if the dyno dies meanwhile; and no minute of those drains could
// be sealed, nor partials written, by any dyno. The transactions here take
// milliseconds.
const idleTxTimeout = 10 * time.Second

// boundIdleTx is the first statement of each of those transactions (SET
// LOCAL: it ends with the transaction, so it is safe behind a
// transaction-pooling bouncer).
var boundIdleTx = fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", idleTxTimeout.Milliseconds())

type shift struct {
	drain        string
	from, to     int64
	measurements uint64
}

// write writes a batch of partials, the status counters and the watermark
// in one transaction.
func (p *Partials) write(ctx context.Context, batch []partialRow, swept int64, st statusRows) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if len(batch) == 0 {
		return p.heartbeat(ctx, swept, st)
	}
	drains := sortByDrain(batch)
	var shifts []shift
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		shifts = shifts[:0]
		if _, err := tx.Exec(ctx, boundIdleTx); err != nil {
			return err
		}
		sealed, err := sealedThrough(ctx, tx, drains)
		if err != nil {
			return err
		}
		w, err := watermark(ctx, tx, p.cfg.Silence, p.now(), p.cfg.Grace)
		if err != nil {
			return err
		}
		if shifts, err = p.insertPartials(ctx, tx, batch, sealed, w, shifts); err != nil {
			return err
		}
		if err := p.writeStatus(ctx, tx, st); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE writers SET closed_through = greatest(closed_through, $2), heartbeat_at = now(), gone_at = NULL
			WHERE id = $1`, p.cfg.Writer, swept)
		return err
	})
	if err != nil {
		return fmt.Errorf("partials: %w", err)
	}
	for _, s := range shifts {
		p.stats.Drain(s.drain).Add(stats.LateShifted, s.measurements)
		p.log.Warn("partial arrived after its minute was sealed; posted with a later minute", "drain", s.drain,
			"minute", rollup.MinuteString(s.from), "posted_with", rollup.MinuteString(s.to), "measurements", s.measurements)
	}
	return nil
}

// heartbeat writes the status counters and the watermark, without
// partials, in one transaction.
func (p *Partials) heartbeat(ctx context.Context, swept int64, st statusRows) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, boundIdleTx); err != nil {
			return err
		}
		if err := p.writeStatus(ctx, tx, st); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE writers SET closed_through = greatest(closed_through, $2), heartbeat_at = now(), gone_at = NULL
				WHERE id = $1`, p.cfg.Writer, swept)
		return err
	})
	if err != nil {
		return fmt.Errorf("partials: heartbeat: %w", err)
	}
	return nil
}

// sortByDrain sorts a batch by drain, then minute, and returns its drains
// in that order.
func sortByDrain(batch []partialRow) []string {
	sort.SliceStable(batch, func(i, j int) bool {
		if batch[i].drain != batch[j].drain {
			return batch[i].drain < batch[j].drain
		}
		return batch[i].minute < batch[j].minute
	})
	var drains []string
	for i, r := range batch {
		if i == 0 || r.drain != batch[i-1].drain {
			drains = append(drains, r.drain)
		}
	}
	return drains
}

// sealedThrough locks the drains' rows (shared with other writers; the
// sealer waits), in one order for every writer, and reads how far each is
// sealed.
func sealedThrough(ctx context.Context, tx pgx.Tx, drains []string) (map[string]int64, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO drain_rollups (drain_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, drains); err != nil {
		return nil, err
	}
	sealed := map[string]int64{}
	rows, err := tx.Query(ctx, `SELECT drain_id, sealed_through FROM drain_rollups WHERE drain_id = ANY($1) ORDER BY drain_id FOR SHARE`, drains)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d string
		var s int64
		if err := rows.Scan(&d, &s); err != nil {
			rows.Close()
			return nil, err
		}
		sealed[d] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return sealed, nil
}

// insertPartials inserts the batch's partials; one whose minute is sealed
// (and maybe posted) is inserted with its drain's next unsealed minute, at
// the watermark w or later, and appended to shifts with its shift.
func (p *Partials) insertPartials(ctx context.Context, tx pgx.Tx, batch []partialRow, sealed map[string]int64, w int64, shifts []shift) ([]shift, error) {
	ds := make([]string, len(batch))
	ms := make([]int64, len(batch))
	data := make([][]byte, len(batch))
	from := make([]*int64, len(batch))
	for i, r := range batch {
		ds[i], ms[i], data[i] = r.drain, r.minute, r.data
		if s := sealed[r.drain]; r.minute <= s {
			// Its minute is sealed (and maybe posted): the drain's next
			// unsealed minute takes it.
			to := max(s+60, w)
			ms[i], from[i] = to, &batch[i].minute
			shifts = append(shifts, shift{drain: r.drain, from: r.minute, to: to, measurements: r.measurements})
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO partials (drain_id, minute, writer, data, shifted_from)
			SELECT d, m, $5, x, f FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[]) AS t(d, m, x, f)`,
		ds, ms, data, from, p.cfg.Writer); err != nil {
		return shifts, err
	}
	for _, s := range shifts {
		if _, err := tx.Exec(ctx, `INSERT INTO shifts (drain_id, from_minute, to_minute, measurements, writer) VALUES ($1, $2, $3, $4, $5)`,
			s.drain, s.from, s.to, s.measurements, p.cfg.Writer); err != nil {
			return shifts, err
		}
	}
	return shifts, nil
}

// watermark returns the start of the latest minute that every live writer
// has closed and written, and that the clock has closed (ended GRACE ago).
func watermark(ctx context.Context, q querier, silence time.Duration, now time.Time, grace time.Duration) (int64, error) {
	var w *int64
	err := q.QueryRow(ctx, `SELECT min(closed_through) FROM writers
		WHERE gone_at IS NULL AND heartbeat_at > now() - $1 * interval '1 millisecond'`, silence.Milliseconds()).Scan(&w)
	if err != nil {
		return 0, fmt.Errorf("watermark: %w", err)
	}
	clock := rollup.ClosedThrough(now, grace)
	if w == nil || *w > clock {
		return clock, nil
	}
	return *w, nil
}
