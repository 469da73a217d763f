package outlet

import (
	"sort"

	"github.com/drainmeter/drainmeter/internal/budget"
)

// DefaultMaxTotalsBytes bounds the running totals a lane keeps
// (Totals.Trim), in bytes as RunningBytes counts them: 10 MB per lane,
// however long COUNTER_HOLD, whatever the churn of series — about 50 000
// counters or summaries, fewer native histograms (each bucket counts).
const DefaultMaxTotalsBytes = 10 << 20

// RunningBytes estimates what one series' running totals hold in memory:
// the entry and its key, and a native histogram's buckets (map entries).
func RunningBytes(key string, r *Running) int64 {
	n := int64(160 + len(key))
	if r.Hist != nil {
		n += 96 + 48*int64(len(r.Hist.Pos)+len(r.Hist.Neg))
	}
	return n
}

// Trim forgets the running totals of the series that moved longest ago
// until they hold at most max bytes (RunningBytes); the series of minute
// keep (the one just applied) are never forgotten. A forgotten counter
// that comes back starts again from 0, which receivers read as a counter
// reset. It returns how many it forgot.
func (t *Totals) Trim(max int64, keep int64) int {
	if t == nil || max <= 0 {
		return 0
	}
	var total int64
	for k, r := range t.Series {
		total += RunningBytes(k, r)
	}
	if total <= max {
		return 0
	}
	type old struct {
		key  string
		last int64
	}
	var olds []old
	for k, r := range t.Series {
		if r.Last != keep {
			olds = append(olds, old{k, r.Last})
		}
	}
	sort.Slice(olds, func(i, j int) bool {
		if olds[i].last != olds[j].last {
			return olds[i].last < olds[j].last
		}
		return olds[i].key < olds[j].key
	})
	n := 0
	for _, o := range olds {
		if total <= max {
			break
		}
		total -= RunningBytes(o.key, t.Series[o.key])
		delete(t.Series, o.key)
		n++
	}
	return n
}

// Bytes is what t holds in memory, as RunningBytes counts it.
func (t *Totals) Bytes() int64 {
	if t == nil {
		return 0
	}
	var n int64
	for k, r := range t.Series {
		n += RunningBytes(k, r)
	}
	return n
}

// Charge fits a lane's running totals into the memory budget's share for
// them (MEMORY_BUDGET's totals share; nil: no limit). held is what the
// lane has charged so far (for its totals before this minute); Charge
// acquires or gives back the difference and returns what is charged now.
// When the share cannot give what t needs, t forgets the series that moved
// longest ago — the series of minute keep last — until it fits, and forgot
// says how many: such a counter that comes back starts again from 0, which
// receivers read as a counter reset. What was posted is not changed: t is
// the state after the minute, used for the next one.
func (t *Totals) Charge(share *budget.Share, held int64, keep int64) (charged int64, forgot int) {
	need := t.Bytes()
	if need <= held {
		share.Release(held - need)
		return need, 0
	}
	if share.TryAcquire(need - held) {
		return need, 0
	}
	room := held + max(share.Limit()-share.Used(), 0)
	forgot = t.Trim(max(room, 1), keep)
	if t.Bytes() > room {
		forgot += t.Trim(max(room, 1), -1) // not even the minute's own series fit
	}
	need = t.Bytes()
	if need > held && !share.TryAcquire(need-held) {
		// Other lanes took the room meanwhile: keep what is already held.
		forgot += t.Trim(max(held, 1), -1)
		need = t.Bytes()
	}
	if need <= held {
		share.Release(held - need)
	}
	return need, forgot
}
