// Package chaos is drainmeter's chaos run, the acceptance of the durable
// mode (issue 10): two or three `drainmeter web` processes on one private
// Postgres, loaded like logplex loads them — internal/loadgen batches with
// a Logplex-Frame-Id and exact expected totals, 5 % of them sent again at
// once to another dyno (even while the first attempt is being counted), 2 %
// again 3 s later, every failed attempt again to another dyno — while it
// SIGTERMs and restarts a web, partitions a web from Postgres (a TCP proxy
// that stops passing bytes) for twice WRITER_TIMEOUT + GRACE across the
// time a minute is sealed, fails both outlets (a fake Librato and a fake
// OTLP receiver in delta mode) for 60 s, and within that outage stops
// Postgres for 20 s and SIGKILLs a web (each restarted).
//
// Then it checks, and reports:
//   - every count and every measure's count, sum, min and max, per series
//     and minute, on both outlets, exactly; percentiles (Librato's) within
//     1 % of the exact nearest rank. Minutes that data was shifted from or to
//     (the shifts table: a partial that reached Postgres after its minute was
//     sealed) are checked per series over the minutes the shifts join, and
//     per minute in measurements: every minute's sealed measurements are
//     exactly what was sent, less what was shifted out, plus what was
//     shifted in;
//   - each minute posted once per outlet (no second point for a series and
//     time), and what was posted is what was sealed;
//   - the only loss is the documented bound of kill -9: what the killed
//     process accepted since its last write of partials. The run knows
//     every batch it sent to that process and when each was answered; the
//     loss (in measurements) must be at most the measurements of the batches
//     that process answered within PARTIAL_FLUSH_INTERVAL plus 1 s before the
//     kill, or had in flight at it, and must lie in those batches' minutes;
//   - every batch answered within logplex's 5 s, /health too, also during
//     the partition (latencies reported); a clean SIGTERM exits 0 and logs
//     no error.
//
// While Postgres is down, and while a dyno is cut off from it, batch ids
// are claimed in that dyno's memory, so a copy of a batch on another dyno
// counts again — the one exception the README states besides kill -9. The
// run keeps such copies out of those windows: a batch first sent, or sent
// again, within one stays on its first dyno (see window). Every other
// copy goes where the router sends it.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/tcpproxy"
	"github.com/drainmeter/drainmeter/postgres"
)

// The web dynos' timings: short, so that minutes seal within seconds.
const (
	grace         = 5 * time.Second
	flushInterval = 2 * time.Second // PARTIAL_FLUSH_INTERVAL
	writerTimeout = 10 * time.Second
	partitionFor  = 2 * (writerTimeout + grace)
	pgDownFor     = 20 * time.Second
	outletDownFor = 60 * time.Second
	restartAfter  = 5 * time.Second
	minDuration   = 3 * time.Minute
	settleTimeout = 5 * time.Minute
	windowBefore  = 3 * time.Second  // batches stay on one dyno from this long before a window ...
	windowAfter   = 10 * time.Second // ... until this long after it: ids claimed in memory are written back
	libratoUser   = "chaos@example.com"
	libratoToken  = "chaos-token"
)

// Config is a chaos run.
type Config struct {
	Duration time.Duration // of load; at least 3m, and as long as a cycle of events takes
	Webs     int           // web dynos, 2 or 3
	Seed     uint64        // the load's
	Rate     int           // batches per second (default 15)
	Frames   int           // frames per batch (default 40)
	Binary   string        // the drainmeter binary; "" builds it
	PGBin    string        // the directory of initdb and pg_ctl
	PGUser   string        // the system user to run Postgres as ("" this one)
	Dir      string        // logs (and the binary); "" a temporary directory, removed unless the run failed
	Log      io.Writer     // progress; nil discards it
}

// Run runs the chaos and checks what arrived. The error is for a run that
// could not be carried out; what the checks find is in Report.Violations.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Duration < minDuration {
		cfg.Duration = minDuration
	}
	if cfg.Webs == 0 {
		cfg.Webs = 3
	}
	if cfg.Webs < 2 || cfg.Webs > 3 {
		return nil, fmt.Errorf("chaos: %d webs: 2 or 3", cfg.Webs)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 15
	}
	if cfg.Frames <= 0 {
		cfg.Frames = 40
	}
	if cfg.PGBin == "" {
		return nil, errors.New("chaos: the directory of Postgres's pg_ctl is needed (TEST_PG_BIN; scripts/with-postgres finds it)")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	keep := cfg.Dir != ""
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "drainmeter-chaos")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, start: time.Now()}
	rep, err := r.run(ctx)
	if !keep && err == nil && rep.OK() {
		os.RemoveAll(cfg.Dir)
		rep.Dir = ""
	}
	return rep, err
}

