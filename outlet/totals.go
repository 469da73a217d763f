package outlet

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// Totals is a lane's running state between minutes, for receivers that want
// cumulative values (OTLP cumulative, remote write): per series, when its
// running totals started and what they are, and the last minute it was
// present in (for staleness). The durable mode keeps it in Postgres with the
// lane's progress, so that any dyno can post the lane's next minute; losing
// it means new start times, which receivers read as counter resets.
type Totals struct {
	Minute int64 // the start of the last minute applied; 0: none
	Series map[string]*Running
	// KeptOut is how many series of the last minute applied were kept out
	// of their running totals (see AdvanceExcept). It is not encoded.
	KeptOut int
	// Repaired is how many series DecodeTotals left out because their
	// running total was not finite (stored before values were bounded):
	// they start again, as a counter reset. It is not encoded.
	Repaired int
}

// Running is one series' running totals.
type Running struct {
	Kind  parse.Kind
	Start int64   // unix seconds: the start of the first minute counted
	Count int64   // measure: values counted
	Sum   float64 // count: the running sum; measure: the running sum of values
	Last  int64   // the start of the last minute the series was present in
	// ProcessType is the series' rollup.Series.ProcessType in its last
	// minute: a stale marker for a series gone since needs it for its labels.
	ProcessType bool
	// Hist (native histograms, AdvanceBuckets): a measure's running bucket
	// counts; nil otherwise. Its total is Count's, but for values the
	// sketch cannot hold (beyond ±1e307).
	Hist *Hist
}

// Hist is a measure's running histogram: the running counts of the
// sketch's bins, bucket i holding (base^i, base^(i+1)] at Scale (the
// sketch's, rollup.Scale, or lower once the running histogram outgrew
// MaxBuckets a side and was downscaled: i → i>>1, for good).
type Hist struct {
	Scale    int32
	Zero     uint64
	Pos, Neg map[int]uint64
}

// Total is the number of values in h.
func (h *Hist) Total() uint64 {
	n := h.Zero
	for _, c := range h.Pos {
		n += c
	}
	for _, c := range h.Neg {
		n += c
	}
	return n
}

func (h *Hist) clone() *Hist {
	return &Hist{Scale: h.Scale, Zero: h.Zero, Pos: maps.Clone(h.Pos), Neg: maps.Clone(h.Neg)}
}

// width is the number of buckets from a side's lowest to its highest.
func width(side map[int]uint64) int {
	if len(side) == 0 {
		return 0
	}
	lo, hi := math.MaxInt, math.MinInt
	for i := range side {
		lo, hi = min(lo, i), max(hi, i)
	}
	return hi - lo + 1
}

func downscale(side map[int]uint64) map[int]uint64 {
	out := make(map[int]uint64, len(side))
	for i, c := range side {
		out[i>>1] += c
	}
	return out
}

// MinHistScale is the lowest scale a running histogram is downscaled to:
// Prometheus' lowest native-histogram schema.
const MinHistScale = -4

// AdvanceBuckets is Advance for native histograms: a measure's running
// totals also keep its running bucket counts (Running.Hist), a side
// downscaled while it spans more than maxBuckets buckets (to MinHistScale
// at most). A measure whose running totals have no buckets (kept without
// them) starts anew, so that count, sum and buckets always agree.
func (t *Totals) AdvanceBuckets(m *rollup.Minute, forget int64, maxBuckets int) *Totals {
	next := t.Advance(m, forget)
	for k, s := range m.Series {
		if s.Kind != parse.Measure {
			continue
		}
		r := next.Series[k]
		var h *Hist
		if r.Hist == nil {
			r.Start, r.Count, r.Sum = m.Start, s.Count, s.Sum
			h = &Hist{Scale: rollup.Scale, Pos: map[int]uint64{}, Neg: map[int]uint64{}}
		} else {
			h = r.Hist.clone()
		}
		// Reading a sketch sorts its buffer: read a copy (the minute is
		// shared with other lanes).
		sk := s.Sketch.Copy()
		shift := rollup.Scale - int(h.Scale)
		sk.GetPositiveValueStore().ForEach(func(i int, c float64) bool {
			h.Pos[i>>shift] += uint64(math.Round(c))
			return false
		})
		sk.GetNegativeValueStore().ForEach(func(i int, c float64) bool {
			h.Neg[i>>shift] += uint64(math.Round(c))
			return false
		})
		h.Zero += uint64(math.Round(sk.GetZeroCount()))
		for h.Scale > MinHistScale && (width(h.Pos) > maxBuckets || width(h.Neg) > maxBuckets) {
			h.Pos, h.Neg, h.Scale = downscale(h.Pos), downscale(h.Neg), h.Scale-1
		}
		for i, c := range h.Pos {
			if c == 0 {
				delete(h.Pos, i)
			}
		}
		for i, c := range h.Neg {
			if c == 0 {
				delete(h.Neg, i)
			}
		}
		r.Hist = h
	}
	return next
}

