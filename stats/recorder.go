package stats

import (
	"sync"
	"time"
)

// Recorder turns this process's counters into deltas: what each drain's
// counters did since the previous Take. The durable mode adds them to
// Postgres per minute (so that the pages sum every dyno); the memory mode
// keeps the last hour of them; self-metrics post them.
type Recorder struct {
	reg *Registry

	mu    sync.Mutex
	last  map[string]Snapshot
	batch map[string]time.Time
}

// NewRecorder returns a recorder over reg.
func NewRecorder(reg *Registry) *Recorder {
	return &Recorder{reg: reg, last: map[string]Snapshot{}, batch: map[string]time.Time{}}
}

// Delta is what one drain's counters did since the previous Take.
type Delta struct {
	Drain     string
	Counts    Snapshot
	LastBatch time.Time // zero: no batch since
	Apps      []string  // the apps seen so far
}

// Take returns the deltas of the drains whose counters moved.
func (r *Recorder) Take() []Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Delta
	for _, d := range r.reg.All() {
		snap := d.Snapshot()
		delta := snap.Sub(r.last[d.ID])
		lb := d.LastBatch()
		newBatch := lb.After(r.batch[d.ID])
		if delta.IsZero() && !newBatch {
			continue
		}
		r.last[d.ID] = snap
		dl := Delta{Drain: d.ID, Counts: delta, Apps: d.Apps()}
		if newBatch {
			r.batch[d.ID] = lb
			dl.LastBatch = lb
		}
		out = append(out, dl)
	}
	return out
}
