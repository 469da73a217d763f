// Package rollup aggregates measurements per (drain, name, source,
// dimensions, minute) in memory: exact counts and sums, last samples,
// mergeable percentile sketches and distinct counts. A minute closes Grace
// after it ends (ClosedThrough in minute.go, the one close rule, which the
// durable mode's writers follow too); closed minutes are swapped out under
// the drain's lock and summarized after it is released. Series state is bounded in bytes, per
// drain across all its open minutes (memory.go). A drain's routes (the
// route dimension) are capped per minute; its events (deploys, releases,
// rollbacks) are kept with their minute.
//
// The store knows nothing of where closed minutes go: Run hands them to a
// Sink (the Librato outlet, a log, or a durable store).
package rollup

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// Config is the store's configuration.
type Config struct {
	Grace             time.Duration // a minute closes this long after it ends
	MaxSeriesPerDrain int           // open series per drain and minute; more are refused and counted
	MaxFuture         time.Duration // measurements stamped further ahead are dropped and counted

	// MaxRoutesPerDrain bounds the distinct values of the route dimension
	// per drain and minute (parse.RouteOther aside): the measurements of
	// further routes go to route "other" and are counted as overflow.
	MaxRoutesPerDrain int

	// AppRollup gives each closed minute its app rollups (AddAppRollups):
	// "the app's p95", "the app's 5xx" each one series, whatever the
	// lines' sources. They are built when a minute closes, from its other
	// series, so that ingest does not pay for them line by line.
	AppRollup bool

	// Series is the memory budget's share for series state, across drains
	// (memory.go); nil: unbounded.
	Series *budget.Share
	// MaxBytesPerDrain bounds one drain's series state across all its open
	// minutes, future ones included; 0: unbounded.
	MaxBytesPerDrain int64
}

// DefaultConfig is the configuration the web server starts with.
var DefaultConfig = Config{Grace: 90 * time.Second, MaxSeriesPerDrain: 20000, MaxFuture: 5 * time.Minute, MaxRoutesPerDrain: 200}

// MaxEventsPerMinute bounds the events (parse.Event) a drain keeps per
// minute; further ones are counted as overflow.
const MaxEventsPerMinute = 100

// Store is the in-memory rollup state of every drain. Each drain's state has
// one lock; Add takes it once per batch.
type Store struct {
	cfg    Config
	mu     sync.RWMutex
	drains map[string]*drainState
}

type drainState struct {
	mu            sync.Mutex
	minutes       map[int64]*Minute
	closedThrough int64 // every minute starting at or before this is closed
	key           []byte
	dims          []byte              // dimensions rewritten by the routes cap
	used          int64               // bytes accounted for the series of its open minutes
	reserved      int64               // bytes acquired from Config.Series for them
	overflowed    map[string]struct{} // names refused by the series guards since TakeOverflowed (overflow.go)
	late          map[string]*uint64  // late measurements by name since TakeLate (overflow.go)
}

// Minute is one drain's series for one minute.
type Minute struct {
	Drain  string
	Start  int64 // unix seconds, a multiple of 60
	Series map[string]*Series
	bytes  int64              // what the store accounts for its series while the minute is open
	taken  map[string]memAcct // the accounts of series TakeOpen handed out, by key

	// Events are the minute's events (releases, deploys, rollbacks): not
	// series, posted by the outlets that have annotations.
	Events []Event

	// Repaired is how many series DecodeMinute left out because a sum was
	// not finite (a partial stored before values were bounded by
	// parse.MaxValue); not encoded.
	Repaired int

	// Open minutes only: the routes admitted and the events kept so far
	// (TakeOpen swaps series and events out, not these).
	routes  map[string]struct{}
	nEvents int
}

// Event is one event of a minute.
type Event struct {
	Name  string // the annotation stream (with the drain's prefix)
	Title string
	Time  int64 // unix nanoseconds
}

// seriesChunk is the least a drain acquires from the process's series
// share at a time, so that most values touch no shared counter.
const seriesChunk = 16 << 10

