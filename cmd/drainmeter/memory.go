package main

import (
	"context"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
)

// memory is the mode without a database: closed minutes go to the
// outlets' lanes in this process, and the status pages show its counters.
//
//	Launch: the lanes' workers, then the store's clock that closes minutes into them.
//	Land:   the clock stopped, every open minute closed into the lanes, the lanes posted.
type memory struct {
	store   *rollup.Store
	dedup   *drain.RecentIDs
	engine  *outlet.Engine
	sink    explored // the explorer, then the engine
	history *status.History
	source  *status.Memory
	clock   *crew // store.Run: minutes closed as their grace ends
	now     func() time.Time
}

func newMemory(w *web) *memory {
	engine := outlet.NewEngine(w.sender, w.tn, w.reg, w.log, w.now)
	engine.ChargeTotals(w.mem.Totals)
	history := status.NewHistory()
	return &memory{
		store:   w.store,
		dedup:   drain.NewRecentIDs(2*time.Hour, recentIDsPerHour).WithMaxBytes(w.mem.Dedup),
		engine:  engine,
		sink:    explored{w.explorer, engine},
		history: history,
		source: &status.Memory{Version: version, Reg: w.reg, History: history, Dests: w.tn, Builtin: w.tn.BuiltinID(),
			Lanes: engine.Lanes, Open: w.store.OpenSeriesByDrain, Now: w.now},
		clock: newCrew(),
		now:   w.now,
	}
}

func (m *memory) Dedup() drain.Deduper { return m.dedup }

func (m *memory) Status() (status.Source, status.ExplorerSource, func() []outlet.Status) {
	return m.source, m.sink.explorer, m.engine.Lanes
}

func (m *memory) Health() healthBody { return healthBody{Store: "memory"} }

// Record adds a second's accepted frames to the status history.
func (m *memory) Record(now time.Time, deltas []stats.Delta) {
	for _, d := range deltas {
		m.history.Add(d.Drain, now, d.Counts[stats.FramesAccepted])
	}
}

func (m *memory) Launch() {
	m.engine.Start()
	m.clock.Go(func(ctx context.Context) { m.store.Run(ctx, time.Second, m.now, m.sink) })
}

func (m *memory) Land(ctx context.Context) (landed, error) {
	m.clock.Stop()
	minutes, l := closeAll(m.store)
	m.sink.Closed(minutes)
	return l, m.engine.Shutdown(ctx)
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
