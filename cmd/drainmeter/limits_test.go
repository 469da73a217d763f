package main

import (
	"runtime/debug"
	"testing"

	"github.com/drainmeter/drainmeter/internal/budget"
)

func TestConnectionLimit(t *testing.T) {
	b := budget.New(400 << 20) // 20 MiB for connections: 640 at 32 KiB
	for _, tc := range []struct {
		configured int
		nofile     uint64
		want       int
	}{
		{0, 1 << 20, 640},     // the budget's share
		{0, 1024, 640},        // within the file limit
		{0, 500, 436},         // the file limit, less what the rest needs
		{0, 128, 64},          // a small file limit: what the rest needs left
		{0, 64, 32},           // a tiny file limit: half of it, never the whole
		{0, 10, 5},            // smaller still
		{0, 1, 1},             // one at least
		{0, 0, 640},           // the file limit unknown
		{3000, 1 << 20, 3000}, // MAX_CONNECTIONS
		{3000, 1024, 960},     // MAX_CONNECTIONS above the file limit
		{0, ^uint64(0), 640},  // unlimited files
	} {
		if got := connectionLimit(tc.configured, tc.nofile, b); got != tc.want {
			t.Errorf("connectionLimit(%d, %d) = %d, want %d", tc.configured, tc.nofile, got, tc.want)
		}
	}
	if got := connectionLimit(0, 1<<20, budget.New(100<<30)); got != maxConnections {
		t.Errorf("a huge budget: %d connections, want at most %d", got, maxConnections)
	}
}

// TestMemoryBudgetSetsTheLimitThroughMain: the Go runtime's memory limit is
// set to the budget through the hook main gives (debug.SetMemoryLimit),
// unless GOMEMLIMIT is set; an in-process run gives none and changes nothing.
func TestMemoryBudgetSetsTheLimitThroughMain(t *testing.T) {
	var set []int64
	hook := func(n int64) int64 { set = append(set, n); return n }
	b, from := memoryBudget(Config{MemoryBudget: 300 << 20}, hook)
	if from != "MEMORY_BUDGET" || b.Total != 300<<20 || len(set) != 1 || set[0] != 300<<20 {
		t.Errorf("budget %d from %s; limits set %v", b.Total, from, set)
	}
	set = nil
	memoryBudget(Config{MemoryBudget: 300 << 20, GoMemLimit: "1GiB"}, hook)
	if len(set) != 0 {
		t.Errorf("GOMEMLIMIT set, yet the limit was set to %v", set)
	}
	before := debug.SetMemoryLimit(-1)
	memoryBudget(Config{MemoryBudget: 300 << 20}, nil)
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("no hook, yet the runtime's memory limit went from %d to %d", before, after)
	}
}
