package status

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// Explore is what the explorer shows of one drain: its names over the last
// hour, the last refused pairs and the names that overflowed.
type Explore struct {
	Drain      string     `json:"drain"`
	Store      string     `json:"store"` // memory or postgres
	Now        time.Time  `json:"generated_at"`
	LastMinute *time.Time `json:"last_minute"` // the last closed minute summarized; nil: none yet
	Names      []NameView `json:"names"`       // by name
	// Omitted counts the names of the last minute left out: over
	// MaxExplorerNames per minute (the busiest are kept), or over the
	// explorer's share of MEMORY_BUDGET (MemoryFull of them).
	Omitted    int `json:"omitted"`
	MemoryFull int `json:"memory_full"`
	// Hidden counts the names of the hour left out of a Postgres-backed
	// explorer beyond its MaxExplorerHour busiest.
	Hidden     int          `json:"hidden"`
	Refused    []Refused    `json:"refused"`    // the last refused pairs, newest first
	Overflowed []Overflowed `json:"overflowed"` // names refused by the series caps, newest first
}

// NameView is one name of the explorer.
type NameView struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Unit    string      `json:"unit,omitempty"`
	Posted  PostedNames `json:"posted_as"`
	Sources int         `json:"sources"` // in its last minute
	Volume  int64       `json:"volume"`  // measurements over the hour
	// Last is its last minute's figures (LastAt says which: the drain's
	// last minute, or earlier if it did not come then).
	LastAt  time.Time  `json:"last_at"`
	Last    NameMinute `json:"last"`
	History []Spark    `json:"history"` // the last 60 minutes, oldest first (zeros where absent)
	// Refused counts its refused pairs by reason (since start, or over the
	// status window with Postgres).
	Refused map[string]uint64 `json:"refused,omitempty"`
	// Late counts its measurements that came after their minute had
	// closed, over the same time (at most 32 names a second are counted).
	Late uint64 `json:"late,omitempty"`
}

// Spark is a name's figures in one minute of the history.
type Spark struct {
	Minute int64   `json:"minute"`
	Count  int64   `json:"count"`
	Value  float64 `json:"value"`
	P50    float64 `json:"p50,omitempty"`
	P95    float64 `json:"p95,omitempty"`
	P99    float64 `json:"p99,omitempty"`
}

// Refused is one refused pair: its metric token and the reason.
type Refused struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Token  string    `json:"token"`
	Name   string    `json:"name,omitempty"`
}

// Overflowed is a name refused by the series caps (MAX_SERIES_PER_DRAIN,
// the series share of MEMORY_BUDGET).
type Overflowed struct {
	At   time.Time `json:"at"`
	Name string    `json:"name"`
}

// ExplorerSource gathers a drain's explorer.
type ExplorerSource interface {
	Explore(ctx context.Context, drain string) (*Explore, error)
	// History returns one name's last 60 minutes per source up to the
	// drain's last minute (oldest first, zeros where absent): the process
	// types and sources that are not dynos, and the dynos too when dynos
	// is set (with Postgres; in memory, dynos are kept for the last
	// minute only).
	History(ctx context.Context, drain, name string, dynos bool) (map[string][]Spark, error)
}

// Bounds of what the explorer remembers per drain.
const (
	MaxRefused        = 50                             // refused pairs shown
	MaxOverflowed     = 50                             // overflowed names shown
	maxRefusedNames   = 500                            // names whose refusals are counted
	explorerNameBytes = 60*int64(sparkBytes+24) + 1000 // its history (figures, the slices of sources), its last minute, the map entry
	sparkBytes        = 48
)

// ExplorerStore is the explorer's memory: per drain and name the last 60
// closed minutes (fed by Closed, once per minute, never per line), the
// last refused pairs and overflowed names. Its bytes are acquired from a
// share of MEMORY_BUDGET; a name that does not fit is counted (MemoryFull)
// and shown as such.
type ExplorerStore struct {
	share    *budget.Share
	maxNames int
	now      func() time.Time

	mu     sync.Mutex
	drains map[string]*drainExplore
}

