package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/connlimit"
	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/librato"
	"github.com/drainmeter/drainmeter/outlet/otlp"
	"github.com/drainmeter/drainmeter/outlet/remotewrite"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
)

// builtinDrain is the id of the drain configured by config vars.
const builtinDrain = "default"

// recentIDsPerHour bounds the batch ids a web remembers per hour (two
// generations of an hour each), and so does the memory budget's dedup
// share. Past either, ids are kept for less than an hour.
const recentIDsPerHour = 1 << 18

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by Config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// runWeb serves until ctx is done, then shuts down in order: stop taking
// requests and finish those in flight, close every open minute, post
// everything pending, all within SHUTDOWN_TIMEOUT.
func runWeb(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, configHelp())
			return nil
		}
		return fmt.Errorf("web takes no arguments (configure it with environment variables: drainmeter web --help)")
	}
	hups, stopHups := ignoreHangups() // first: a SIGHUP while starting must not kill it either
	defer stopHups()
	cfg, err := loadConfig()
	if err != nil {
		if len(cfg.warnings) > 0 { // a typo is often why: REMOTE_WRITE_ULR and REMOTE_WRITE_HEADERS
			return fmt.Errorf("%w\nwarnings:\n  %s", err, strings.Join(cfg.warnings, "\n  "))
		}
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	mem, memFrom := memoryBudget(cfg)
	nofile, err := raiseFileLimit()
	if err != nil {
		log.Warn("cannot raise the limit of open files", "err", err, "limit", nofile)
	}
	maxConns := connectionLimit(cfg.MaxConnections, nofile, mem)

	reg := stats.NewRegistry()
	store := rollup.NewStore(rollup.Config{Grace: cfg.Grace, MaxSeriesPerDrain: cfg.MaxSeriesPerDrain, MaxRoutesPerDrain: cfg.MaxRoutesPerDrain, AppRollup: cfg.DatabaseURL == "", // with Postgres, the sealer makes them
		Series: mem.Series, MaxBytesPerDrain: mem.SeriesPerDrain()})
	tn := &tenants{builtinOutlets: cfg.outlets, appName: cfg.AppName, attributes: cfg.attributes, libratoURL: cfg.LibratoURL, stats: reg, now: time.Now}
	var dedup drain.Deduper = drain.NewRecentIDs(2*time.Hour, recentIDsPerHour).WithMaxBytes(mem.Dedup)
	var shared *postgres.Claims
	var pool *pgxpool.Pool
	if cfg.DatabaseURL != "" {
		if pool, err = openDB(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		defer pool.Close()
		// Attaching Heroku Postgres restarts the dynos without a release
		// phase: bring the schema up to date here too, under the same
		// advisory lock as `drainmeter migrate`.
		// Under Heroku's 60 s boot timeout: our error, not an R10.
		applied, err := migrations.ApplyWith(ctx, pool, migrations.Options{Log: log, LockTimeout: 45 * time.Second})
		if len(applied) > 0 {
			log.Info("database migrated", "applied", strings.Join(applied, ","))
		}
		if err != nil {
			return err
		}
		if n, err := postgres.RepairTotals(ctx, pool); err != nil {
			log.Warn("cannot repair stored running totals now; they are repaired as they are read", "err", err)
		} else if n > 0 {
			log.Warn("running totals that were not finite repaired: those series start again (a counter reset)", "series", n)
		}
		tn.drains = postgres.NewDrains(pool, cfg.keys)
		warnOutletURLs(ctx, tn.drains, log)
		tn.cache = postgres.NewDrainCache(tn.drains, cfg.DrainCacheTTL, log, time.Now)
		// The set of drain ids, before the first request: made-up ids never
		// take the lookups of drains that exist, right after a start too.
		if err := tn.cache.LoadIDs(ctx); err != nil {
			log.Warn("cannot load the drain ids; looking ids up at a limited rate until they load", "err", err)
		}
		// Batch-id claims are on the request path: their own connections,
		// without waiting for the commit's WAL flush (a claim lost to a
		// Postgres crash can only make that batch's retry count twice).
		claimsPool, err := openPool(ctx, cfg.DatabaseURL, 2, map[string]string{"synchronous_commit": "off"})
		if err != nil {
			return err
		}
		defer claimsPool.Close()
		// The dedup share: half for the ids in memory, half for those
		// claimed during an outage, to write later (each at most ~256 bytes).
		shared = postgres.NewClaims(postgres.ClaimsConfig{MaxIDs: int(mem.Dedup / 2 / 256)}, claimsPool,
			drain.NewRecentIDs(2*time.Hour, recentIDsPerHour).WithMaxBytes(mem.Dedup/2), log, time.Now)
		dedup = shared
	}
	if cfg.DrainSecret != "" || cfg.DatabaseURL == "" {
		tn.builtin = drain.NewSecretAuth(drain.Caller{ID: builtinDrain, Prefix: cfg.Prefix, SourcePrefix: cfg.SourcePrefix,
			ProcessTypes: cfg.ProcessTypes, RouteMetrics: cfg.routeMode, Routes: cfg.routes}, cfg.DrainSecret)
	}

	ocfg := outlet.Config{UserAgent: "drainmeter/" + version, Timeout: cfg.OutletTimeout, Workers: cfg.OutletWorkers,
		MaxAge: cfg.OutletMaxPending, MaxBackoff: cfg.OutletMaxBackoff}
	client := outlet.NewClient(ocfg.UserAgent, ocfg.Timeout, time.Now)
	sender := outlet.NewSender(ocfg, backends(client, stdout, cfg.percentiles, cfg.CounterHold), reg, log, time.Now)
	// Connections that have sent an accepted batch are trusted: half the
	// slots are kept for them (internal/connlimit).
	var trust atomic.Pointer[connlimit.Listener]
	// The metrics explorer: fed by closed minutes (and refused pairs, and
	// names over the series caps), never per accepted line.
	explorer := status.NewExplorerStore(mem.Explorer, 0, time.Now)
	h := drain.NewHandler(drain.Config{MaxBodyBytes: cfg.MaxBodyBytes, Bodies: mem.Bodies, MaxDrainBytes: mem.BodiesPerDrain(),
		Accepted: func(ctx context.Context) {
			if ln := trust.Load(); ln != nil {
				ln.Trust(ctx)
			}
		}, Refusals: explorer},
		tn, store, dedup, reg, log, time.Now)

	// Where closed minutes go: to the outlets' lanes in memory; with a
	// database, to Postgres as partials, sealed once every dyno has written
	// them, and posted by whichever dyno leases each lane.
	var sink rollup.Sink
	var engine *outlet.Engine
	var partials *postgres.Partials
	var sealer *postgres.Sealer
	var poster *postgres.Poster
	if pool == nil {
		engine = outlet.NewEngine(sender, tn, reg, log, time.Now)
		engine.ChargeTotals(mem.Totals)
		engine.Start()
		sink = explored{explorer, engine}
	} else {
		writer := postgres.WriterID(cfg.Dyno)
		partialBytes := int64(cfg.PartialBufferBytes)
		if partialBytes > mem.Partials {
			if _, set := os.LookupEnv("PARTIAL_BUFFER_BYTES"); set { // the default just yields to the share
				log.Warn("PARTIAL_BUFFER_BYTES is more than its share of the memory budget; using the share",
					"partial_buffer_bytes", cfg.PartialBufferBytes, "share_bytes", mem.Partials)
			}
			partialBytes = mem.Partials
		}
		partials = postgres.NewPartials(postgres.PartialsConfig{Writer: writer, Grace: cfg.Grace, Silence: cfg.WriterTimeout,
			MaxBytes: int(partialBytes)}, pool, reg, log, time.Now)
		if err := partials.Register(ctx); err != nil {
			return err
		}
		sealer = postgres.NewSealer(postgres.SealerConfig{Grace: cfg.Grace, Silence: cfg.WriterTimeout, AppRollup: true}, pool, tn, reg, log, time.Now)
		poster = postgres.NewPoster(postgres.PosterConfig{Owner: writer, Workers: cfg.OutletWorkers, Retention: cfg.RollupRetention,
			StatusRetention: cfg.StatusRetention, Totals: mem.Totals},
			pool, sender, tn, reg, log, time.Now)
		if err := poster.ResumeBuiltin(ctx, builtinDrain, tn.builtinDrain().Outlets); err != nil {
			return err
		}
		sink = partials
	}
	// The database's state, from the last writes (the partials' heartbeat,
	// every second) and pings: ok, read_only, write_failing, unreachable.
	var dbHealth *postgres.DBHealth
	if pool != nil {
		dbHealth = postgres.NewDBHealth(log, time.Now)
		partials.ReportTo(dbHealth)
	}

	// What the status pages show: this process's counters in memory; every
	// dyno's, summed in Postgres, with a database.
	recorder := stats.NewRecorder(reg)
	var history *status.History
	var source status.Source
	var explorerSource status.ExplorerSource = explorer
	var laneStatuses func() []outlet.Status
	if pool == nil {
		history = status.NewHistory()
		builtinID := ""
		if tn.builtin != nil {
			builtinID = builtinDrain
		}
		source = &status.Memory{Version: version, Reg: reg, History: history, Dests: tn, Builtin: builtinID,
			Lanes: engine.Lanes, Open: store.OpenSeriesByDrain, Now: time.Now}
		laneStatuses = engine.Lanes
	} else {
		builtinID := ""
		if tn.builtin != nil {
			builtinID = builtinDrain
		}
		ss := postgres.NewStatusSource(postgres.StatusConfig{Version: version, Window: cfg.StatusRetention, Silence: cfg.WriterTimeout,
			Builtin: builtinID}, pool, tn.drains, tn, dbHealth.State, shared.Degraded, time.Now).WithPartials(partials)
		source = ss
		explorerSource = postgres.NewExplorerSource(pool, cfg.StatusRetention, time.Now)
		laneStatuses = func() []outlet.Status {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ls, _ := ss.Lanes(ctx)
			return ls
		}
	}
	self := &selfMetrics{store: store, dest: tn, reg: reg, lanes: laneStatuses}
	pages := status.NewHandler(status.Config{AdminPassword: cfg.AdminPassword, Open: cfg.AdminPassword == "" && cfg.Dyno == "" && cfg.DatabaseURL == "",
		OnDyno: cfg.Dyno != "", Version: version, BaseURL: cfg.DrainmeterURL, ThisApp: cfg.HerokuAppName, Explorer: explorerSource,
		Connections: func() connlimit.Stats {
			if ln := trust.Load(); ln != nil {
				return ln.Stats()
			}
			return connlimit.Stats{}
		},
		SignedIn: func(ctx context.Context) {
			if ln := trust.Load(); ln != nil {
				ln.Trust(ctx)
			}
		}}, source, tn, log)

	var stopping atomic.Bool
	r := chi.NewRouter()
	r.Post("/logs", h.ServeHTTP)
	r.Method(http.MethodGet, "/", pages)
	r.Method(http.MethodGet, "/status.json", pages)
	r.Method(http.MethodGet, "/drains/*", pages)
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		db := ""
		if dbHealth != nil {
			db = dbHealth.State()
		}
		health(w, stopping.Load(), db, partials)
	})

	inner, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	ln := connlimit.New(inner, maxConns, maxConns/2, log)
	trust.Store(ln)
	srv := &http.Server{
		ConnState:         ln.ConnState,
		ConnContext:       ln.ConnContext,
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       6 * time.Minute, // logplex keeps connections open up to ~4.25 min
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	bg, stopBg := context.WithCancel(context.Background())
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		store.Run(bg, time.Second, time.Now, sink)
	}()
	durableCtx, stopDurable := context.WithCancel(context.Background())
	defer stopDurable()
	postCtx, stopPosting := context.WithCancel(context.Background()) // the hard stop of requests in flight
	defer stopPosting()
	stopPoster := make(chan struct{})
	var durable, posting sync.WaitGroup
	if pool != nil {
		durable.Add(3)
		go func() { // write open minutes every few seconds: a crash loses at most that much
			defer durable.Done()
			every(bg, cfg.PartialFlushInterval, func() {
				if ms := store.TakeOpen(); len(ms) > 0 {
					partials.Closed(ms)
				}
			})
		}()
		go func() { defer durable.Done(); partials.Run(durableCtx) }()
		go func() { // seal the minutes every writer has written
			defer durable.Done()
			every(durableCtx, time.Second, func() {
				if n, err := sealer.SealReady(durableCtx); n > 0 {
					poster.Wake()
				} else if err != nil && durableCtx.Err() == nil {
					log.Warn("sealer: cannot seal now; retrying", "err", err)
				}
			})
		}()
		posting.Add(1)
		go func() { defer posting.Done(); poster.Run(postCtx, stopPoster) }()
	}
	go reg.LogEvery(bg, log, time.Minute)
	go logHangups(bg, hups, log)
	go every(bg, time.Second, func() { // counters to the status history (and Postgres), self-metrics
		now := time.Now()
		deltas := recorder.Take()
		if pool == nil {
			for _, d := range deltas {
				history.Add(d.Drain, now, d.Counts[stats.FramesAccepted])
			}
		} else {
			partials.Record(now, deltas, store.OpenSeriesByDrain())
		}
		if cfg.SelfMetrics {
			self.observe(now, deltas)
		}
		if names := store.TakeOverflowed(); len(names) > 0 {
			explorer.Overflow(now, names)
		}
		if late := store.TakeLate(); len(late) > 0 {
			explorer.Late(late)
		}
	})
	if pool != nil { // every dyno's refused pairs and overflowed names, for every dyno's explorer
		go every(bg, 5*time.Second, func() {
			ev := explorer.TakePending()
			if ev.Empty() {
				return
			}
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			defer cancel()
			if err := postgres.WriteExplorerEvents(ctx, pool, ev); err != nil && bg.Err() == nil {
				log.Warn("explorer: cannot write refused pairs now", "err", err)
			}
		})
	}
	if pool != nil {
		go pingEvery(bg, pool, 2*time.Second, dbHealth)
		go tn.cache.RunIDs(bg)
	}
	sharedCtx, stopShared := context.WithCancel(context.Background())
	sharedDone := make(chan struct{})
	go func() {
		defer close(sharedDone)
		if shared != nil {
			shared.Run(sharedCtx)
		}
	}()

	storeDesc := "memory"
	if pool != nil {
		storeDesc = "postgres"
	}
	// The outlets named are the built-in drain's; without it (a database
	// and no DRAIN_SECRET) there are none: each drain of the table has its
	// own (drainmeter drains list).
	outletDescs := []string{"none (no built-in drain: DRAIN_SECRET is not set)"}
	if tn.builtin != nil {
		outletDescs = outletDescs[:0]
		for _, o := range tn.builtinDrain().Outlets {
			outletDescs = append(outletDescs, o.Redacted())
		}
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version, "store", storeDesc,
		"outlets", strings.Join(outletDescs, ", "), "grace", cfg.Grace,
		"memory_budget", mem.Total, "budget_from", memFrom, "max_connections", maxConns, "open_files", nofile)
	if cfg.DrainSecret == "" && pool == nil {
		log.Warn("DRAIN_SECRET is not set: the drain accepts any password; set it before exposing this server")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopBg()
		stopShared()
		stopDurable()
		close(stopPoster)
		stopPosting()
		return fmt.Errorf("web: %w", err)
	}

	// Shutdown: producers first, then the pipeline behind them.
	start := time.Now()
	deadline := start.Add(cfg.ShutdownTimeout)
	stopping.Store(true)
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	httpCtx, cancel := context.WithDeadline(context.Background(), start.Add(cfg.ShutdownTimeout/3))
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("requests still running at shutdown", "err", err)
		_ = srv.Close()
	}
	cancel()
	stopShared() // after the last request: ids claimed in memory during an outage are written
	stopBg()
	<-flushed
	<-sharedDone
	minutes := store.FlushAll()
	series := 0
	for _, m := range minutes {
		series += len(m.Series)
	}
	endCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if pool == nil {
		explored{explorer, engine}.Closed(minutes)
		err = engine.Shutdown(endCtx)
	} else {
		// The open minutes go to Postgres: another dyno, or this one after
		// its restart, posts them once every writer has written them.
		close(stopPoster) // no new lanes; a request in flight finishes
		partials.Closed(minutes)
		partials.SweptAll()
		stopDurable()
		durable.Wait()
		if perr := partials.Close(endCtx); perr != nil {
			n, _ := partials.Queued()
			err = fmt.Errorf("%d partial minutes not written to Postgres: %w", n, perr)
		}
		waitUntil(&posting, endCtx, stopPosting)
	}
	reg.LogSummary(log) // what the last minute's line did not cover
	if err != nil {
		log.Error("shutdown incomplete", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return err
	}
	log.Info("shutdown complete", "open_minutes_closed", len(minutes), "series", series, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// explored hands closed minutes to the explorer, then to the outlets (which
// may merge series as they encode them: the explorer reads them first).
type explored struct {
	explorer *status.ExplorerStore
	next     rollup.Sink
}

func (e explored) Closed(ms []*rollup.Minute) {
	e.explorer.Closed(ms)
	e.next.Closed(ms)
}

// every calls f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// waitUntil waits for wg, or until ctx is done: then it calls stop and
// waits for wg anyway.
func waitUntil(wg *sync.WaitGroup, ctx context.Context, stop func()) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		stop()
		<-done
	}
}

