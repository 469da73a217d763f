package outlet

import "sort"

// DefaultMaxTotals is the most series whose running totals a lane keeps
// (Totals.Trim): with about 200 bytes each, 10 MB per lane at most,
// however long COUNTER_HOLD and whatever the churn of series.
const DefaultMaxTotals = 50_000

// Trim forgets the running totals of the series that moved longest ago
// until at most max remain; the series of minute keep (the one just
// applied) are never forgotten. A forgotten counter that comes back starts
// again from 0, which receivers read as a counter reset. It returns how
// many it forgot.
func (t *Totals) Trim(max int, keep int64) int {
	if t == nil || max <= 0 || len(t.Series) <= max {
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
		if len(t.Series) <= max {
			break
		}
		delete(t.Series, o.key)
		n++
	}
	return n
}