// run is the state of one chaos run.
type run struct {
	cfg   Config
	start time.Time

	mu     sync.Mutex
	events []Event
	kills  []kill
	parts  []partition
	fails  []window // when the outlets failed (their 503s are expected then)
	terms  []*instance
	probes []probe // /health of a partitioned dyno

	pg      *pgtest.Server
	pool    *pgxpool.Pool
	c       *cluster
	load    *load
	lib     *fakelibrato.Server
	otlp    *fakeotlp.Server
	sealed  *sealedMinutes
	drainID string
}

// kill is a SIGKILL of a process.
type kill struct {
	inst *instance
	at   time.Time
}

// partition is a dyno cut off from Postgres.
type partition struct {
	web      *web
	inst     *instance // its process during the partition
	from, to time.Time
}

// probe is one GET /health.
type probe struct {
	at      time.Time
	latency time.Duration
	status  int
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "chaos %6.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// event records something the run did, for the report.
func (r *run) event(format string, args ...any) {
	e := Event{At: time.Since(r.start), What: fmt.Sprintf(format, args...)}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.logf("%s", e.What)
}

var drainURLRe = regexp.MustCompile(`https?://(d[0-9a-f]{16}):([0-9a-f]{48})@[^/\s]+/logs`)

func (r *run) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	bin := cfg.Binary
	if bin == "" {
		bin = filepath.Join(cfg.Dir, "drainmeter")
		r.logf("building %s", bin)
		build := exec.Command("go", "build", "-o", bin, "github.com/drainmeter/drainmeter/cmd/drainmeter")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chaos: go build: %v\n%s", err, out)
		}
	}
	var err error
	if r.pg, err = pgtest.Launch(cfg.PGBin, cfg.PGUser); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	defer r.pg.Remove()
	r.logf("Postgres on port %d; logs in %s", r.pg.Port, cfg.Dir)

	r.lib = fakelibrato.New(map[string]string{libratoUser: libratoToken})
	libSrv := httptest.NewServer(r.lib)
	defer libSrv.Close()
	r.otlp = fakeotlp.New(fakeotlp.Strict)
	otlpSrv := httptest.NewServer(r.otlp)
	defer otlpSrv.Close()

	key := postgres.NewKey()
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + r.pg.URL, "DRAINMETER_KEY=" + key,
			"DRAINMETER_URL=http://127.0.0.1"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("chaos: drainmeter %v: %v\n%s", args, err, out)
		}
		return string(out), nil
	}
	if _, err := cli("migrate"); err != nil {
		return nil, err
	}
	out, err := cli("drains", "add", "--name", "chaos", "--librato-user", libratoUser, "--librato-token", libratoToken,
		"--otlp-endpoint", otlpSrv.URL+"/v1/metrics", "--otlp-temporality", "delta")
	if err != nil {
		return nil, err
	}
	m := drainURLRe.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("chaos: no drain URL in:\n%s", out)
	}
	r.drainID = m[1]
	if r.pool, err = pgxpool.New(ctx, r.pg.URL); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	defer r.pool.Close()

	r.c = &cluster{bin: bin, dir: cfg.Dir, env: []string{"DRAINMETER_KEY=" + key, "LIBRATO_URL=" + libSrv.URL,
		"GRACE=" + grace.String(), "PARTIAL_FLUSH_INTERVAL=" + flushInterval.String(), "WRITER_TIMEOUT=" + writerTimeout.String(),
		"OUTLET_TIMEOUT=2s", "OUTLET_MAX_BACKOFF=5s", "DRAIN_CACHE_TTL=5s", "SHUTDOWN_TIMEOUT=15s",
		// Self-metrics would add drainmeter.* series to the minutes: the
		// measurement accounting is of the load's series alone.
		"SELF_METRICS=false"}}
	for i := range cfg.Webs {
		p, err := tcpproxy.Start("127.0.0.1:" + strconv.Itoa(r.pg.Port))
		if err != nil {
			return nil, err
		}
		defer p.Close()
		r.c.webs = append(r.c.webs, &web{name: fmt.Sprintf("web.%d", i+1), proxy: p})
	}
	defer r.c.killAll()
	for _, w := range r.c.webs {
		inst, err := r.c.start(w)
		if err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		r.event("started %s at %s", inst, inst.url)
	}

	r.sealed = newSealedMinutes(r.pool, r.drainID)
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go r.sealed.poll(pollCtx, 5*time.Second)

	r.load = newLoad(r.c, r.drainID, m[2], cfg.Seed, cfg.Rate, cfg.Frames)
	loadStart := time.Now()
	cycles, loadEnd := r.plan(loadStart)
	scriptDone := make(chan error, 1)
	scriptCtx, stopScript := context.WithCancel(ctx)
	defer stopScript()
	go func() { scriptDone <- r.script(scriptCtx, cycles) }()
	r.logf("load: %d batches/s of %d frames until +%.0fs; %d cycle(s) of events", cfg.Rate, cfg.Frames,
		loadEnd.Sub(r.start).Seconds(), len(cycles))
	totals := r.load.run(ctx, loadEnd)
	r.event("load stopped: %d batches sent", len(r.load.batches))
	if err := <-scriptDone; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	settled := r.settle(ctx, totals)
	for _, w := range r.c.webs {
		if inst := w.current(); inst != nil {
			r.terms = append(r.terms, inst)
		}
	}
	stopErrs := r.c.stopAll()
	r.event("every web stopped (SIGTERM)")
	stopPolling()
	if err := r.sealed.read(ctx); err != nil {
		return nil, fmt.Errorf("chaos: reading the sealed minutes: %w", err)
	}
	shifts, err := readShifts(ctx, r.pool, r.drainID)
	if err != nil {
		return nil, fmt.Errorf("chaos: reading the shifts: %w", err)
	}
	rep := r.check(totals, shifts, loadEnd.Sub(loadStart))
	if settled != nil {
		rep.violate("%v", settled)
	}
	for _, err := range stopErrs {
		rep.violate("clean shutdown: %v", err)
	}
	rep.Dir = cfg.Dir
	return rep, nil
}

