package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
	"github.com/drainmeter/drainmeter/tenant"
)

// durable is the mode with a database (DATABASE_URL): closed and open
// minutes go to Postgres as partials, sealed once every dyno has written
// them, and posted by whichever dyno leases each lane; batch ids are
// claimed in Postgres; the status pages sum every dyno's counters.
//
//	Launch: the poster, the partials' writer and the sealer, then the intake
//	        (the store's clock, the open minutes' flush, explorer events,
//	        pings, drain ids, batch-id claims).
//	Land:   the intake stopped, every open minute closed into the partials,
//	        the poster told to take no new lane, the partials written and
//	        this writer marked gone, the poster's requests in flight finished.
type durable struct {
	w          *web
	pool       *pgxpool.Pool
	claimsPool *pgxpool.Pool
	claims     *postgres.Claims
	partials   *postgres.Partials
	sealer     *postgres.Sealer
	poster     *postgres.Poster
	dbHealth   *postgres.DBHealth
	drains     *postgres.Drains
	cache      *postgres.DrainCache // the drains table's, read by w.tn
	source     *postgres.StatusSource
	explorer   *postgres.ExplorerSource

	intake     *crew         // stopped first, after the last request
	writing    *crew         // the partials' writer and the sealer
	posting    *crew         // the poster; its context is the hard stop of a request in flight
	stopPoster chan struct{} // closed: the poster takes no new lane
}

