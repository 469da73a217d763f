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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// builtinDrain is the id of the drain configured by config vars.
const builtinDrain = "default"

// recentIDsPerHour bounds the batch ids a web remembers per hour (two
// generations of an hour each: about 50 MB at most). Past it, ids are kept
// for less than an hour.
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
		return fmt.Errorf("web takes no arguments (configure it with environment variables; see README)")
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)

	reg := stats.NewRegistry()
	store := rollup.NewStore(rollup.Config{Grace: cfg.Grace, MaxSeriesPerDrain: cfg.MaxSeriesPerDrain})
	target := outlet.Target{User: cfg.LibratoUser, Token: cfg.LibratoToken}
	tn := &tenants{builtinTarget: target}
	var dedup drain.Deduper = drain.NewRecentIDs(2*time.Hour, recentIDsPerHour)
	var shared *postgres.SharedIDs
	var pool *pgxpool.Pool
	if cfg.DatabaseURL != "" {
		if pool, err = openDB(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		defer pool.Close()
		pending, err := migrations.Pending(ctx, pool)
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			return fmt.Errorf("the database needs migrations %s: run drainmeter migrate (on Heroku the release phase does)", strings.Join(pending, ", "))
		}
		keys, err := postgres.ParseKeyring(cfg.DrainmeterKey)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		tn.cache = postgres.NewDrainCache(postgres.NewDrains(pool, keys), cfg.DrainCacheTTL, log, time.Now)
		shared = postgres.NewSharedIDs(pool, drain.NewRecentIDs(2*time.Hour, recentIDsPerHour), 250*time.Millisecond, log, time.Now)
		dedup = shared
	}
	if cfg.DrainSecret != "" || cfg.DatabaseURL == "" {
		tn.builtin = drain.NewSecretAuth(drain.Drain{ID: builtinDrain, Prefix: cfg.Prefix, SourcePrefix: cfg.SourcePrefix,
			ProcessTypes: cfg.ProcessTypes}, cfg.DrainSecret)
	}

	ocfg := outlet.DefaultConfig
	ocfg.URL, ocfg.UserAgent, ocfg.Timeout = cfg.LibratoURL, "drainmeter/"+version, cfg.OutletTimeout
	ocfg.Workers, ocfg.MaxAge, ocfg.Percentiles = cfg.OutletWorkers, cfg.OutletMaxPending, cfg.percentiles
	ocfg.MaxBackoff = cfg.OutletMaxBackoff
	out := outlet.New(ocfg, tn, reg, log, stdout, time.Now)
	out.Start()
	h := drain.NewHandler(drain.Config{MaxBodyBytes: cfg.MaxBodyBytes}, tn, store, dedup, reg, log, time.Now)

	// Where closed minutes go: straight to the outlet in memory; with a
	// database, to Postgres as partials that a poster merges and posts.
	var sink rollup.Sink = out
	var partials *postgres.Partials
	var poster *postgres.Poster
	if pool != nil {
		writer := postgres.WriterID(cfg.Dyno)
		partials = postgres.NewPartials(postgres.PartialsConfig{Writer: writer, ReadyAfter: cfg.Grace + cfg.PostDelay,
			MaxBytes: cfg.PartialBufferBytes}, pool, reg, log)
		poster = postgres.NewPoster(postgres.PosterConfig{Owner: writer, Retention: cfg.RollupRetention}, pool, out, reg, log)
		sink = partials
	}
	var dbOK atomic.Bool
	dbOK.Store(pool != nil)

	var stopping atomic.Bool
	r := chi.NewRouter()
	r.Post("/logs", h.ServeHTTP)
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		db := ""
		if pool != nil {
			db = "unreachable"
			if dbOK.Load() {
				db = "ok"
			}
		}
		health(w, stopping.Load(), db, tn, out, partials, reg)
	})

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	srv := &http.Server{
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
	var durable sync.WaitGroup
	if pool != nil {
		durable.Add(3)
		go func() { // write open minutes every few seconds: a crash loses at most that much
			defer durable.Done()
			t := time.NewTicker(cfg.PartialFlushInterval)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					if ms := store.TakeOpen(); len(ms) > 0 {
						partials.Closed(ms)
					}
				}
			}
		}()
		go func() { defer durable.Done(); partials.Run(durableCtx) }()
		go func() { defer durable.Done(); poster.Run(durableCtx) }()
	}
	go reg.LogEvery(bg, log, time.Minute)
	if pool != nil {
		go pingEvery(bg, pool, 2*time.Second, &dbOK, log)
	}
	sharedCtx, stopShared := context.WithCancel(context.Background())
	sharedDone := make(chan struct{})
	go func() {
		defer close(sharedDone)
		if shared != nil {
			shared.Run(sharedCtx)
		}
	}()

	outletDesc := "log"
	if !target.IsLog() {
		outletDesc = "librato"
	}
	storeDesc := "memory"
	if pool != nil {
		storeDesc = "postgres"
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version, "store", storeDesc, "outlet", outletDesc,
		"librato_url", cfg.LibratoURL, "grace", cfg.Grace)
	if cfg.DrainSecret == "" && pool == nil {
		log.Warn("DRAIN_SECRET is not set: the drain accepts any password; set it before exposing this server")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopBg()
		stopShared()
		stopDurable()
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
	stopShared() // after the last request: its final flush shares every counted batch id
	stopBg()
	<-flushed
	<-sharedDone
	minutes := store.FlushAll()
	series := 0
	for _, m := range minutes {
		series += len(m.Series)
	}
	postCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if pool == nil {
		out.Closed(minutes)
		err = out.Shutdown(postCtx)
	} else {
		// The open minutes go to Postgres first: another dyno, or this one
		// after its restart, posts them when they are ready.
		partials.Closed(minutes)
		stopDurable()
		durable.Wait()
		if perr := partials.Flush(postCtx); perr != nil {
			n, _ := partials.Queued()
			err = fmt.Errorf("%d partial minutes not written to Postgres: %w", n, perr)
		}
		if oerr := out.Shutdown(postCtx); oerr != nil { // deliveries in flight finish or are handed back
			err = errors.Join(err, oerr)
		}
		if cerr := poster.Close(postCtx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	reg.LogSummary(log, map[string]stats.Snapshot{})
	if err != nil {
		log.Error("shutdown incomplete", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return err
	}
	log.Info("shutdown complete", "open_minutes_closed", len(minutes), "series", series, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

type healthBody struct {
	Status         string                 `json:"status"`
	Version        string                 `json:"version"`
	Store          string                 `json:"store"`                     // where rollups are kept: memory or postgres
	Database       string                 `json:"database,omitempty"`        // "ok" or "unreachable"
	PartialsQueued int                    `json:"partials_queued,omitempty"` // partial minutes waiting for Postgres
	Pending        int                    `json:"pending"`
	Drains         map[string]drainHealth `json:"drains"`
}

type drainHealth struct {
	Outlet         string   `json:"outlet"` // "log", "librato", or "unauthorized" when Librato refuses the credentials
	Apps           []string `json:"apps,omitempty"`
	Frames         uint64   `json:"frames"`
	LogplexDropped uint64   `json:"logplex_dropped"`
	Posted         uint64   `json:"posted"`
}

func health(w http.ResponseWriter, stopping bool, db string, dest outlet.Destinations, out *outlet.Outlet, partials *postgres.Partials, reg *stats.Registry) {
	b := healthBody{Status: "ok", Version: version, Store: "memory", Database: db, Pending: out.Pending(), Drains: map[string]drainHealth{}}
	if partials != nil {
		b.Store = "postgres"
		b.PartialsQueued, _ = partials.Queued()
	}
	status := out.Status()
	for _, d := range reg.All() {
		dh := drainHealth{Outlet: "librato", Apps: d.Apps(), Frames: d.Get(stats.FramesAccepted),
			LogplexDropped: d.Get(stats.LogplexDropped), Posted: d.Get(stats.Posted)}
		if t, ok := dest.Target(d.ID); ok && t.IsLog() {
			dh.Outlet = "log"
		}
		if s := status[d.ID]; s != "" {
			dh.Outlet = s
		}
		b.Drains[d.ID] = dh
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

// pingEvery keeps ok up to date with the database's reachability, logging
// each change.
func pingEvery(ctx context.Context, pool *pgxpool.Pool, every time.Duration, ok *atomic.Bool, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pool.Ping(pctx)
		cancel()
		if was := ok.Swap(err == nil); was != (err == nil) {
			if err != nil {
				log.Error("database unreachable; still accepting frames", "err", err)
			} else {
				log.Info("database reachable again")
			}
		}
	}
}
