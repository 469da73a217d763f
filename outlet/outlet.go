// Package outlet posts closed minutes to Librato's legacy metrics API, or,
// for drains without Librato credentials, prints them to a log.
//
// Each closed (drain, minute) becomes jobs of at most BatchSize gauges.
// Workers post ready jobs; a job that fails for a retryable reason (network
// error, timeout, 5xx, 429, the 403 rate limit) waits with exponential
// backoff and jitter, honouring Retry-After, without holding a worker. A 400
// is split to find the measurement Librato refuses, which alone is dropped
// and remembered; a 401 pauses the drain (one probe every AuthProbe); other
// 4xx are dropped. Jobs older than MaxAge are dropped and counted. At most
// PerDrain posts of one drain run at once, so one drain's backlog cannot
// hold up the others.
package outlet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Target is where a drain's minutes go: Librato credentials, or the zero
// Target for the log outlet.
type Target struct {
	User  string
	Token string
}

// IsLog reports whether the target is the log outlet.
func (t Target) IsLog() bool { return t.User == "" && t.Token == "" }

// Destinations finds a drain's target.
type Destinations interface {
	Target(drain string) (Target, bool)
}

// Config is the outlet's configuration.
type Config struct {
	URL         string        // Librato's base URL
	UserAgent   string        // "drainmeter/<version>"
	Timeout     time.Duration // per request
	BatchSize   int           // gauges per request
	Workers     int           // concurrent posts
	PerDrain    int           // concurrent posts per drain
	MaxAge      time.Duration // pending minutes older than this are dropped
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	AuthProbe   time.Duration // while a drain's credentials are refused, one try this often
	Percentiles []float64
}

// DefaultConfig holds the defaults.
var DefaultConfig = Config{
	URL: "https://metrics-api.librato.com", UserAgent: "drainmeter", Timeout: 10 * time.Second,
	BatchSize: 300, Workers: 4, PerDrain: 2, MaxAge: time.Hour,
	MinBackoff: time.Second, MaxBackoff: 2 * time.Minute, AuthProbe: 5 * time.Minute,
	Percentiles: []float64{50, 95, 99},
}

type job struct {
	drain    string
	target   Target
	minute   int64
	gauges   []Gauge
	attempts int
	next     time.Time
	del      *delivery // set for minutes handed over with Deliver
}

// delivery tracks the jobs of one Deliver call. Its fields are guarded by
// the outlet's mutex.
type delivery struct {
	remaining int
	settled   bool
	done      func(final bool)
}

// Outlet posts closed minutes.
type Outlet struct {
	cfg    Config
	dest   Destinations
	stats  *stats.Registry
	log    *slog.Logger
	out    io.Writer // the log outlet's output
	now    func() time.Time
	client *http.Client

	outMu sync.Mutex // serializes writes to out

	mu       sync.Mutex
	jobs     []*job
	inflight map[string]int
	refused  map[string]map[string]bool // drain → gauge names Librato refused
	authFail map[string]bool            // drains whose credentials Librato refuses
	closing  bool
	wake     chan struct{}
	idle     chan struct{} // signalled when a job finishes, for Shutdown
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New returns an outlet; Start starts its workers.
func New(cfg Config, dest Destinations, reg *stats.Registry, log *slog.Logger, out io.Writer, now func() time.Time) *Outlet {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultConfig.BatchSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultConfig.Workers
	}
	if cfg.PerDrain <= 0 {
		cfg.PerDrain = DefaultConfig.PerDrain
	}
	return &Outlet{
		cfg: cfg, dest: dest, stats: reg, log: log, out: out, now: now,
		client:   &http.Client{Timeout: cfg.Timeout},
		inflight: map[string]int{}, refused: map[string]map[string]bool{}, authFail: map[string]bool{},
		wake: make(chan struct{}, 1), idle: make(chan struct{}, 1),
	}
}

// Start starts the workers. They run until Shutdown.
func (o *Outlet) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	for range o.cfg.Workers {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.work(ctx)
		}()
	}
}