// cycle is one round of every event.
type cycle struct {
	term, part, killed *web
	termAt             time.Time
	partFrom, partTo   time.Time
	failFrom, failTo   time.Time
	pgFrom, pgTo       time.Time
	killAt             time.Time
	end                time.Time
}

// nextPhase returns the first time at or after t that is sec seconds past
// a wall-clock minute.
func nextPhase(t time.Time, sec int) time.Time {
	m := t.Truncate(time.Minute).Add(time.Duration(sec) * time.Second)
	for m.Before(t) {
		m = m.Add(time.Minute)
	}
	return m
}

// plan lays out the cycles of events from start, as many as the duration
// holds (at least one), and when the load ends.
//
// A cycle: SIGTERM a web and restart it; then, from 50 s past a minute,
// cut a web off from Postgres for 2 × (WRITER_TIMEOUT + GRACE), across the
// time the minute is sealed (about 66 s past its start) so that its last
// partials of the minute reach Postgres after it was sealed; then fail the
// outlets for 60 s, and within that outage stop Postgres for 20 s and
// SIGKILL a web (restarted 5 s later). Postgres and the kill are inside the
// outlets' outage so that no request to an outlet can be accepted and then
// not recorded (the README's other kill -9 bound, tested on its own).
//
// The SIGTERM and the kill get a jitter of up to two flush intervals (from
// the seed): the webs write their partials on a ticker started with them,
// and a kill at a whole number of seconds after the start would always
// land at the same point of that cycle.
func (r *run) plan(start time.Time) ([]cycle, time.Time) {
	webs := r.c.webs
	n := len(webs)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x91a4))
	jitter := func() time.Duration { return time.Duration(rng.Int64N(int64(2 * flushInterval))) }
	var cycles []cycle
	at := start.Add(10 * time.Second)
	for k := 0; ; k++ {
		cy := cycle{part: webs[k%n], term: webs[(k+1)%n], killed: webs[(k+1)%n]}
		if n >= 3 {
			cy.killed = webs[(k+2)%n]
		}
		cy.termAt = at.Add(5*time.Second + jitter())
		cy.partFrom = nextPhase(at.Add(20*time.Second), 50)
		cy.partTo = cy.partFrom.Add(partitionFor)
		cy.failFrom = cy.partTo.Add(5 * time.Second)
		cy.failTo = cy.failFrom.Add(outletDownFor)
		cy.pgFrom = cy.failFrom.Add(2 * time.Second)
		cy.pgTo = cy.pgFrom.Add(pgDownFor)
		cy.killAt = cy.pgTo.Add(20*time.Second + jitter())
		cy.end = cy.failTo.Add(restartAfter)
		if k > 0 && cy.end.Truncate(time.Minute).Add(2*time.Minute).After(start.Add(r.cfg.Duration)) {
			break
		}
		cycles = append(cycles, cy)
		r.load.addWindow(cy.partFrom.Add(-windowBefore), cy.partTo.Add(windowAfter), cy.part)
		r.load.addWindow(cy.pgFrom.Add(-windowBefore), cy.pgTo.Add(windowAfter), nil)
		r.fails = append(r.fails, window{from: cy.failFrom, to: cy.failTo.Add(time.Second)})
		at = cy.end.Add(10 * time.Second)
	}
	// The load goes on through the whole minute after the last cycle: a
	// minute after all of it, that no event touched, is compared exactly.
	end := start.Add(r.cfg.Duration)
	if last := cycles[len(cycles)-1].end.Truncate(time.Minute).Add(2*time.Minute + time.Second); last.After(end) {
		end = last
	}
	return cycles, end
}

