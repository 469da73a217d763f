package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/internal/connlimit"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/librato"
	"github.com/drainmeter/drainmeter/outlet/otlp"
	"github.com/drainmeter/drainmeter/outlet/remotewrite"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
	"github.com/drainmeter/drainmeter/tenant"
)

// A mode is where closed minutes go and what the status pages read:
// memory (memory.go: this process's minutes, posted from its lanes) or
// durable (durable.go: every dyno's minutes, summed in Postgres, posted by
// whichever dyno leases a lane). The web picks it once. A mode owns the
// goroutines behind the store: Launch starts them, consumers before
// producers (the web's HTTP server, the first producer, starts after it);
// Land stops them in the reverse order, after the web has stopped taking
// requests.
type mode interface {
	// Dedup remembers batch ids, so that a retried batch counts once.
	Dedup() drain.Deduper
	// Status is what the status pages and the self-metrics read.
	Status() (src status.Source, explorer status.ExplorerSource, lanes func() []outlet.Status)
	// Health is GET /health's store, database and partials fields.
	Health() healthBody
	// Record takes a second's counters (status history, self-metrics).
	Record(now time.Time, deltas []stats.Delta)
	// Launch starts the mode's goroutines.
	Launch()
	// Land closes every open minute and posts (or writes) everything
	// pending until ctx is done, then stops the mode's goroutines and
	// closes what it opened. The error says what was lost.
	Land(ctx context.Context) (landed, error)
}

// landed is what a mode closed as it landed.
type landed struct{ minutes, series int }

// closeAll closes every open minute of store.
func closeAll(store *rollup.Store) ([]*rollup.Minute, landed) {
	minutes := store.FlushAll()
	l := landed{minutes: len(minutes)}
	for _, m := range minutes {
		l.series += len(m.Series)
	}
	return minutes, l
}

// web is what both modes share: the store the drain endpoint fills, the
// tenants, the outlets' sender, the explorer and the status pages, the
// HTTP server behind connlimit, and the goroutines around them.
type web struct {
	cfg      Config
	log      *slog.Logger
	stdout   io.Writer
	now      func() time.Time // the clock (process.clock)
	mem      *budget.Budget
	memFrom  string
	nofile   uint64
	maxConns int
	reg      *stats.Registry
	store    *rollup.Store
	tn       *tenant.Tenants
	sender   *outlet.Sender
	explorer *status.ExplorerStore // fed by closed minutes, refused pairs and names over the caps
	recorder *stats.Recorder
	self     *selfMetrics
	handler  http.Handler

	// Connections that have sent an accepted batch, or signed in, are
	// trusted: half the slots are kept for them (internal/connlimit).
	trust    atomic.Pointer[connlimit.Listener]
	stopping atomic.Bool // GET /health answers 503 from the shutdown on

	ticks     *crew // the counters' second, the registry's log line, SIGHUP
	srv       *http.Server
	serveDone chan struct{} // closed when srv.Serve has returned ...
	serveErr  error         // ... with this
}

// newWeb makes what both modes share; nothing runs yet.
// proc is the process's, for its memory and file limits (main's) or none
// (in-process runs).
func newWeb(cfg Config, log *slog.Logger, stdout io.Writer, proc process) *web {
	w := &web{cfg: cfg, log: log, stdout: stdout, now: proc.now(), reg: stats.NewRegistry(), ticks: newCrew()}
	w.mem, w.memFrom = memoryBudget(cfg, proc.setMemoryLimit)
	nofile, err := proc.fileLimit()
	if err != nil {
		log.Warn("cannot raise the limit of open files", "err", err, "limit", nofile)
	}
	w.nofile, w.maxConns = nofile, connectionLimit(cfg.MaxConnections, nofile, w.mem)
	w.store = rollup.NewStore(rollup.Config{Grace: cfg.Grace, MaxSeriesPerDrain: cfg.MaxSeriesPerDrain, MaxRoutesPerDrain: cfg.MaxRoutesPerDrain,
		AppRollup: cfg.DatabaseURL == "", // with Postgres, the sealer makes them
		Series:    w.mem.Series, MaxBytesPerDrain: w.mem.SeriesPerDrain()})
	w.tn = tenant.New(tenantConfig(cfg, nil, w.now))
	ocfg := outlet.Config{UserAgent: "drainmeter/" + version, Timeout: cfg.OutletTimeout, Workers: cfg.OutletWorkers,
		MaxAge: cfg.OutletMaxPending, MaxBackoff: cfg.OutletMaxBackoff}
	client := outlet.NewClient(ocfg.UserAgent, ocfg.Timeout, w.now)
	w.sender = outlet.NewSender(ocfg, backends(client, stdout, cfg.percentiles, cfg.CounterHold), w.reg, log, w.now)
	w.explorer = status.NewExplorerStore(w.mem.Explorer, 0, w.now)
	w.recorder = stats.NewRecorder(w.reg)
	return w
}