// Closed takes closed minutes (it is the rollup's Sink): the log outlet
// prints them at once; Librato targets get jobs.
func (o *Outlet) Closed(minutes []*rollup.Minute) {
	now := o.now()
	for _, mn := range minutes {
		ds := o.stats.Drain(mn.Drain)
		target, ok := o.dest.Target(mn.Drain)
		if !ok {
			o.log.Warn("outlet: no destination for drain; minute dropped", "drain", mn.Drain, "series", len(mn.Series))
			ds.Add(stats.PostDropped, uint64(len(mn.Series)))
			continue
		}
		sums := mn.Summaries(o.cfg.Percentiles)
		if target.IsLog() {
			o.print(mn, sums)
			ds.Add(stats.Posted, uint64(len(sums)))
			continue
		}
		gauges, skipped := Gauges(mn.Start, sums, o.cfg.Percentiles)
		if skipped > 0 {
			o.log.Warn("outlet: values out of Librato's range left out", "drain", mn.Drain, "series", skipped)
			ds.Add(stats.PostRejected, uint64(skipped))
		}
		o.enqueue(mn.Drain, target, mn.Start, gauges, now)
	}
}

// Deliver posts one minute like Closed and calls done once, without
// holding any lock: final=true when every measurement of the minute has been
// posted or given up on (and counted), false when Shutdown interrupted it
// (nothing is counted as dropped then: the caller tries again later, and
// measurements already accepted by Librato may be posted twice).
func (o *Outlet) Deliver(mn *rollup.Minute, done func(final bool)) {
	ds := o.stats.Drain(mn.Drain)
	target, ok := o.dest.Target(mn.Drain)
	if !ok {
		o.log.Warn("outlet: no destination for drain; minute dropped", "drain", mn.Drain, "series", len(mn.Series))
		ds.Add(stats.PostDropped, uint64(len(mn.Series)))
		done(true)
		return
	}
	sums := mn.Summaries(o.cfg.Percentiles)
	if target.IsLog() {
		o.print(mn, sums)
		ds.Add(stats.Posted, uint64(len(sums)))
		done(true)
		return
	}
	gauges, skipped := Gauges(mn.Start, sums, o.cfg.Percentiles)
	if skipped > 0 {
		o.log.Warn("outlet: values out of Librato's range left out", "drain", mn.Drain, "series", skipped)
		ds.Add(stats.PostRejected, uint64(skipped))
	}
	del := &delivery{done: done}
	if n := o.enqueueDelivery(mn.Drain, target, mn.Start, gauges, o.now(), del); n == 0 {
		done(true)
	}
}

func (o *Outlet) print(mn *rollup.Minute, sums []rollup.Summary) {
	var b []byte
	for i := range sums {
		b = rollup.AppendLogfmt(b, mn.Drain, mn.Start, &sums[i], o.cfg.Percentiles)
	}
	o.outMu.Lock()
	defer o.outMu.Unlock()
	if _, err := o.out.Write(b); err != nil {
		o.log.Error("outlet: writing rollups", "err", err)
	}
}

func (o *Outlet) enqueue(drain string, target Target, minute int64, gauges []Gauge, now time.Time) {
	o.enqueueDelivery(drain, target, minute, gauges, now, nil)
}

// enqueueDelivery queues the gauges as jobs of at most BatchSize and returns
// how many jobs it queued.
func (o *Outlet) enqueueDelivery(drain string, target Target, minute int64, gauges []Gauge, now time.Time, del *delivery) int {
	o.mu.Lock()
	refused := o.refused[drain]
	if len(refused) > 0 {
		kept := gauges[:0]
		for _, g := range gauges {
			if !refused[strings.ToLower(g.Name)] {
				kept = append(kept, g)
			}
		}
		if n := len(gauges) - len(kept); n > 0 {
			o.stats.Drain(drain).Add(stats.PostRejected, uint64(n))
		}
		gauges = kept
	}
	jobs := 0
	for len(gauges) > 0 {
		n := min(len(gauges), o.cfg.BatchSize)
		o.jobs = append(o.jobs, &job{drain: drain, target: target, minute: minute, gauges: gauges[:n:n], next: now, del: del})
		gauges = gauges[n:]
		jobs++
	}
	if del != nil {
		del.remaining = jobs
	}
	o.mu.Unlock()
	o.signal()
	return jobs
}

// settle records that one job of a delivery is finished with; it returns
// the callback to run (after unlocking) when that was the last one, or when
// the delivery is interrupted. o.mu is held.
func (o *Outlet) settle(j *job, final bool) func() {
	d := j.del
	if d == nil || d.settled {
		return nil
	}
	if final {
		if d.remaining--; d.remaining > 0 {
			return nil
		}
	}
	d.settled = true
	return func() { d.done(final) }
}

func (o *Outlet) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Pending returns the number of gauges waiting to be posted.
func (o *Outlet) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, j := range o.jobs {
		n += len(j.gauges)
	}
	return n
}