type drainExplore struct {
	names      map[string]*nameHist
	last       int64 // the last closed minute summarized
	omitted    int
	memoryFull int
	refused    []Refused // a ring, newest last
	refusedBy  map[string]map[string]uint64
	overflowed []Overflowed
	pending    []Refused // not yet written to Postgres (TakePending)
	pendingBy  map[string]map[string]uint64
	pendingOv  []Overflowed
	lateBy     map[string]uint64
	pendingLt  map[string]uint64
	bytes      int64
}

type nameHist struct {
	kind, unit string
	spark      [60]Spark   // by minute % 60
	sources    [60][]Point // the same minutes' process types and sources that are not dynos
	ringBytes  int64       // what sources holds
	last       NameMinute
	bytes      int64
}

// pointsBytes bounds what points hold.
func pointsBytes(ps []Point) int64 {
	var n int64
	for _, p := range ps {
		n += 128 + int64(len(p.Source)+len(p.Route))
	}
	return n
}

// typePoints are the points of a minute kept in the history: process
// types, and sources that are not dynos.
func typePoints(ps []Point) []Point {
	var out []Point
	for _, p := range ps {
		if p.ProcessType || !parse.IsDynoName([]byte(p.Source)) {
			out = append(out, p)
		}
	}
	return out
}

// NewExplorerStore returns an empty store bounded by share (nil:
// unbounded) and maxNames names per drain and minute (0: the default).
func NewExplorerStore(share *budget.Share, maxNames int, now func() time.Time) *ExplorerStore {
	if maxNames <= 0 {
		maxNames = MaxExplorerNames
	}
	return &ExplorerStore{share: share, maxNames: maxNames, now: now, drains: map[string]*drainExplore{}}
}

func (e *ExplorerStore) drain(id string) *drainExplore {
	d := e.drains[id]
	if d == nil {
		d = &drainExplore{names: map[string]*nameHist{}}
		e.drains[id] = d
	}
	return d
}

// Closed summarizes closed minutes (the in-memory mode's, as they go to
// the outlets).
func (e *ExplorerStore) Closed(minutes []*rollup.Minute) {
	for _, m := range minutes {
		e.Add(Summarize(m, e.maxNames))
	}
}

// Add keeps a summarized minute.
func (e *ExplorerStore) Add(s MinuteSummary) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.drain(s.Drain)
	if s.Minute > d.last {
		d.last, d.omitted, d.memoryFull = s.Minute, 0, 0
		e.forget(d, s.Minute)
	}
	if s.Minute == d.last {
		d.omitted += s.Omitted
	}
	for i := range s.Names {
		nm := s.Names[i]
		h := d.names[nm.Name]
		if h == nil {
			h = &nameHist{}
		}
		slot := (nm.Minute / 60) % 60
		kept := typePoints(nm.BySource)
		size := func() int64 {
			return nameBytes(&nm) + h.ringBytes - pointsBytes(h.sources[slot]) + pointsBytes(kept)
		}
		grow := size() - h.bytes
		if grow > 0 && !e.share.TryAcquire(grow) {
			nm.BySource, nm.Routes, kept = nil, nil, nil // keep its figures, not its breakdown
			if grow = size() - h.bytes; grow > 0 && !e.share.TryAcquire(grow) {
				if s.Minute == d.last {
					d.memoryFull++
				}
				continue
			}
		}
		if grow < 0 {
			e.share.Release(-grow)
		}
		h.bytes += grow
		d.bytes += grow
		d.names[nm.Name] = h
		h.ringBytes += pointsBytes(kept) - pointsBytes(h.sources[slot])
		h.sources[slot] = kept
		h.kind, h.unit = nm.Kind, nm.Unit
		h.spark[slot] = Spark{Minute: nm.Minute, Count: nm.Count, Value: nm.Value, P50: nm.P50, P95: nm.P95, P99: nm.P99}
		if nm.Minute >= h.last.Minute {
			h.last = nm
		}
	}
}

// forget drops the names absent for the last 60 minutes. e.mu is held.
func (e *ExplorerStore) forget(d *drainExplore, now int64) {
	for name, h := range d.names {
		if h.last.Minute <= now-60*60 {
			e.share.Release(h.bytes)
			d.bytes -= h.bytes
			delete(d.names, name)
		}
	}
}

