package outlet

import (
	"encoding/binary"
	"errors"
	"math"
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
		switch s.Kind {
		case parse.Measure:
			if leave != nil && leave(s) {
				break
			}
			r.Count += s.Count
			r.Sum += s.Sum
		case parse.Count:
			r.Sum += s.Sum
		}
		r.Last = m.Start
		r.ProcessType = s.ProcessType
	}
	return next
}

// The encoding: version(1) | varint minute | uvarint n | n × (str key | kind(1) | varint start | varint count | f64 sum | varint last | flags(1)),
// series in key order; flags bit 0 = ProcessType. Version 1 had no flags
// byte; it is still read.
const (
	totalsVersion   = 2
	totalsVersionV1 = 1
)

// AppendBinary appends the encoding of t.
func (t *Totals) AppendBinary(dst []byte) []byte {
	dst = append(dst, totalsVersion)
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
		dst = append(dst, flags)
	}
	return dst
}

var errTotals = errors.New("outlet: corrupt running totals")

// DecodeTotals decodes what AppendBinary encoded.
func DecodeTotals(b []byte) (*Totals, error) {
	if len(b) == 0 || (b[0] != totalsVersion && b[0] != totalsVersionV1) {
		return nil, errTotals
	}
	v1 := b[0] == totalsVersionV1
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
		if !v1 {
			if len(b) == 0 {
				return nil, errTotals
			}
			r.ProcessType = b[0]&1 != 0
			b = b[1:]
		}
		t.Series[key] = r
	}
	if len(b) != 0 {
		return nil, errTotals
	}
	return t, nil
}