// openDurable connects to Postgres, brings the schema up to date and
// registers this dyno as a writer; nothing runs yet. On an error,
// whatever it opened is closed.
func openDurable(ctx context.Context, w *web) (_ *durable, err error) {
	cfg, log := w.cfg, w.log
	d := &durable{w: w, intake: newCrew(), writing: newCrew(), posting: newCrew(), stopPoster: make(chan struct{})}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.pool, err = openDB(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	// Attaching Heroku Postgres restarts the dynos without a release
	// phase: bring the schema up to date here too, under the same
	// advisory lock as `drainmeter migrate`.
	// Under Heroku's 60 s boot timeout: our error, not an R10.
	applied, err := migrations.ApplyWith(ctx, d.pool, migrations.Options{Log: log, LockTimeout: 45 * time.Second})
	if len(applied) > 0 {
		log.Info("database migrated", "applied", strings.Join(applied, ","))
	}
	if err != nil {
		return nil, err
	}
	if n, err := postgres.RepairTotals(ctx, d.pool); err != nil {
		log.Warn("cannot repair stored running totals now; they are repaired as they are read", "err", err)
	} else if n > 0 {
		log.Warn("running totals that were not finite repaired: those series start again (a counter reset)", "series", n)
	}
	d.drains = postgres.NewDrains(d.pool, cfg.keys)
	warnOutletURLs(ctx, d.drains, log)
	d.cache = postgres.NewDrainCache(d.drains, cfg.DrainCacheTTL, log, w.now)
	// The set of drain ids, before the first request: made-up ids never
	// take the lookups of drains that exist, right after a start too.
	if err := d.cache.LoadIDs(ctx); err != nil {
		log.Warn("cannot load the drain ids; looking ids up at a limited rate until they load", "err", err)
	}
	w.tn = tenant.New(tenantConfig(cfg, d.cache, w.now)) // the built-in drain and the table's
	// Batch-id claims are on the request path: their own connections,
	// without waiting for the commit's WAL flush (a claim lost to a
	// Postgres crash can only make that batch's retry count twice).
	if d.claimsPool, err = openPool(ctx, cfg.DatabaseURL, 2, map[string]string{"synchronous_commit": "off"}); err != nil {
		return nil, err
	}
	// The dedup share: half for the ids in memory, half for those
	// claimed during an outage, to write later (each at most ~256 bytes).
	d.claims = postgres.NewClaims(postgres.ClaimsConfig{MaxIDs: int(w.mem.Dedup / 2 / 256)}, d.claimsPool,
		drain.NewRecentIDs(2*time.Hour, recentIDsPerHour).WithMaxBytes(w.mem.Dedup/2), log, w.now)
	if err := d.openPipeline(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// openPipeline makes the partials (registering this writer), the sealer,
// the poster, the database's health and the status sources.
func (d *durable) openPipeline(ctx context.Context) error {
	w, cfg, log := d.w, d.w.cfg, d.w.log
	writer := postgres.WriterID(cfg.Dyno)
	partialBytes := int64(cfg.PartialBufferBytes)
	if partialBytes > w.mem.Partials {
		if cfg.set["PARTIAL_BUFFER_BYTES"] { // the default just yields to the share
			log.Warn("PARTIAL_BUFFER_BYTES is more than its share of the memory budget; using the share",
				"partial_buffer_bytes", cfg.PartialBufferBytes, "share_bytes", w.mem.Partials)
		}
		partialBytes = w.mem.Partials
	}
	d.partials = postgres.NewPartials(postgres.PartialsConfig{Writer: writer, Grace: cfg.Grace, Silence: cfg.WriterTimeout,
		MaxBytes: int(partialBytes)}, d.pool, w.reg, log, w.now)
	if err := d.partials.Register(ctx); err != nil {
		return err
	}
	d.sealer = postgres.NewSealer(postgres.SealerConfig{Grace: cfg.Grace, Silence: cfg.WriterTimeout, AppRollup: true}, d.pool, w.tn, w.reg, log, w.now)
	d.poster = postgres.NewPoster(postgres.PosterConfig{Owner: writer, Workers: cfg.OutletWorkers, Retention: cfg.RollupRetention,
		StatusRetention: cfg.StatusRetention, Totals: w.mem.Totals},
		d.pool, w.sender, w.tn, w.reg, log, w.now)
	if err := d.poster.ResumeBuiltin(ctx, status.BuiltinDrainID, w.tn.Builtin().Outlets); err != nil {
		return err
	}
	// The database's state, from the last writes (the partials' heartbeat,
	// every second) and pings: ok, read_only, write_failing, unreachable.
	d.dbHealth = postgres.NewDBHealth(log, w.now)
	d.partials.ReportTo(d.dbHealth)
	// What the status pages show: every dyno's counters, summed in Postgres.
	d.source = postgres.NewStatusSource(postgres.StatusConfig{Version: version, Window: cfg.StatusRetention, Silence: cfg.WriterTimeout,
		Builtin: w.tn.BuiltinID()}, d.pool, d.drains, w.tn, d.dbHealth.State, d.claims.Degraded, w.now).WithPartials(d.partials)
	d.explorer = postgres.NewExplorerSource(d.pool, cfg.StatusRetention, w.now)
	return nil
}

func (d *durable) Dedup() drain.Deduper { return d.claims }

func (d *durable) Status() (status.Source, status.ExplorerSource, func() []outlet.Status) {
	return d.source, d.explorer, func() []outlet.Status {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ls, _ := d.source.Lanes(ctx)
		return ls
	}
}

func (d *durable) Health() healthBody {
	b := healthBody{Store: "postgres", Database: d.dbHealth.State()}
	b.PartialsQueued, _ = d.partials.Queued()
	return b
}

// Record writes a second's counters and open series to Postgres (with the
// partials).
func (d *durable) Record(now time.Time, deltas []stats.Delta) {
	d.partials.Record(now, deltas, d.w.store.OpenSeriesByDrain())
}

func (d *durable) Launch() {
	cfg, log, store := d.w.cfg, d.w.log, d.w.store
	d.posting.Go(func(ctx context.Context) { d.poster.Run(ctx, d.stopPoster) })
	d.writing.Go(d.partials.Run)
	d.writing.Go(func(ctx context.Context) { // seal the minutes every writer has written
		every(ctx, time.Second, func() {
			if n, err := d.sealer.SealReady(ctx); n > 0 {
				d.poster.Wake()
			} else if err != nil && ctx.Err() == nil {
				log.Warn("sealer: cannot seal now; retrying", "err", err)
			}
		})
	})
	d.intake.Go(func(ctx context.Context) { store.Run(ctx, time.Second, d.w.now, d.partials) })
	d.intake.Go(func(ctx context.Context) { // write open minutes every few seconds: a crash loses at most that much
		every(ctx, cfg.PartialFlushInterval, func() {
			if ms := store.TakeOpen(); len(ms) > 0 {
				d.partials.Closed(ms)
			}
		})
	})
	d.intake.Go(d.writeExplorerEvents)
	d.intake.Go(func(ctx context.Context) { pingEvery(ctx, d.pool, 2*time.Second, d.dbHealth) })
	d.intake.Go(d.cache.RunIDs)
	d.intake.Go(d.claims.Run) // stopped after the last request: ids claimed in memory during an outage are written
}

// writeExplorerEvents writes this dyno's refused pairs and overflowed
// names every 5 s, for every dyno's explorer, until ctx is done.
func (d *durable) writeExplorerEvents(ctx context.Context) {
	every(ctx, 5*time.Second, func() {
		ev := d.w.explorer.TakePending()
		if ev.Empty() {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := postgres.WriteExplorerEvents(wctx, d.pool, ev); err != nil && ctx.Err() == nil {
			d.w.log.Warn("explorer: cannot write refused pairs now", "err", err)
		}
	})
}

func (d *durable) Land(ctx context.Context) (landed, error) {
	defer d.close()
	d.intake.Stop()
	minutes, l := closeAll(d.w.store)
	// The open minutes go to Postgres: another dyno, or this one after
	// its restart, posts them once every writer has written them.
	close(d.stopPoster) // no new lanes; a request in flight finishes
	d.partials.Closed(minutes)
	d.partials.SweptAll()
	d.writing.Stop()
	var err error
	if perr := d.partials.Close(ctx); perr != nil {
		n, _ := d.partials.Queued()
		err = fmt.Errorf("%d partial minutes not written to Postgres: %w", n, perr)
	}
	d.posting.StopBy(ctx)
	return l, err
}

// close closes the database pools.
func (d *durable) close() {
	if d.claimsPool != nil {
		d.claimsPool.Close()
	}
	if d.pool != nil {
		d.pool.Close()
	}
}

// pingEvery tells h whether the database answers (the writes tell the
// rest: a read-only database answers pings); h logs each change.
func pingEvery(ctx context.Context, pool *pgxpool.Pool, d time.Duration, h *postgres.DBHealth) {
	every(ctx, d, func() {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pool.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return // cut short by the shutdown: not an outage
		}
		h.Pinged(err)
	})
}