// Status reports, per drain, "ok" or "unauthorized" for drains whose
// credentials Librato refuses.
func (o *Outlet) Status() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := map[string]string{}
	for d, bad := range o.authFail {
		if bad {
			st[d] = "unauthorized"
		}
	}
	return st
}

func (o *Outlet) work(ctx context.Context) {
	for {
		j := o.take(ctx)
		if j == nil {
			return
		}
		o.finish(j, o.post(ctx, j))
	}
}

// take waits for a job that is due and whose drain has a free slot.
func (o *Outlet) take(ctx context.Context) *job {
	for {
		o.mu.Lock()
		now := o.now()
		var wait time.Duration = -1
		var callbacks []func()
		for i := 0; i < len(o.jobs); i++ {
			j := o.jobs[i]
			if now.Unix()-j.minute > int64(o.cfg.MaxAge/time.Second) {
				o.drop(j, "older than the pending limit")
				if cb := o.settle(j, true); cb != nil {
					callbacks = append(callbacks, cb)
				}
				o.jobs = append(o.jobs[:i], o.jobs[i+1:]...)
				i--
				continue
			}
			if o.inflight[j.drain] >= o.cfg.PerDrain {
				continue
			}
			if d := j.next.Sub(now); d > 0 {
				if wait < 0 || d < wait {
					wait = d
				}
				continue
			}
			o.jobs = append(o.jobs[:i], o.jobs[i+1:]...)
			o.inflight[j.drain]++
			more := len(o.jobs) > 0
			o.mu.Unlock()
			runAll(callbacks)
			if more {
				o.signal() // let another worker look at the rest
			}
			return j
		}
		o.mu.Unlock()
		runAll(callbacks)
		var timer *time.Timer
		var fire <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-o.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// drop counts a job's gauges as dropped. o.mu is held.
func (o *Outlet) drop(j *job, why string) {
	o.stats.Drain(j.drain).Add(stats.PostDropped, uint64(len(j.gauges)))
	o.log.Warn("outlet: measurements dropped", "drain", j.drain, "minute", time.Unix(j.minute, 0).UTC().Format(time.RFC3339),
		"measurements", len(j.gauges), "reason", why)
}

type outcome int

const (
	posted outcome = iota
	retry
	badRequest
	unauthorized
	refusedOther
)

type result struct {
	outcome    outcome
	status     int
	retryAfter time.Duration
	detail     string // an error or an excerpt of Librato's answer
}

// post sends one job.
func (o *Outlet) post(ctx context.Context, j *job) result {
	body, err := json.Marshal(struct {
		Gauges []Gauge `json:"gauges"`
	}{j.gauges})
	if err != nil { // cannot happen: Gauges holds only finite numbers and strings
		return result{outcome: refusedOther, detail: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.cfg.URL, "/")+"/v1/metrics", bytes.NewReader(body))
	if err != nil {
		return result{outcome: refusedOther, detail: err.Error()}
	}
	req.SetBasicAuth(j.target.User, j.target.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", o.cfg.UserAgent)
	resp, err := o.client.Do(req)
	if err != nil {
		return result{outcome: retry, detail: fmt.Sprintf("outlet: post: %v", err)}
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	res := result{status: resp.StatusCode, detail: string(excerpt)}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		res.outcome = posted
	case s == http.StatusTooManyRequests || s >= 500 ||
		(s == http.StatusForbidden && bytes.Contains(excerpt, []byte("API limit"))):
		res.outcome = retry
		res.retryAfter = retryAfter(resp.Header.Get("Retry-After"), o.now())
	case s == http.StatusBadRequest:
		res.outcome = badRequest
	case s == http.StatusUnauthorized:
		res.outcome = unauthorized
	default:
		res.outcome = refusedOther
	}
	return res
}

func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return t.Sub(now)
	}
	return 0
}

func (o *Outlet) finish(j *job, r result) {
	now := o.now()
	ds := o.stats.Drain(j.drain)
	var cb func()
	o.mu.Lock()
	defer func() {
		o.mu.Unlock()
		if cb != nil {
			cb()
		}
		o.signal()
		select {
		case o.idle <- struct{}{}:
		default:
		}
	}()
	o.inflight[j.drain]--
	if o.inflight[j.drain] == 0 {
		delete(o.inflight, j.drain)
	}
	minute := time.Unix(j.minute, 0).UTC().Format(time.RFC3339)
	switch r.outcome {
	case posted:
		ds.Add(stats.Posted, uint64(len(j.gauges)))
		cb = o.settle(j, true)
		if o.authFail[j.drain] {
			delete(o.authFail, j.drain)
			o.log.Info("outlet: Librato accepts the drain's credentials again", "drain", j.drain)
		}
	case retry:
		j.attempts++
		backoff := o.backoff(j.attempts)
		if r.retryAfter > backoff {
			backoff = r.retryAfter
		}
		if o.closing {
			backoff = min(backoff, time.Second)
		}
		j.next = now.Add(backoff)
		o.log.Info("outlet: post failed, will retry", "drain", j.drain, "minute", minute, "status", r.status,
			"attempt", j.attempts, "retry_in", backoff.Round(time.Millisecond), "err", r.detail)
		o.jobs = append(o.jobs, j)
	case badRequest:
		switch {
		case strings.Contains(r.detail, "measure_time"):
			ds.Add(stats.PostRejected, uint64(len(j.gauges)))
			cb = o.settle(j, true)
			o.log.Warn("outlet: Librato refused the minute's time; dropped", "drain", j.drain, "minute", minute,
				"measurements", len(j.gauges), "error", r.detail)
		case len(j.gauges) > 1:
			// Librato rejects a whole request for one bad measurement:
			// split it to find that one.
			half := len(j.gauges) / 2
			a, b := *j, *j
			a.gauges, b.gauges = j.gauges[:half:half], j.gauges[half:]
			a.next, b.next = now, now
			o.jobs = append(o.jobs, &a, &b)
			if j.del != nil {
				j.del.remaining++ // one job became two
			}
		default:
			g := j.gauges[0]
			ds.Add(stats.PostRejected, 1)
			cb = o.settle(j, true)
			if o.refused[j.drain] == nil {
				o.refused[j.drain] = map[string]bool{}
			}
			o.refused[j.drain][strings.ToLower(g.Name)] = true
			o.log.Warn("outlet: Librato refused a measurement; its name will not be sent again",
				"drain", j.drain, "name", g.Name, "source", g.Source, "minute", minute, "error", r.detail)
		}
	case unauthorized:
		if !o.authFail[j.drain] {
			o.authFail[j.drain] = true
			o.log.Error("outlet: Librato refused the drain's credentials (401); posting paused, probing every "+o.cfg.AuthProbe.String(),
				"drain", j.drain, "user", j.target.User)
		}
		if o.closing {
			if j.del != nil { // given back: tried again when the credentials work
				cb = o.settle(j, false)
				return
			}
			o.drop(j, "credentials refused")
			return
		}
		j.next = now.Add(o.cfg.AuthProbe)
		o.jobs = append(o.jobs, j)
	case refusedOther:
		ds.Add(stats.PostRejected, uint64(len(j.gauges)))
		cb = o.settle(j, true)
		o.log.Error("outlet: Librato refused the request; dropped", "drain", j.drain, "minute", minute,
			"status", r.status, "measurements", len(j.gauges), "error", r.detail)
	}
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// backoff is exponential with full jitter over the upper half: the n-th
// retry waits between d/2 and d, d = min(MaxBackoff, MinBackoff·2^(n-1)).
func (o *Outlet) backoff(n int) time.Duration {
	d := o.cfg.MinBackoff << min(n-1, 20)
	if d <= 0 || d > o.cfg.MaxBackoff {
		d = o.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// Shutdown posts everything pending (retry waits are cut to at most a
// second) until nothing is left or ctx is done, then stops the workers.
// What could not be posted is counted as dropped and returned as an error.
func (o *Outlet) Shutdown(ctx context.Context) error {
	o.mu.Lock()
	o.closing = true
	for _, j := range o.jobs {
		if d := j.next.Sub(o.now()); d > time.Second {
			j.next = o.now().Add(time.Second)
		}
	}
	o.mu.Unlock()
	o.signal()
	for {
		o.mu.Lock()
		busy := len(o.jobs) > 0 || len(o.inflight) > 0
		o.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-o.idle:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
	o.mu.Lock()
	lost := 0
	var callbacks []func()
	for _, j := range o.jobs {
		if j.del != nil { // handed back to the durable store, not lost
			if cb := o.settle(j, false); cb != nil {
				callbacks = append(callbacks, cb)
			}
			continue
		}
		lost += len(j.gauges)
		o.drop(j, "shutdown deadline")
	}
	o.jobs = nil
	o.mu.Unlock()
	runAll(callbacks)
	if lost > 0 {
		return fmt.Errorf("outlet: %d measurements not posted before the deadline", lost)
	}
	return nil
}
