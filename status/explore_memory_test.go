package status

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

var memT0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// heapNow returns the live heap after a collection.
func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// bigMinute is one drain's closed minute of n series: n distinct names of
// every kind, from two dynos and their process type (some names), as a
// store under attack by a flood of names would hold.
func bigMinute(n int, minute int, seed uint64) *rollup.Minute {
	rng := rand.New(rand.NewPCG(seed, 1))
	start := memT0.Add(time.Duration(minute) * time.Minute)
	s := rollup.NewStore(rollup.Config{Grace: time.Second, MaxSeriesPerDrain: n})
	d := stats.NewRegistry().Drain("d")
	batch := make([]parse.Measurement, 0, 1000)
	kinds := []parse.Kind{parse.Count, parse.Measure, parse.Sample, parse.Unique}
	for i := range n {
		k := kinds[i%4]
		batch = append(batch, parse.Measurement{Kind: k, Name: fmt.Appendf(nil, "flood.%d.%x", minute, rng.Uint64()), Value: float64(1 + i%97),
			Member: []byte("m"), Source: []byte("web.1"), Time: start.Add(time.Duration(i%60) * time.Second)})
		if len(batch) == cap(batch) {
			s.Add(start, d, batch)
			batch = batch[:0]
		}
	}
	s.Add(start, d, batch)
	ms := s.Flush(start.Add(time.Hour))
	if len(ms) != 1 || len(ms[0].Series) != n {
		panic(fmt.Sprintf("%d minutes closed", len(ms)))
	}
	return ms[0]
}

// TestExplorerMemory100kSeries: minutes of 100 000 series each, every one
// a new name (a flood of names, an hour of it), keep the explorer within
// its share of MEMORY_BUDGET and MaxExplorerNames a minute, the heap it
// holds within what it accounts, and summarizing a minute (once a minute,
// off the ingest path) takes a bounded time.
func TestExplorerMemory100kSeries(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are measured without the race detector")
	}
	if testing.Short() {
		t.Skip("builds an hour of 100 000-series minutes")
	}
	// The share on a Standard-1X: 3 % of a 384 MB budget.
	share := budget.New(384 << 20).Explorer
	x := NewExplorerStore(share, 0, time.Now)
	var worst time.Duration
	before := heapNow()
	const minutes = 12
	for i := range minutes {
		m := bigMinute(100_000, i, uint64(i))
		start := time.Now()
		x.Closed([]*rollup.Minute{m})
		worst = max(worst, time.Since(start))
	}
	grew := heapNow() - before
	ex, _ := x.Explore(t.Context(), "d")
	t.Logf("%d minutes of 100 000 series (new names each): explorer holds %d names, %d KiB accounted (share %d KiB), heap +%d KiB; "+
		"last minute %d omitted, %d over the share; summarizing a minute took at most %s",
		minutes, len(ex.Names), x.Bytes()>>10, share.Limit()>>10, grew>>10, ex.Omitted, ex.MemoryFull, worst)
	if x.Bytes() > share.Limit() || share.Used() != x.Bytes() {
		t.Errorf("accounted %d, share used %d of %d", x.Bytes(), share.Used(), share.Limit())
	}
	if grew > x.Bytes()+1<<20 {
		t.Errorf("the heap grew %d bytes for %d accounted", grew, x.Bytes())
	}
	if ex.Omitted != 100_000-MaxExplorerNames {
		t.Errorf("omitted %d, want %d", ex.Omitted, 100_000-MaxExplorerNames)
	}
	if len(ex.Names) > minutes*MaxExplorerNames {
		t.Errorf("%d names kept", len(ex.Names))
	}
	if worst > 5*time.Second {
		t.Errorf("summarizing a 100 000-series minute took %s", worst)
	}
	runtime.KeepAlive(x)
}

// TestExplorerMemoryPathScan: a path scan (100 000 distinct paths in a
// minute, routes on) costs the explorer a few names with at most 20 routes
// each.
func TestExplorerMemoryPathScan(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are measured without the race detector")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	s := rollup.NewStore(rollup.Config{Grace: time.Second})
	d := stats.NewRegistry().Drain("d")
	batch := make([]parse.Measurement, 0, 300)
	for i := range 100_000 {
		route := fmt.Sprintf("GET /%s/wp-%x.php", []string{"admin", "x", "cgi-bin"}[i%3], rng.Uint64())
		dims := rollup.AppendDim(nil, parse.RouteDim, route)
		at := memT0.Add(time.Duration(i%60) * time.Second)
		batch = append(batch,
			parse.Measurement{Kind: parse.Measure, Name: []byte("router.service"), Value: float64(i % 500), Unit: []byte("ms"), Dims: dims, Time: at},
			parse.Measurement{Kind: parse.Count, Name: []byte("router.requests"), Value: 1, Dims: dims, Time: at},
			parse.Measurement{Kind: parse.Measure, Name: []byte("router.service"), Value: float64(i % 500), Unit: []byte("ms"), Source: []byte("web.1"), Time: at},
			parse.Measurement{Kind: parse.Count, Name: []byte("router.requests"), Value: 1, Source: []byte("web.1"), Time: at})
		if len(batch) >= cap(batch)-4 {
			s.Add(memT0, d, batch)
			batch = batch[:0]
		}
	}
	s.Add(memT0, d, batch)
	ms := s.Flush(memT0.Add(time.Hour))
	share := budget.New(384 << 20).Explorer
	x := NewExplorerStore(share, 0, time.Now)
	before := heapNow()
	x.Closed(ms)
	grew := heapNow() - before
	ex, _ := x.Explore(t.Context(), "d")
	t.Logf("path scan: %d series in the minute; explorer: %d names, %d bytes accounted, heap +%d KiB", len(ms[0].Series), len(ex.Names), x.Bytes(), grew>>10)
	var svc *NameView
	for i := range ex.Names {
		if ex.Names[i].Name == "router.service" {
			svc = &ex.Names[i]
		}
	}
	if svc == nil || svc.Last.Count != 100_000 || len(svc.Last.Routes) != maxBreakdown {
		t.Fatalf("router.service: %+v", svc)
	}
	if x.Bytes() > 64<<10 || grew > 256<<10 {
		t.Errorf("the path scan costs the explorer %d bytes accounted, heap +%d", x.Bytes(), grew)
	}
	runtime.KeepAlive(ms)
}