// sleepUntil waits until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// script carries out the cycles.
func (r *run) script(ctx context.Context, cycles []cycle) error {
	for i, cy := range cycles {
		r.logf("cycle %d: SIGTERM %s at +%.0fs; partition %s +%.0fs..+%.0fs; outlets down +%.0fs..+%.0fs; Postgres down +%.0fs..+%.0fs; SIGKILL %s at +%.0fs",
			i+1, cy.term.name, r.off(cy.termAt), cy.part.name, r.off(cy.partFrom), r.off(cy.partTo), r.off(cy.failFrom), r.off(cy.failTo),
			r.off(cy.pgFrom), r.off(cy.pgTo), cy.killed.name, r.off(cy.killAt))

		if !sleepUntil(ctx, cy.termAt) {
			return ctx.Err()
		}
		inst, took, err := r.c.terminate(cy.term)
		r.mu.Lock()
		r.terms = append(r.terms, inst)
		r.mu.Unlock()
		if err != nil {
			r.event("SIGTERM %s: exit %v after %v", inst, err, took.Round(time.Millisecond))
		} else {
			r.event("SIGTERM %s: exited cleanly in %v", inst, took.Round(time.Millisecond))
		}
		time.Sleep(3 * time.Second)
		if inst, err = r.c.start(cy.term); err != nil {
			return fmt.Errorf("chaos: restart after SIGTERM: %w", err)
		}
		r.event("restarted %s", inst)

		if !sleepUntil(ctx, cy.partFrom) {
			return ctx.Err()
		}
		p := partition{web: cy.part, inst: cy.part.current(), from: time.Now()}
		cy.part.proxy.Pause()
		r.event("partition: %s cut off from Postgres (its proxy paused: connections hang)", cy.part.name)
		probeCtx, stopProbe := context.WithCancel(ctx)
		probed := make(chan struct{})
		go func() { defer close(probed); r.probeHealth(probeCtx, p.inst) }()
		if !sleepUntil(ctx, cy.partTo) {
			stopProbe()
			return ctx.Err()
		}
		cy.part.proxy.Resume()
		p.to = time.Now()
		stopProbe()
		<-probed
		r.mu.Lock()
		r.parts = append(r.parts, p)
		r.mu.Unlock()
		r.event("partition of %s healed after %v", cy.part.name, p.to.Sub(p.from).Round(time.Second))

		if !sleepUntil(ctx, cy.failFrom) {
			return ctx.Err()
		}
		r.lib.FailUntil(cy.failTo, fakelibrato.Maintenance)
		r.otlp.FailUntil(cy.failTo)
		r.event("outlets fail (503) for %v", outletDownFor)

		if !sleepUntil(ctx, cy.pgFrom) {
			return ctx.Err()
		}
		if err := r.pg.Down(); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		r.event("Postgres stopped")
		if !sleepUntil(ctx, cy.pgTo) {
			return ctx.Err()
		}
		if err := r.pg.Up(); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		r.event("Postgres started again")

		if !sleepUntil(ctx, cy.killAt) {
			return ctx.Err()
		}
		inst, at, err := r.c.kill(cy.killed)
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		r.mu.Lock()
		r.kills = append(r.kills, kill{inst: inst, at: at})
		r.mu.Unlock()
		r.event("SIGKILL %s", inst)
		if !sleepUntil(ctx, at.Add(restartAfter)) {
			return ctx.Err()
		}
		if inst, err = r.c.start(cy.killed); err != nil {
			return fmt.Errorf("chaos: restart after SIGKILL: %w", err)
		}
		r.event("restarted %s", inst)
		if !sleepUntil(ctx, cy.failTo) {
			return ctx.Err()
		}
		r.event("outlets back")
	}
	return nil
}

func (r *run) off(t time.Time) float64 { return t.Sub(r.start).Seconds() }

// probeHealth GETs /health of inst every 250 ms until ctx ends.
func (r *run) probeHealth(ctx context.Context, inst *instance) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		status := 0
		if resp, err := r.load.client.Get(inst.url + "/health"); err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		r.mu.Lock()
		r.probes = append(r.probes, probe{at: start, latency: time.Since(start), status: status})
		r.mu.Unlock()
	}
}