// NewStore returns an empty store.
func NewStore(cfg Config) *Store {
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = DefaultConfig.MaxFuture
	}
	if cfg.MaxSeriesPerDrain <= 0 {
		cfg.MaxSeriesPerDrain = DefaultConfig.MaxSeriesPerDrain
	}
	if cfg.MaxRoutesPerDrain <= 0 {
		cfg.MaxRoutesPerDrain = DefaultConfig.MaxRoutesPerDrain
	}
	return &Store{cfg: cfg, drains: make(map[string]*drainState)}
}

func (s *Store) drain(id string) *drainState {
	s.mu.RLock()
	ds := s.drains[id]
	s.mu.RUnlock()
	if ds != nil {
		return ds
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ds = s.drains[id]; ds == nil {
		ds = &drainState{minutes: make(map[int64]*Minute), closedThrough: -1 << 62}
		s.drains[id] = ds
	}
	return ds
}

// Add aggregates one batch of a drain's measurements received at now. The
// measurements' byte slices are copied where kept. Late, future, overflowing
// and kind-conflicting measurements are counted on d and skipped; the
// measurements of routes over the cap go to route "other" and are counted
// as overflow. Events are kept with their minute.
func (s *Store) Add(now time.Time, d *stats.Counters, ms []parse.Measurement) {
	if len(ms) == 0 {
		return
	}
	ds := s.drain(d.ID)
	horizon := now.Round(0).Add(s.cfg.MaxFuture) // on the wall clock, as measurements are
	closed := ClosedThrough(now, s.cfg.Grace)
	var late, future, overflow, conflict uint64

	ds.mu.Lock()
	for i := range ms {
		m := &ms[i]
		if m.Time.After(horizon) {
			future++
			continue
		}
		start := FloorMinute(m.Time.Unix())
		if start <= ds.closedThrough || start <= closed {
			late++
			ds.noteLate(m.Name)
			continue
		}
		mn := ds.minutes[start]
		if mn == nil {
			mn = &Minute{Drain: d.ID, Start: start, Series: make(map[string]*Series)}
			ds.minutes[start] = mn
		}
		if m.Kind == parse.Event {
			if !mn.addEvent(m) {
				overflow++
			}
			continue
		}
		dims := m.Dims
		if len(dims) > 0 {
			var folded bool
			if dims, folded = ds.capRoute(mn, dims, s.cfg.MaxRoutesPerDrain); folded {
				overflow++
			}
		}
		switch s.observe(ds, mn, m, m.Source, dims, false) {
		case errOverflow:
			overflow++
			ds.noteOverflow(m.Name)
		case errConflict:
			conflict++
		}
		if len(m.TypeSource) > 0 {
			switch s.observe(ds, mn, m, m.TypeSource, dims, true) {
			case errOverflow:
				overflow++
			case errConflict:
				conflict++
			}
		}
	}
	ds.mu.Unlock()

	d.Add(stats.Late, late)
	d.Add(stats.Future, future)
	d.Add(stats.Overflow, overflow)
	d.Add(stats.KindConflict, conflict)
}

type observeResult int

const (
	ok observeResult = iota
	errOverflow
	errConflict
)

// observe adds m to its series in mn, if the series and what m adds to it
// fit in the drain's share. ds.mu is held.
func (s *Store) observe(ds *drainState, mn *Minute, m *parse.Measurement, source, dims []byte, typeRollup bool) observeResult {
	key := append(append(append(ds.key[:0], m.Name...), 0), source...)
	if len(dims) > 0 {
		key = append(append(key, 0), dims...)
	}
	ds.key = key
	se := mn.Series[string(key)]
	if se == nil {
		if len(mn.Series) >= s.cfg.MaxSeriesPerDrain {
			return errOverflow
		}
		var acct memAcct
		var charge int64
		if was, ok := mn.taken[string(key)]; ok && was.kind == m.Kind {
			acct = was.resumed().grown(m.Kind, len(key), 0, m) // the same series, its earlier values handed out
			charge = int64(acct.bytes - was.bytes)
		} else {
			acct = memAcct{}.grown(m.Kind, len(key), 0, m)
			charge = int64(acct.bytes)
		}
		if !s.charge(ds, charge) {
			return errOverflow
		}
		mn.bytes += charge
		k := string(key)
		se = newSeries(m.Kind, k, len(m.Name), len(source))
		se.ProcessType = typeRollup
		se.mem = acct
		mn.Series[k] = se
	} else if se.Kind != m.Kind {
		return errConflict
	} else if !se.mem.fits(se.Kind, se.Count, m) {
		acct := se.mem.grown(se.Kind, len(key), se.Count, m)
		if grow := int64(acct.bytes - se.mem.bytes); grow > 0 {
			if !s.charge(ds, grow) {
				return errOverflow
			}
			mn.bytes += grow
		}
		se.mem = acct
	}
	se.observe(m)
	return ok
}

// charge accounts n more bytes of series to the drain, if they fit in its
// share and the process's. ds.mu is held.
func (s *Store) charge(ds *drainState, n int64) bool {
	if max := s.cfg.MaxBytesPerDrain; max > 0 && ds.used+n > max {
		return false
	}
	if need := ds.used + n - ds.reserved; need > 0 {
		chunk := max(need, seriesChunk)
		if !s.cfg.Series.TryAcquire(chunk) {
			if chunk = need; !s.cfg.Series.TryAcquire(chunk) {
				return false
			}
		}
		ds.reserved += chunk
	}
	ds.used += n
	return true
}

// release gives back the bytes of minutes that left the store, and what
// the drain reserved beyond what it uses. ds.mu is held.
func (s *Store) release(ds *drainState, n int64) {
	ds.used -= n
	if extra := ds.reserved - ds.used; extra > 0 {
		s.cfg.Series.Release(extra)
		ds.reserved -= extra
	}
}

// capRoute admits the route of dims into the minute's routes, up to max
// of them; the route of a measurement over the cap becomes RouteOther,
// and capRoute returns the dimensions rewritten (in ds's scratch space)
// and true. Dimensions without a route are left alone.
func (ds *drainState) capRoute(mn *Minute, dims []byte, max int) ([]byte, bool) {
	start, end, ok := dimSpan(dims, parse.RouteDim)
	if !ok {
		return dims, false
	}
	route := dims[start:end]
	if string(route) == parse.RouteOther {
		return dims, false
	}
	if _, seen := mn.routes[string(route)]; seen {
		return dims, false
	}
	if len(mn.routes) < max {
		if mn.routes == nil {
			mn.routes = make(map[string]struct{})
		}
		mn.routes[string(route)] = struct{}{}
		return dims, false
	}
	ds.dims = append(append(append(ds.dims[:0], dims[:start]...), parse.RouteOther...), dims[end:]...)
	return ds.dims, true
}

// dimSpan finds the value of dimension key in dims: dims[start:end].
func dimSpan(dims []byte, key string) (start, end int, ok bool) {
	for i := 0; i < len(dims); {
		j := i
		for j < len(dims) && dims[j] != parse.DimSep {
			j++
		}
		pair := dims[i:j]
		for k, c := range pair {
			if c == parse.DimPairSep {
				if string(pair[:k]) == key {
					return i + k + 1, j, true
				}
				break
			}
		}
		i = j + 1
	}
	return 0, 0, false
}

// addEvent keeps an event of the minute (once: a repeated one is the same
// event), up to MaxEventsPerMinute; it reports false past that.
func (mn *Minute) addEvent(m *parse.Measurement) bool {
	t := m.Time.UnixNano()
	for _, e := range mn.Events {
		if e.Time == t && e.Name == string(m.Name) && e.Title == string(m.Member) {
			return true
		}
	}
	if mn.nEvents >= MaxEventsPerMinute {
		return false
	}
	mn.nEvents++
	mn.Events = append(mn.Events, Event{Name: string(m.Name), Title: string(m.Member), Time: t})
	return true
}

// Flush closes and returns every minute whose grace period has passed at now.
func (s *Store) Flush(now time.Time) []*Minute {
	closed := ClosedThrough(now, s.cfg.Grace)
	return s.flush(func(start int64) bool { return start <= closed })
}

// FlushAll closes and returns every open minute, as at shutdown. Later
// measurements for those minutes count as late.
func (s *Store) FlushAll() []*Minute {
	return s.flush(func(int64) bool { return true })
}

// states returns every drain's state.
func (s *Store) states() []*drainState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	states := make([]*drainState, 0, len(s.drains))
	for _, ds := range s.drains {
		states = append(states, ds)
	}
	return states
}