// Advance returns the totals after minute m: counts' and measures' values
// added to their running totals, every series present in m stamped Last =
// m.Start. Series absent for longer than forget (seconds) are forgotten: if
// they come back, their totals start again. t is not modified.
func (t *Totals) Advance(m *rollup.Minute, forget int64) *Totals {
	return t.AdvanceExcept(m, forget, nil)
}

// AdvanceExcept is Advance, except that the measures for which leave
// returns true do not add to their running count and sum (they stay known,
// and are not forgotten).
//
// A running total never goes down and never becomes ±Inf or NaN: a count
// whose minute total is negative (a monotonic counter would read it as a
// reset), and a count or measure whose minute sum is not finite (parse
// refuses such values; a partial stored before it did may hold one), are
// kept out of their running totals and counted in KeptOut. A running
// total that is not finite (stored before) starts again at the minute.
func (t *Totals) AdvanceExcept(m *rollup.Minute, forget int64, leave func(*rollup.Series) bool) *Totals {
	next := &Totals{Minute: m.Start, Series: make(map[string]*Running, len(m.Series))}
	if t != nil {
		for k, r := range t.Series {
			if m.Start-r.Last <= forget {
				c := *r
				next.Series[k] = &c
			}
		}
	}
	for k, s := range m.Series {
		r := next.Series[k]
		if r == nil || r.Kind != s.Kind {
			r = &Running{Kind: s.Kind, Start: m.Start}
			next.Series[k] = r
		}
		if (s.Kind == parse.Measure || s.Kind == parse.Count) && !finite(r.Sum) {
			*r = Running{Kind: s.Kind, Start: m.Start}
		}
		switch s.Kind {
		case parse.Measure:
			if leave != nil && leave(s) {
				break
			}
			if !finite(s.Sum) || !finite(r.Sum+s.Sum) {
				next.KeptOut++
				break
			}
			r.Count += s.Count
			r.Sum += s.Sum
		case parse.Count:
			if KeepOutCount(s) || !finite(r.Sum+s.Sum) {
				next.KeptOut++
				break
			}
			r.Sum += s.Sum
		}
		r.Last = m.Start
		r.ProcessType = s.ProcessType
	}
	return next
}

// KeepOutCount reports whether count series s's minute total cannot go into
// a monotonic counter (a running total, or an OTLP delta Sum): it is
// negative, or not finite.
func KeepOutCount(s *rollup.Series) bool { return !(s.Sum >= 0) || math.IsInf(s.Sum, 1) }

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

// The encoding: version(1) | varint minute | uvarint n | n × (str key | kind(1) | varint start | varint count | f64 sum | varint last | flags(1) [| hist]),
// series in key order; flags bit 0 = ProcessType, bit 1 = a hist follows:
//
//	varint scale | uvarint zero | side positive | side negative
//	side = uvarint n | n × (varint index − previous index (0 before the first) | uvarint count), in index order
//
// Version 1 had no flags byte, version 2 no hist; both are still read.
// Totals without a hist are written as version 2, which the version
// before reads.
const (
	totalsVersion   = 3
	totalsVersionV2 = 2
	totalsVersionV1 = 1
)

