package outlet

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Engine is the in-memory scheduler, for a process without a database: it
// takes closed minutes (it is the rollup's Sink), queues them per lane, and
// runs Workers lanes at a time. A lane is worked by one worker at a time,
// one minute after another; after each minute the worker moves on to the
// lane that has waited longest, so that one lane's backlog does not hold up
// the others.
type Engine struct {
	send        *Sender
	dest        Destinations
	stats       *stats.Registry
	log         *slog.Logger
	now         func() time.Time
	forget      int64
	totalsShare *budget.Share // the lanes' running totals are charged to it (ChargeTotals)

	mu      sync.Mutex
	lanes   map[laneKey]*lane
	ring    []*lane // round-robin order
	pos     int
	closing bool
	wake    chan struct{}
	idle    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type laneKey struct {
	drain string
	kind  Kind
}

type lane struct {
	key      laneKey
	queue    []queued // closed minutes not yet built, ascending
	minute   queued   // the minute of job (to rebuild it if the outlet's encoding changes)
	building bool     // a minute was taken from the queue and is being built
	job      *Job
	totals   *Totals
	charged  int64 // totals' bytes, charged to the engine's totalsShare
	next     time.Time
	busy     bool
	pausedOn string // the Fingerprint the receiver refused
	status   Status
}

// queued is a closed minute waiting in a lane, encoded: each lane decodes
// its own copy (reading a sketch can change it, so lanes must not share
// one), and the encoding is smaller than the live minute.
type queued struct {
	start  int64
	data   []byte
	series int
}

func (l *lane) waiting() int {
	n := len(l.queue)
	if l.job != nil || l.building {
		n++
	}
	return n
}

// NewEngine returns an engine; Start starts its workers.
func NewEngine(s *Sender, dest Destinations, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Engine {
	return &Engine{send: s, dest: dest, stats: reg, log: log, now: now, forget: int64(s.cfg.MaxAge / time.Second),
		lanes: map[laneKey]*lane{}, wake: make(chan struct{}, 1), idle: make(chan struct{}, 1)}
}

// ChargeTotals charges the lanes' running totals, kept from one minute to
// the next, to share (the memory budget's): a lane whose totals do not fit
// forgets the series that moved longest ago (Totals.Charge). Call it
// before Start.
func (e *Engine) ChargeTotals(share *budget.Share) { e.totalsShare = share }

// Start starts the workers; they run until Shutdown.
func (e *Engine) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for range e.send.cfg.Workers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.work(ctx)
		}()
	}
}

// Closed queues closed minutes on every outlet of their drains.
func (e *Engine) Closed(minutes []*rollup.Minute) {
	enc := make([][]byte, len(minutes))
	for i, mn := range minutes {
		enc[i] = mn.AppendBinary(nil)
	}
	e.mu.Lock()
	for i, mn := range minutes {
		d, ok := e.dest.Destination(mn.Drain)
		if !ok {
			e.log.Warn("outlet: no such drain; minute dropped", "drain", mn.Drain, "series", len(mn.Series))
			e.stats.Drain(mn.Drain).Add(stats.PostDropped, uint64(len(mn.Series)))
			continue
		}
		for j := range d.Outlets {
			l := e.laneLocked(laneKey{d.ID, d.Outlets[j].Kind}, &d.Outlets[j])
			l.queue = append(l.queue, queued{start: mn.Start, data: enc[i], series: len(mn.Series)})
		}
	}
	e.mu.Unlock()
	e.signal()
}

func (e *Engine) laneLocked(k laneKey, o *Outlet) *lane {
	l := e.lanes[k]
	if l == nil {
		l = &lane{key: k, status: Status{Drain: k.drain, Kind: k.kind, Target: o.Redacted(), State: StateOK}}
		e.lanes[k] = l
		e.ring = append(e.ring, l)
	}
	return l
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) work(ctx context.Context) {
	for {
		l := e.take(ctx)
		if l == nil {
			return
		}
		e.run(ctx, l)
		e.mu.Lock()
		l.busy = false
		e.mu.Unlock()
		e.signal()
		select {
		case e.idle <- struct{}{}:
		default:
		}
	}
}