// tenantConfig is the tenants' config: the built-in drain of the config
// vars (taking requests with DRAIN_SECRET, or without a database) and,
// with a database, the drains table through cache.
func tenantConfig(cfg Config, cache *postgres.DrainCache, now func() time.Time) tenant.Config {
	tc := tenant.Config{Secret: cfg.DrainSecret, Outlets: cfg.outlets, AppName: cfg.AppName, Attributes: cfg.attributes,
		LibratoURL: cfg.LibratoURL, Cache: cache, Now: now}
	if cfg.DrainSecret != "" || cfg.DatabaseURL == "" {
		tc.Builtin = &drain.Caller{Prefix: cfg.Prefix, SourcePrefix: cfg.SourcePrefix,
			ProcessTypes: cfg.ProcessTypes, RouteMetrics: cfg.routeMode, Routes: cfg.routes}
	}
	return tc
}

// trusted marks the connection of ctx as trusted.
func (w *web) trusted(ctx context.Context) {
	if ln := w.trust.Load(); ln != nil {
		ln.Trust(ctx)
	}
}

// mount makes the routes: POST /logs, the status pages, GET /health.
func (w *web) mount(m mode) {
	h := drain.NewHandler(drain.Config{MaxBodyBytes: w.cfg.MaxBodyBytes, Bodies: w.mem.Bodies, MaxDrainBytes: w.mem.BodiesPerDrain(),
		Accepted: w.trusted, Refusals: w.explorer},
		w.tn, w.store, m.Dedup(), w.reg, w.log, w.now)
	source, explorerSource, lanes := m.Status()
	w.self = &selfMetrics{store: w.store, dest: w.tn, reg: w.reg, lanes: lanes}
	cfg := w.cfg
	pages := status.NewHandler(status.Config{AdminPassword: cfg.AdminPassword, Open: cfg.AdminPassword == "" && cfg.Dyno == "" && cfg.DatabaseURL == "",
		OnDyno: cfg.Dyno != "", Version: version, BaseURL: cfg.DrainmeterURL, ThisApp: cfg.HerokuAppName, Explorer: explorerSource,
		Connections: func() connlimit.Stats {
			if ln := w.trust.Load(); ln != nil {
				return ln.Stats()
			}
			return connlimit.Stats{}
		},
		SignedIn: w.trusted}, source, w.tn, w.log)
	r := chi.NewRouter()
	r.Post("/logs", h.ServeHTTP)
	r.Method(http.MethodGet, "/", pages)
	r.Method(http.MethodGet, "/status.json", pages)
	r.Method(http.MethodGet, "/drains/*", pages)
	r.Get("/health", func(rw http.ResponseWriter, _ *http.Request) {
		health(rw, w.stopping.Load(), m.Health())
	})
	w.handler = r
}