// nameBytes bounds what a name's history holds.
func nameBytes(nm *NameMinute) int64 {
	n := explorerNameBytes + 2*int64(len(nm.Name)+len(nm.Unit))
	for _, ps := range [][]Point{nm.BySource, nm.Routes} {
		for _, p := range ps {
			n += 128 + int64(len(p.Source)+len(p.Route))
		}
	}
	return n
}

// Bytes returns what the store holds, as accounted.
func (e *ExplorerStore) Bytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, d := range e.drains {
		n += d.bytes
	}
	return n
}

// Refused keeps a counted batch's refused pairs (drain.Refusals).
func (e *ExplorerStore) Refused(id string, at time.Time, rs []drain.Refusal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.drain(id)
	for _, r := range rs {
		rf := Refused{At: at.UTC(), Reason: r.Reason, Token: r.Token, Name: r.Name}
		d.refused = appendRing(d.refused, rf, MaxRefused)
		d.pending = appendRing(d.pending, rf, MaxRefused)
		if r.Name == "" {
			continue
		}
		by := d.refusedBy[r.Name]
		if by == nil {
			if len(d.refusedBy) >= maxRefusedNames {
				continue
			}
			if d.refusedBy == nil {
				d.refusedBy = map[string]map[string]uint64{}
			}
			by = map[string]uint64{}
			d.refusedBy[r.Name] = by
		}
		if _, ok := by[r.Reason]; ok || len(by) < 16 {
			by[r.Reason]++
			if d.pendingBy == nil {
				d.pendingBy = map[string]map[string]uint64{}
			}
			if d.pendingBy[r.Name] == nil {
				d.pendingBy[r.Name] = map[string]uint64{}
			}
			d.pendingBy[r.Name][r.Reason]++
		}
	}
}

// Overflow keeps names refused by the series caps, per drain
// (rollup.Store.TakeOverflowed).
func (e *ExplorerStore) Overflow(at time.Time, names map[string][]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, ns := range names {
		d := e.drain(id)
		slices.Sort(ns)
		for _, n := range ns {
			o := Overflowed{At: at.UTC(), Name: n}
			d.overflowed = slices.DeleteFunc(d.overflowed, func(x Overflowed) bool { return x.Name == n })
			d.overflowed = appendRing(d.overflowed, o, MaxOverflowed)
			d.pendingOv = appendRing(d.pendingOv, o, MaxOverflowed)
		}
	}
}

// ExplorerEvents are the refused pairs and overflowed names kept since the
// last TakePending, per drain, with the refusals counted per name and
// reason.
type ExplorerEvents struct {
	Refused    map[string][]Refused
	RefusedBy  map[string]map[string]map[string]uint64 // drain → name → reason → count
	Overflowed map[string][]Overflowed
	Late       map[string]map[string]uint64 // drain → name → late measurements
}

// Empty reports whether there is nothing in ev.
func (ev *ExplorerEvents) Empty() bool {
	return len(ev.Refused) == 0 && len(ev.RefusedBy) == 0 && len(ev.Overflowed) == 0 && len(ev.Late) == 0
}

// Late counts late measurements per drain and name
// (rollup.Store.TakeLate), for at most maxRefusedNames names a drain.
func (e *ExplorerStore) Late(names map[string]map[string]uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, by := range names {
		d := e.drain(id)
		for name, n := range by {
			if _, ok := d.lateBy[name]; !ok && len(d.lateBy) >= maxRefusedNames {
				continue
			}
			if d.lateBy == nil {
				d.lateBy, d.pendingLt = map[string]uint64{}, map[string]uint64{}
			}
			if d.pendingLt == nil {
				d.pendingLt = map[string]uint64{}
			}
			d.lateBy[name] += n
			d.pendingLt[name] += n
		}
	}
}

// TakePending returns what was kept since the last call (for Postgres,
// where every dyno's are shown).
func (e *ExplorerStore) TakePending() ExplorerEvents {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := ExplorerEvents{Refused: map[string][]Refused{}, RefusedBy: map[string]map[string]map[string]uint64{},
		Overflowed: map[string][]Overflowed{}, Late: map[string]map[string]uint64{}}
	for id, d := range e.drains {
		if len(d.pending) > 0 {
			ev.Refused[id], d.pending = d.pending, nil
		}
		if len(d.pendingBy) > 0 {
			ev.RefusedBy[id], d.pendingBy = d.pendingBy, nil
		}
		if len(d.pendingOv) > 0 {
			ev.Overflowed[id], d.pendingOv = d.pendingOv, nil
		}
		if len(d.pendingLt) > 0 {
			ev.Late[id], d.pendingLt = d.pendingLt, nil
		}
	}
	return ev
}

