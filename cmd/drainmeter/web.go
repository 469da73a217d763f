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
	var dedup drain.Deduper = drain.NewRecentIDs(time.Hour, 1<<20)
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
		shared = postgres.NewSharedIDs(pool, drain.NewRecentIDs(time.Hour, 1<<20), 250*time.Millisecond, log, time.Now)
		dedup = shared
	}
	if cfg.DrainSecret != "" || cfg.DatabaseURL == "" {
		tn.builtin = drain.NewSecretAuth(drain.Drain{ID: builtinDrain, Prefix: cfg.Prefix, SourcePrefix: cfg.SourcePrefix,
			ProcessTypes: cfg.ProcessTypes}, cfg.DrainSecret)
	}

	ocfg := outlet.DefaultConfig
	ocfg.URL, ocfg.UserAgent, ocfg.Timeout = cfg.LibratoURL, "drainmeter/"+version, cfg.OutletTimeout
	ocfg.Workers, ocfg.MaxAge, ocfg.Percentiles = cfg.OutletWorkers, cfg.OutletMaxPending, cfg.percentiles
	out := outlet.New(ocfg, tn, reg, log, stdout, time.Now)
	out.Start()
	h := drain.NewHandler(drain.Config{MaxBodyBytes: cfg.MaxBodyBytes}, tn, store, dedup, reg, log, time.Now)
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
		health(w, stopping.Load(), db, tn, out, reg)
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
		store.Run(bg, time.Second, time.Now, out)
	}()
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
	database := "none"
	if pool != nil {
		database = "postgres"
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version, "store", "memory", "database", database, "outlet", outletDesc,
		"librato_url", cfg.LibratoURL, "grace", cfg.Grace)
	if cfg.DrainSecret == "" && pool == nil {
		log.Warn("DRAIN_SECRET is not set: the drain accepts any password; set it before exposing this server")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopBg()
		stopShared()
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
	out.Closed(minutes)
	postCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err = out.Shutdown(postCtx)
	reg.LogSummary(log, map[string]stats.Snapshot{})
	if err != nil {
		log.Error("shutdown incomplete", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return err
	}
	log.Info("shutdown complete", "open_minutes_closed", len(minutes), "series", series, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

type healthBody struct {
	Status   string                 `json:"status"`
	Version  string                 `json:"version"`
	Store    string                 `json:"store"`
	Database string                 `json:"database,omitempty"` // "ok" or "unreachable"
	Pending  int                    `json:"pending"`
	Drains   map[string]drainHealth `json:"drains"`
}

type drainHealth struct {
	Outlet         string   `json:"outlet"` // "log", "librato", or "unauthorized" when Librato refuses the credentials
	Apps           []string `json:"apps,omitempty"`
	Frames         uint64   `json:"frames"`
	LogplexDropped uint64   `json:"logplex_dropped"`
	Posted         uint64   `json:"posted"`
}

func health(w http.ResponseWriter, stopping bool, db string, dest outlet.Destinations, out *outlet.Outlet, reg *stats.Registry) {
	b := healthBody{Status: "ok", Version: version, Store: "memory", Database: db, Pending: out.Pending(), Drains: map[string]drainHealth{}}
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