// Launch starts the web's own goroutines, then listens and serves: the
// producer, last. An error is a failed listen; the mode is launched, so
// the caller lands anyway.
func (w *web) Launch(m mode, hups <-chan os.Signal, listen listenFunc) error {
	w.ticks.Go(func(ctx context.Context) { w.reg.LogEvery(ctx, w.log, time.Minute) })
	w.ticks.Go(func(ctx context.Context) { logHangups(ctx, hups, w.log) })
	w.ticks.Go(func(ctx context.Context) { every(ctx, time.Second, func() { w.second(m) }) })

	inner, err := listen("tcp", ":"+strconv.Itoa(w.cfg.Port))
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	ln := connlimit.New(inner, w.maxConns, w.maxConns/2, w.log)
	w.trust.Store(ln)
	w.srv = &http.Server{
		ConnState:         ln.ConnState,
		ConnContext:       ln.ConnContext,
		Handler:           w.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       6 * time.Minute, // logplex keeps connections open up to ~4.25 min
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelWarn),
	}
	w.serveDone = make(chan struct{})
	go func() {
		defer close(w.serveDone)
		w.serveErr = w.srv.Serve(ln)
	}()
	w.logListening(ln.Addr().String(), m.Health().Store)
	return nil
}

// second moves a second's counters to the mode (status history, or
// Postgres), the self-metrics and the explorer.
func (w *web) second(m mode) {
	now := w.now()
	deltas := w.recorder.Take()
	m.Record(now, deltas)
	if w.cfg.SelfMetrics {
		w.self.observe(now, deltas)
	}
	if names := w.store.TakeOverflowed(); len(names) > 0 {
		w.explorer.Overflow(now, names)
	}
	if late := w.store.TakeLate(); len(late) > 0 {
		w.explorer.Late(late)
	}
}

func (w *web) logListening(addr, store string) {
	cfg := w.cfg
	// The outlets named are the built-in drain's; without it (a database
	// and no DRAIN_SECRET) there are none: each drain of the table has its
	// own (drainmeter drains list).
	outletDescs := []string{"none (no built-in drain: DRAIN_SECRET is not set)"}
	if w.tn.BuiltinID() != "" {
		outletDescs = outletDescs[:0]
		for _, o := range w.tn.Builtin().Outlets {
			outletDescs = append(outletDescs, o.Redacted())
		}
	}
	w.log.Info("listening", "addr", addr, "version", version, "store", store,
		"outlets", strings.Join(outletDescs, ", "), "grace", cfg.Grace,
		"memory_budget", w.mem.Total, "budget_from", w.memFrom, "max_connections", w.maxConns, "open_files", w.nofile)
	if cfg.DrainSecret == "" && cfg.DatabaseURL == "" {
		w.log.Warn("DRAIN_SECRET is not set: the drain accepts any password; set it before exposing this server")
	}
}

// wait serves until ctx is done (nil) or serving fails (the error).
func (w *web) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-w.serveDone:
		return fmt.Errorf("web: %w", w.serveErr)
	}
}

// Land shuts down in the reverse order of the launch, whatever the cause
// (nil: ctx done, SIGTERM; else a serve or listen error, returned with
// what the landing lost): stop taking requests and finish those in flight
// (a third of SHUTDOWN_TIMEOUT at most), stop the web's goroutines, then
// land the mode (every open minute closed, everything pending posted or
// written) by the end of SHUTDOWN_TIMEOUT.
func (w *web) Land(m mode, cause error) error {
	start := time.Now()
	deadline := start.Add(w.cfg.ShutdownTimeout)
	w.stopping.Store(true)
	if cause != nil {
		w.log.Error("shutting down", "err", cause, "deadline", w.cfg.ShutdownTimeout)
	} else {
		w.log.Info("shutting down", "deadline", w.cfg.ShutdownTimeout)
	}
	if w.srv != nil {
		httpCtx, cancel := context.WithDeadline(context.Background(), start.Add(w.cfg.ShutdownTimeout/3))
		if err := w.srv.Shutdown(httpCtx); err != nil {
			w.log.Warn("requests still running at shutdown", "err", err)
			_ = w.srv.Close()
		}
		cancel()
		<-w.serveDone
	}
	w.ticks.Stop()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	l, err := m.Land(ctx)
	w.reg.LogSummary(w.log) // what the last minute's line did not cover
	if err != nil {
		w.log.Error("shutdown incomplete", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return errors.Join(cause, err)
	}
	w.log.Info("shutdown complete", "open_minutes_closed", l.minutes, "series", l.series, "took", time.Since(start).Round(time.Millisecond))
	return cause
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

// health answers GET /health with the mode's fields.
func health(w http.ResponseWriter, stopping bool, b healthBody) {
	b.Status, b.Version = "ok", version
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
