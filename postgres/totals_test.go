package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// TestStoredTotalsFitTheBudget: in the durable mode a lane's running
// totals are charged to the memory budget's totals share while it posts,
// and what does not fit is forgotten before the totals are stored — the
// series that moved longest ago first — never what a body holds. After
// posting, the share is free again.
func TestStoredTotalsFitTheBudget(t *testing.T) {
	r := newRig(t, outlet.OTLP)
	ctx := context.Background()
	m0 := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	counts := func(set string, at time.Time) *rollup.Minute {
		s := rollup.NewStore(rollup.Config{Grace: time.Hour})
		var ms []parse.Measurement
		for i := range 100 {
			ms = append(ms, parse.Measurement{Kind: parse.Count, Name: fmt.Appendf(nil, "%s.%03d", set, i), Value: 1, Time: at})
		}
		s.Add(at, stats.NewRegistry().Drain("d"), ms)
		return s.FlushAll()[0]
	}
	w := r.writer("web.1.a", m0)
	w.Closed([]*rollup.Minute{counts("a", m0)})
	w.Closed([]*rollup.Minute{counts("b", m0.Add(time.Minute))})
	w.Swept(m0.Add(3 * time.Minute))
	r.flush(w)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 2 {
		t.Fatalf("sealed %d (%v)", n, err)
	}
	one := outlet.RunningBytes("a.000", &outlet.Running{})
	share := budget.NewShare("totals", 150*one)
	p := NewPoster(PosterConfig{Owner: "web.1.a", Lease: time.Minute, Workers: 1, Poll: 10 * time.Millisecond, Totals: share},
		r.pool, r.sender, r.dests, r.reg, r.log, time.Now)
	r.drainLanes(p)
	if got := len(r.backend.posted()); got != 2 {
		t.Fatalf("%d minutes posted, want 2", got)
	}
	if used := share.Used(); used != 0 {
		t.Errorf("share holds %d bytes after posting, want 0", used)
	}
	var raw []byte
	if err := r.pool.QueryRow(ctx, `SELECT totals FROM lanes WHERE drain_id = 'd'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	totals, err := outlet.DecodeTotals(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b := totals.Bytes(); b > share.Limit() {
		t.Errorf("stored totals hold %d bytes, over the share's %d", b, share.Limit())
	}
	var a, b int
	for k := range totals.Series {
		switch {
		case strings.Contains(k, "a."):
			a++
		case strings.Contains(k, "b."):
			b++
		}
	}
	if b != 100 || a < 30 || a > 70 {
		t.Errorf("stored: %d of minute 0's counters and %d of minute 1's, want about 50 and all 100", a, b)
	}
}