// due reports whether a lane may be worked now. e.mu is held.
func (e *Engine) due(l *lane, now time.Time) (bool, time.Duration) {
	if l.busy || (l.job == nil && len(l.queue) == 0) {
		return false, -1
	}
	if l.status.State == StatePaused {
		if d, ok := e.dest.Destination(l.key.drain); ok {
			if o, ok := d.Outlet(l.key.kind); ok && o.Fingerprint() != l.pausedOn {
				return true, 0 // new credentials: try them at once
			}
		}
	}
	if w := l.next.Sub(now); w > 0 {
		return false, w
	}
	return true, 0
}

// take waits for a lane that is due, in round-robin order.
func (e *Engine) take(ctx context.Context) *lane {
	for {
		e.mu.Lock()
		now := e.now()
		wait := time.Duration(-1)
		n := len(e.ring)
		for i := range n {
			l := e.ring[(e.pos+i)%n]
			ok, w := e.due(l, now)
			if ok {
				e.pos = (e.pos + i + 1) % n
				l.busy = true
				e.mu.Unlock()
				e.signal() // let another worker look at the rest
				return l
			}
			if w >= 0 && (wait < 0 || w < wait) {
				wait = w
			}
		}
		e.mu.Unlock()
		if wait < 0 || wait > time.Second {
			wait = time.Second // paused lanes look at their credentials once a second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-e.wake:
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// run works one lane until its current minute is delivered or a request
// must wait.
func (e *Engine) run(ctx context.Context, l *lane) {
	d, ok := e.dest.Destination(l.key.drain)
	var o *Outlet
	if ok {
		o, ok = d.Outlet(l.key.kind)
	}
	e.mu.Lock()
	st := l.status
	if !ok { // the outlet was removed: nothing to post its minutes to
		n := 0
		for _, q := range l.queue {
			n += q.series
		}
		l.queue, l.job, l.minute = nil, nil, queued{}
		e.mu.Unlock()
		e.stats.Drain(l.key.drain).Add(stats.PostDropped, uint64(n))
		e.log.Warn("outlet: the drain has no such outlet any more; its minutes are dropped", "drain", l.key.drain, "outlet", l.key.kind, "series", n)
		return
	}
	st.Target = o.Redacted()
	if l.job != nil && l.job.Key != o.EncodingKey() { // rebuild with the new encoding
		l.queue = append([]queued{l.minute}, l.queue...)
		l.job, l.minute = nil, queued{}
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		st.Waiting = l.waiting()
		l.status = st
		e.mu.Unlock()
	}()
	for {
		if l.job == nil {
			e.mu.Lock()
			if len(l.queue) == 0 {
				e.mu.Unlock()
				return
			}
			q := l.queue[0]
			l.queue = l.queue[1:]
			l.building = true
			e.mu.Unlock()
			mn, err := rollup.DecodeMinute(d.ID, q.start, q.data)
			var job *Job
			if err == nil {
				job, err = e.send.Build(d, o, mn, l.totals)
			}
			e.mu.Lock()
			l.building = false
			if err == nil {
				l.job, l.minute = job, q
			}
			e.mu.Unlock()
			if err != nil {
				e.log.Error("outlet: cannot build the minute; dropped", "drain", d.ID, "outlet", o.Kind, "err", err)
				e.stats.Drain(d.ID).Add(stats.PostDropped, uint64(q.series))
				continue
			}
		}
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if closing && e.send.GiveUpUncertain(d, o, l.job, &st) {
			// Shutting down: a request that got no answer (it may have
			// arrived) is not sent again and again until the deadline.
			if l.job.Done() {
				e.send.finished(d, o, l.job, &st)
				e.finishJob(l, &st)
				return
			}
			continue
		}
		step := e.send.Step(ctx, d, o, l.job, &st, st.Attempts)
		switch step.Action {
		case Continue:
			continue
		case Finished:
			e.finishJob(l, &st)
			return
		case Wait:
			e.mu.Lock()
			if e.closing && l.job.Uncertain() > 0 {
				e.mu.Unlock()
				continue // given up above, not sent again
			}
			if st.State == StatePaused {
				l.pausedOn = o.Fingerprint()
			}
			w := step.Wait
			if e.closing {
				w = min(w, time.Second)
			}
			l.next = e.now().Add(w)
			e.mu.Unlock()
			return
		}
	}
}

// finishJob ends the lane's delivered job.
func (e *Engine) finishJob(l *lane, st *Status) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A job that keeps no running state (delta, Librato) ends any:
	// switching back to cumulative starts new running totals.
	l.totals = l.job.Totals
	var forgot int
	if l.charged, forgot = l.totals.Charge(e.totalsShare, l.charged, l.minute.start); forgot > 0 {
		e.log.Warn("outlet: running totals trimmed to fit the memory budget's totals share; those counters restart from 0 when they come back",
			"drain", l.key.drain, "outlet", l.key.kind, "series", forgot, "share", e.totalsShare.String())
	}
	l.job, l.minute = nil, queued{}
	l.next, l.pausedOn = time.Time{}, ""
	st.Attempts = 0
}

// Lanes returns every lane's status, ordered by drain and kind.
func (e *Engine) Lanes() []Status {
	e.mu.Lock()
	out := make([]Status, 0, len(e.ring))
	for _, l := range e.ring {
		st := l.status
		st.Waiting = l.waiting()
		out = append(out, st)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Drain != out[j].Drain {
			return out[i].Drain < out[j].Drain
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// Pending returns the minutes waiting in all lanes.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.ring {
		n += l.waiting()
	}
	return n
}

// Shutdown posts everything pending, with retry waits cut to at most a
// second, until nothing is left or ctx is done; then stops the workers.
// Lanes paused on refused credentials are given up at once. What could not
// be posted is counted as dropped and returned as an error.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	now := e.now()
	var lost int
	for _, l := range e.ring {
		if l.next.Sub(now) > time.Second {
			l.next = now.Add(time.Second)
		}
		if l.status.State == StatePaused && !l.busy {
			lost += e.dropLocked(l, "paused at shutdown: "+PauseFix(l.status.PauseReason))
		}
	}
	e.mu.Unlock()
	e.signal()
	for {
		e.mu.Lock()
		busy := false
		for _, l := range e.ring {
			if l.busy || l.waiting() > 0 {
				busy = true
				break
			}
		}
		e.mu.Unlock()
		if !busy || ctx.Err() != nil {
			break
		}
		select {
		case <-e.idle:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	e.mu.Lock()
	for _, l := range e.ring {
		lost += e.dropLocked(l, "not posted before the shutdown deadline")
	}
	e.mu.Unlock()
	if lost > 0 {
		return fmt.Errorf("outlet: %d measurements not posted before the deadline", lost)
	}
	return nil
}

// dropLocked counts what a lane still holds as dropped. e.mu is held.
func (e *Engine) dropLocked(l *lane, why string) int {
	n := 0
	if l.job != nil {
		n += l.job.Points()
	}
	for _, q := range l.queue {
		n += q.series
	}
	l.job, l.minute, l.queue = nil, queued{}, nil
	if n > 0 {
		e.stats.Drain(l.key.drain).Add(stats.PostDropped, uint64(n))
		l.status.Dropped += uint64(n)
		e.log.Error("outlet: measurements dropped", "drain", l.key.drain, "outlet", l.key.kind, "measurements", n, "reason", why)
	}
	return n
}