func appendRing[T any](s []T, v T, max int) []T {
	if len(s) >= max {
		s = slices.Delete(s, 0, len(s)-max+1)
	}
	return append(s, v)
}

// Explore returns drain id's explorer (ExplorerSource).
func (e *ExplorerStore) Explore(_ context.Context, id string) (*Explore, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := &Explore{Drain: id, Store: "memory", Now: now.UTC()}
	d := e.drains[id]
	if d == nil {
		return FinishExplore(out), nil
	}
	if d.last != 0 {
		t := time.Unix(d.last, 0).UTC()
		out.LastMinute = &t
	}
	out.Omitted, out.MemoryFull = d.omitted, d.memoryFull
	for name, h := range d.names {
		nv := NameView{Name: name, Kind: h.kind, Unit: h.unit, Sources: h.last.Sources, LastAt: time.Unix(h.last.Minute, 0).UTC(), Last: h.last}
		nv.History = make([]Spark, 60)
		for i := range 60 {
			m := d.last - int64(59-i)*60
			nv.History[i] = Spark{Minute: m}
			if sp := h.spark[(m/60)%60]; sp.Minute == m {
				nv.History[i] = sp
				nv.Volume += sp.Count
			}
		}
		if by := d.refusedBy[name]; len(by) > 0 {
			nv.Refused = maps.Clone(by)
		}
		nv.Late = d.lateBy[name]
		out.Names = append(out.Names, nv)
	}
	for i := len(d.refused) - 1; i >= 0; i-- {
		out.Refused = append(out.Refused, d.refused[i])
	}
	for i := len(d.overflowed) - 1; i >= 0; i-- {
		out.Overflowed = append(out.Overflowed, d.overflowed[i])
	}
	return FinishExplore(out), nil
}

// History returns a name's history per source (ExplorerSource). Dynos
// are not kept in memory: dynos is ignored.
func (e *ExplorerStore) History(_ context.Context, id, name string, _ bool) (map[string][]Spark, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string][]Spark{}
	d := e.drains[id]
	if d == nil || d.names[name] == nil {
		return out, nil
	}
	h := d.names[name]
	for i := range 60 {
		m := d.last - int64(59-i)*60
		slot := (m / 60) % 60
		if h.spark[slot].Minute != m {
			continue
		}
		for _, p := range h.sources[slot] {
			addSourceSpark(out, p, i, m)
		}
	}
	return out, nil
}

// addSourceSpark sets point p of the i-th minute (m) of its source's
// history in out.
func addSourceSpark(out map[string][]Spark, p Point, i int, m int64) {
	key := pointLabel(p)
	sp := out[key]
	if sp == nil {
		sp = make([]Spark, 60)
		out[key] = sp
	}
	sp[i] = Spark{Minute: m, Count: p.Count, Value: p.Value, P50: p.P50, P95: p.P95, P99: p.P99}
}

// AddSourceSpark is addSourceSpark for other sources (Postgres).
func AddSourceSpark(out map[string][]Spark, p Point, i int, m int64) { addSourceSpark(out, p, i, m) }

// FinishExplore sorts an explorer by name, fills in the posted names and
// makes its lists non-nil.
func FinishExplore(x *Explore) *Explore {
	slices.SortFunc(x.Names, func(a, b NameView) int { return strings.Compare(a.Name, b.Name) })
	for i := range x.Names {
		n := &x.Names[i]
		n.Posted = Posted(n.Kind, n.Name, false)
		n.Last.BySource, n.Last.Routes = nonNil(n.Last.BySource), nonNil(n.Last.Routes)
	}
	x.Names, x.Refused, x.Overflowed = nonNil(x.Names), nonNil(x.Refused), nonNil(x.Overflowed)
	slices.SortStableFunc(x.Refused, func(a, b Refused) int { return b.At.Compare(a.At) })
	slices.SortStableFunc(x.Overflowed, func(a, b Overflowed) int { return cmp.Compare(b.At.UnixNano(), a.At.UnixNano()) })
	return x
}