// AppendBinary appends the encoding of t.
func (t *Totals) AppendBinary(dst []byte) []byte {
	version := byte(totalsVersionV2)
	for _, r := range t.Series {
		if r.Hist != nil {
			version = totalsVersion
			break
		}
	}
	dst = append(dst, version)
	dst = binary.AppendVarint(dst, t.Minute)
	keys := make([]string, 0, len(t.Series))
	for k := range t.Series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		r := t.Series[k]
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = append(dst, byte(r.Kind))
		dst = binary.AppendVarint(dst, r.Start)
		dst = binary.AppendVarint(dst, r.Count)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Sum))
		dst = binary.AppendVarint(dst, r.Last)
		var flags byte
		if r.ProcessType {
			flags |= 1
		}
		if r.Hist != nil {
			flags |= 2
		}
		dst = append(dst, flags)
		if h := r.Hist; h != nil {
			dst = binary.AppendVarint(dst, int64(h.Scale))
			dst = binary.AppendUvarint(dst, h.Zero)
			dst = appendSide(dst, h.Pos)
			dst = appendSide(dst, h.Neg)
		}
	}
	return dst
}

func appendSide(dst []byte, side map[int]uint64) []byte {
	idx := slices.Sorted(maps.Keys(side))
	dst = binary.AppendUvarint(dst, uint64(len(idx)))
	prev := 0
	for _, i := range idx {
		dst = binary.AppendVarint(dst, int64(i-prev))
		dst = binary.AppendUvarint(dst, side[i])
		prev = i
	}
	return dst
}

var errTotals = errors.New("outlet: corrupt running totals")

// DecodeTotals decodes what AppendBinary encoded, leaving out series whose
// running total is not finite (Repaired counts them).
func DecodeTotals(b []byte) (*Totals, error) {
	if len(b) == 0 || b[0] < totalsVersionV1 || b[0] > totalsVersion {
		return nil, errTotals
	}
	v1, v3 := b[0] == totalsVersionV1, b[0] == totalsVersion
	b = b[1:]
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	minute := varint()
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errTotals
	}
	b = b[k:]
	t := &Totals{Minute: minute, Series: make(map[string]*Running, n)}
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l >= uint64(len(b)-k) {
			return nil, errTotals
		}
		key := string(b[k : k+int(l)])
		b = b[k+int(l):]
		if len(b) == 0 {
			return nil, errTotals
		}
		r := &Running{Kind: parse.Kind(b[0])}
		b = b[1:]
		r.Start, r.Count = varint(), varint()
		if len(b) < 8 {
			return nil, errTotals
		}
		r.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
		r.Last = varint()
		if b == nil {
			return nil, errTotals
		}
		bad := !finite(r.Sum) // stored before values were bounded: the series starts again
		if !v1 {
			if len(b) == 0 {
				return nil, errTotals
			}
			flags := b[0]
			r.ProcessType = flags&1 != 0
			b = b[1:]
			if flags&2 != 0 {
				if !v3 {
					return nil, errTotals
				}
				h := &Hist{Scale: int32(varint())}
				uvarint := func() uint64 {
					v, n := binary.Uvarint(b)
					if n <= 0 {
						b = nil
						return 0
					}
					b = b[n:]
					return v
				}
				h.Zero = uvarint()
				for _, side := range []*map[int]uint64{&h.Pos, &h.Neg} {
					n := uvarint()
					if b == nil || n > uint64(len(b)) {
						return nil, errTotals
					}
					*side = make(map[int]uint64, n)
					i := 0
					for range n {
						i += int(varint())
						(*side)[i] = uvarint()
					}
				}
				if b == nil || h.Scale < MinHistScale || h.Scale > rollup.Scale {
					return nil, errTotals
				}
				r.Hist = h
			}
		}
		if bad {
			t.Repaired++
			continue
		}
		t.Series[key] = r
	}
	if len(b) != 0 {
		return nil, errTotals
	}
	return t, nil
}
