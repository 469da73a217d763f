package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/drainmeter/drainmeter/internal/budget"
)

// memoryBudget returns the process's memory budget and where its size
// came from: MEMORY_BUDGET, or 75 % of the dyno's memory (its cgroup
// limit, MEMORY_AVAILABLE, or 512 MB). Unless GOMEMLIMIT is set, the Go
// runtime's memory limit is set to it (by setLimit, debug.SetMemoryLimit
// from main; nil: left alone, as in-process tests do), so that the garbage
// collector works harder rather than let the heap's slack take the process
// past it.
func memoryBudget(cfg Config, setLimit func(int64) int64) (*budget.Budget, string) {
	total, from := cfg.MemoryBudget, "MEMORY_BUDGET"
	if total == 0 {
		mb, _ := strconv.ParseFloat(strings.TrimSpace(cfg.MemoryAvailable), 64) // not a number: unknown
		dyno, source := budget.DynoMemory(os.DirFS("/sys/fs/cgroup"), int64(mb))
		total, from = budget.Default(dyno), "75% of "+source
	}
	if cfg.GoMemLimit == "" && setLimit != nil {
		setLimit(total)
	}
	return budget.New(total), from
}

// Connections are capped below the file limit (reservedFiles are left for
// the database, outlets and logs) and at maxConnections at most.
const (
	reservedFiles  = 64
	maxConnections = 10_000
)

// connectionLimit returns how many connections the web keeps open at most:
// MAX_CONNECTIONS, or as many as the budget's share pays for, always below
// the file limit (nofile; 0: unknown): reservedFiles below it, or half of
// it when it is so low that reservedFiles would leave less.
func connectionLimit(configured int, nofile uint64, b *budget.Budget) int {
	n := configured
	if n == 0 {
		n = min(b.MaxConnections(), maxConnections)
	}
	if nofile > 0 {
		room := nofile / 2
		if nofile > 2*reservedFiles {
			room = nofile - reservedFiles
		}
		n = int(min(uint64(n), room))
	}
	return max(n, 1)
}