func (s *Store) flush(due func(start int64) bool) []*Minute {
	var out []*Minute
	for _, ds := range s.states() {
		ds.mu.Lock()
		var freed int64
		for start, mn := range ds.minutes {
			if due(start) {
				out = append(out, mn)
				delete(ds.minutes, start)
				if start > ds.closedThrough {
					ds.closedThrough = start
				}
				freed += mn.bytes
				mn.bytes = 0
				mn.routes = nil
			}
		}
		if freed > 0 {
			s.release(ds, freed)
		}
		ds.mu.Unlock()
	}
	if s.cfg.AppRollup {
		for _, mn := range out {
			AddAppRollups(mn)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].Drain < out[j].Drain
	})
	return out
}

// TakeOpen swaps out the series of every open minute and returns them as
// partial minutes; the minutes stay open, empty. The durable mode writes
// these every few seconds, so that a crash loses at most that much. The
// series-per-minute guard then counts the series of one interval; the
// memory guard still counts the whole minute's (memory.go).
func (s *Store) TakeOpen() []*Minute {
	var out []*Minute
	for _, ds := range s.states() {
		ds.mu.Lock()
		for _, mn := range ds.minutes {
			if len(mn.Series) == 0 && len(mn.Events) == 0 {
				continue
			}
			if mn.taken == nil {
				mn.taken = make(map[string]memAcct, len(mn.Series))
			}
			for k, se := range mn.Series {
				mn.taken[k] = se.mem
			}
			out = append(out, &Minute{Drain: mn.Drain, Start: mn.Start, Series: mn.Series, Events: mn.Events})
			mn.Series = make(map[string]*Series, len(mn.Series))
			mn.Events = nil
		}
		ds.mu.Unlock()
	}
	return out
}

