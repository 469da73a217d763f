package outlet

import "sort"

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
