package outlet

import (
	"context"
	"io"
	"sync"

	"github.com/drainmeter/drainmeter/rollup"
)

// LogBackend is the log outlet: each closed minute is printed as logfmt
// lines (rollup.AppendLogfmt), one per series. It is the outlet of drains
// that have no other, so that `heroku logs` shows what would be posted.
type LogBackend struct {
	Percentiles []float64

	mu sync.Mutex // serializes writes
	w  io.Writer
}

// NewLogBackend prints to w.
func NewLogBackend(w io.Writer, percentiles []float64) *LogBackend {
	return &LogBackend{Percentiles: percentiles, w: w}
}

// Encode renders the minute's lines as one request: a line per series,
// then a line per event.
func (b *LogBackend) Encode(d *Destination, _ *Outlet, m *rollup.Minute, _ *Totals) (Encoded, error) {
	sums := m.Summaries(b.Percentiles)
	if len(sums) == 0 && len(m.Events) == 0 {
		return Encoded{}, nil
	}
	var out []byte
	for i := range sums {
		out = rollup.AppendLogfmt(out, d.ID, m.Start, &sums[i], b.Percentiles)
	}
	events := m.SortedEvents()
	for i := range events {
		out = rollup.AppendEventLogfmt(out, d.ID, m.Start, &events[i])
	}
	return Encoded{Reqs: []*Request{{Body: out, Points: len(sums) + len(events)}}}, nil
}

// Send writes the lines.
func (b *LogBackend) Send(_ context.Context, _ *Outlet, r *Request) Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.w.Write(r.Body); err != nil {
		return Result{Outcome: Retry, Message: "writing rollups: " + err.Error()}
	}
	return Result{Outcome: Accepted}
}