// OpenSeriesByDrain returns how many series each drain has open, across its
// open minutes, counting those TakeOpen already handed out (the durable
// mode writes them every few seconds; they are still the minute's).
func (s *Store) OpenSeriesByDrain() map[string]int {
	s.mu.RLock()
	ids := make(map[string]*drainState, len(s.drains))
	for id, ds := range s.drains {
		ids[id] = ds
	}
	s.mu.RUnlock()
	out := make(map[string]int, len(ids))
	for id, ds := range ids {
		ds.mu.Lock()
		n := 0
		for _, mn := range ds.minutes {
			n += len(mn.taken)
			for k := range mn.Series {
				if _, ok := mn.taken[k]; !ok {
					n++
				}
			}
		}
		ds.mu.Unlock()
		if n > 0 {
			out[id] = n
		}
	}
	return out
}

// OpenSeries returns how many series are open across all drains and minutes.
func (s *Store) OpenSeries() int {
	n := 0
	for _, ds := range s.states() {
		ds.mu.Lock()
		for _, mn := range ds.minutes {
			n += len(mn.Series)
		}
		ds.mu.Unlock()
	}
	return n
}

// Summaries summarizes every series of the minute, ordered by name and source.
func (m *Minute) Summaries(percentiles []float64) []Summary {
	out := make([]Summary, 0, len(m.Series))
	for _, se := range m.Series {
		out = append(out, se.Summarize(percentiles))
	}
	sortSummaries(out)
	return out
}

// Sink receives closed minutes. Closed must not block for long: the flusher
// calls it on its ticker.
type Sink interface {
	Closed(minutes []*Minute)
}

// Sweeper is a Sink that wants to know how far minutes are closed: after
// each sweep at now, every minute that ended Grace before now has been
// handed to Closed (the durable mode records it as its watermark).
type Sweeper interface {
	Swept(now time.Time)
}

// Run closes minutes every interval until ctx is done, handing them to sink.
// It does not flush the open minutes when it returns: at shutdown the owner
// stops the producers first, then calls FlushAll.
func (s *Store) Run(ctx context.Context, every time.Duration, now func() time.Time, sink Sink) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			at := now()
			if ms := s.Flush(at); len(ms) > 0 {
				sink.Closed(ms)
			}
			if sw, ok := sink.(Sweeper); ok {
				sw.Swept(at)
			}
		}
	}
}