// backends are the outlets drainmeter can post to.
func backends(client *outlet.Client, stdout io.Writer, percentiles []float64, hold time.Duration) map[outlet.Kind]outlet.Backend {
	return map[outlet.Kind]outlet.Backend{
		outlet.Log:         outlet.NewLogBackend(stdout, percentiles),
		outlet.Librato:     librato.New(client, percentiles),
		outlet.OTLP:        otlp.New(client, otlp.Config{Version: version, Percentiles: percentiles, Hold: hold}),
		outlet.RemoteWrite: remotewrite.New(client, remotewrite.Config{Hold: hold}),
	}
}

// healthBody is what GET /health answers: enough for the platform and an
// uptime check, nothing about drains or apps (the status page has those).
type healthBody struct {
	Status         string `json:"status"`
	Version        string `json:"version"`
	Store          string `json:"store"`                     // where rollups are kept: memory or postgres
	Database       string `json:"database,omitempty"`        // ok, read_only, write_failing or unreachable
	PartialsQueued int    `json:"partials_queued,omitempty"` // partial minutes waiting for Postgres
}

func health(w http.ResponseWriter, stopping bool, db string, partials *postgres.Partials) {
	b := healthBody{Status: "ok", Version: version, Store: "memory", Database: db}
	if partials != nil {
		b.Store = "postgres"
		b.PartialsQueued, _ = partials.Queued()
	}
	code := http.StatusOK
	if stopping {
		b.Status, code = "shutting down", http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(b)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

var errUsage = errors.New("usage")

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
