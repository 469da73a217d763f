// Package budget divides the process's memory budget (MEMORY_BUDGET) into
// shares, each accounted in bytes, so that no input — however hostile —
// takes a dyno past its memory: whoever holds memory for an input acquires
// its bytes from a Share first and releases them when done, and an input
// whose bytes do not fit gets the cheapest honest answer instead (413 for a
// body, 503 and Retry-After when the process is full, overflow for a series).
//
// The shares of a budget B:
//
//	Series    40 % of B   open series of every drain, all minutes (each drain at most half of it)
//	Bodies    15 % of B   request bodies in flight, decompressed, and what parsing them holds
//	                      (each drain, and so each request, at most half of it)
//	Partials  15 % of B   partial minutes waiting for Postgres (PARTIAL_BUFFER_BYTES at most)
//	Dedup     10 % of B   the ids of recent batches
//	Conns      5 % of B   open connections (MAX_CONNECTIONS = Conns / ConnBytes by default)
//	Explorer   3 % of B   the metrics explorer's last hour of closed minutes, per drain and name
//	Totals     4 % of B   the outlets' running totals (held counters, cumulative sums and
//	                      buckets), from one minute to the next
//
// The last 8 % is left to what is not accounted: the runtime, goroutine
// stacks, outlets' pending minutes, the status history, and the garbage
// collector's slack (the web sets the Go memory limit to B).
package budget

import (
	"fmt"
	"sync/atomic"
)

// Share is a number of bytes that holders acquire before they hold them and
// release when they no longer do. A share may be part of a larger one
// (Sub): its acquisitions then count in both. It is safe for concurrent use.
type Share struct {
	name   string
	limit  int64
	used   atomic.Int64
	parent *Share
}

// NewShare returns a share of limit bytes.
func NewShare(name string, limit int64) *Share {
	return &Share{name: name, limit: limit}
}

// Sub returns a share of at most limit bytes that is part of s: what it
// acquires counts in s too.
func (s *Share) Sub(name string, limit int64) *Share {
	return &Share{name: name, limit: min(limit, s.limit), parent: s}
}

// TryAcquire acquires n bytes if they fit, in s and every share s is part
// of, and reports whether it did. It never blocks.
func (s *Share) TryAcquire(n int64) bool {
	if s == nil {
		return true
	}
	for {
		u := s.used.Load()
		if u+n > s.limit {
			return false
		}
		if s.used.CompareAndSwap(u, u+n) {
			break
		}
	}
	if !s.parent.TryAcquire(n) {
		s.used.Add(-n)
		return false
	}
	return true
}

// Release gives back n bytes acquired before.
func (s *Share) Release(n int64) {
	for ; s != nil; s = s.parent {
		s.used.Add(-n)
	}
}

// Used returns the bytes held now.
func (s *Share) Used() int64 {
	if s == nil {
		return 0
	}
	return s.used.Load()
}

// Limit returns the share's size in bytes.
func (s *Share) Limit() int64 {
	if s == nil {
		return 1<<63 - 1
	}
	return s.limit
}

// Name returns what the share is for.
func (s *Share) Name() string { return s.name }

func (s *Share) String() string {
	return fmt.Sprintf("%s %d/%d bytes", s.name, s.Used(), s.limit)
}

// ConnBytes is what one open connection is counted for: its goroutine's
// stack, the server's 4 KiB read and write buffers and its state, measured
// at about 20 KiB for an idle keep-alive connection.
const ConnBytes = 32 << 10

// MinTotal is the smallest budget that leaves every share room to work.
const MinTotal = 64 << 20

// Budget is a memory budget divided into its shares.
type Budget struct {
	Total    int64
	Series   *Share // every drain's open series
	Bodies   *Share // request bodies in flight and what parsing them holds
	Partials int64  // partial minutes held while Postgres is unreachable
	Dedup    int64  // the ids of recent batches
	Conns    int64  // open connections, at ConnBytes each
	Explorer *Share // the metrics explorer's history (status.ExplorerStore)
	Totals   *Share // the outlets' running totals (outlet.Totals.Charge)
}

// New divides total bytes into the shares.
func New(total int64) *Budget {
	pct := func(p int64) int64 { return total / 100 * p }
	return &Budget{
		Total:    total,
		Series:   NewShare("series", pct(40)),
		Bodies:   NewShare("bodies", pct(15)),
		Partials: pct(15),
		Dedup:    pct(10),
		Conns:    pct(5),
		Explorer: NewShare("explorer", pct(3)),
		Totals:   NewShare("totals", pct(4)),
	}
}

// SeriesPerDrain is the most series state one drain may hold, across all
// its open minutes: half the series share, so that one drain under attack
// leaves the others room.
func (b *Budget) SeriesPerDrain() int64 { return b.Series.Limit() / 2 }

// BodiesPerDrain is the most request-body bytes one drain's requests may
// hold at once, and so one request: half the bodies share.
func (b *Budget) BodiesPerDrain() int64 { return b.Bodies.Limit() / 2 }

// MaxConnections is how many open connections the connections share pays for.
func (b *Budget) MaxConnections() int { return int(b.Conns / ConnBytes) }
