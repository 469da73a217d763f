package rollup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/drainmeter/drainmeter/parse"
)

// A partial minute is encoded as
//
//	version(1) | uvarint series count | series… [| uvarint event count | events…]
//
// and each series (version 2) as
//
//	kind(1) | flags(1) | str name | str source | str dims | str unit | varint count | f64 sum, min, max, sumsq, last | varint lasttime | bytes sketch
//
// (flags: bit 0 = ProcessType; bit 1 = the sketch's bins are of the
// upper-inclusive mapping, see below)
// and each event (version 3) as
//
//	str name | str title | varint time (unix nanoseconds)
//
// where str and bytes are a uvarint length and the bytes, f64 is 8 bytes
// little endian, and the sketch is DDSketch's own encoding without its
// mapping (measure) or HyperLogLog's (unique), empty for the other kinds.
// Series are written in key order, events in time order, so that equal
// minutes encode equally. A minute without events is written as version 2,
// which drainmeter 0.1's sealers read, so that a rolling deploy loses
// nothing; with events, as version 3.
//
// The sketch's own encoding is versioned by flags bit 1. Set, its bins are
// of today's mapping (spec, mapping.go): bin i holds (Gamma^i, Gamma^(i+1)],
// the OTLP-spec bucket. Clear, they are of the mapping before it, DDSketch's
// logarithmic mapping of the same Gamma, bin i holding [Gamma^i,
// Gamma^(i+1)): such partials, written before an upgrade and still in
// Postgres, merge with those written after it bin for bin, as the two bins
// i differ only on the boundary Gamma^i, which a value of the old mapping
// may sit on (8 ms, say: then within RelativeAccuracy, 0.54 %, of its bin's
// value, as before). A flag rather than a new version byte, so that the
// sealers of the version before, which ignore the bit, still read the
// partials of this one during a rolling deploy (their reading differs on
// boundary values alone, by at most 0.54 %).
//
// Version 1 (drainmeter 0.1) had no dims and sketches of another mapping
// (relative accuracy 0.009): they are still read, each bin re-added at its
// representative value into a sketch of today's mapping, so that partials
// written before an upgrade merge with those written after it (those
// minutes' percentiles are then within 1.5 % rather than 0.54 %).
const (
	encodingVersionV3 = 3 // events
	encodingVersion   = 2
	encodingVersionV1 = 1
)

// The flags of a series.
const (
	flagProcessType = 1 << 0
	flagSpecMapping = 1 << 1 // the sketch's bins are spec's, (Gamma^i, Gamma^(i+1)]
)

// indexMappingV1 is version 1's mapping.
var indexMappingV1 = mustMapping(mapping.NewLogarithmicMappingWithGamma((1+0.009)/(1-0.009), 0))

// AppendBinary appends the encoding of the minute's series to dst.
func (m *Minute) AppendBinary(dst []byte) []byte { return m.appendBinary(dst, flagSpecMapping) }

// appendBinary is AppendBinary with the flags of measures' sketches given
// (tests write partials of the old mapping with 0).
func (m *Minute) appendBinary(dst []byte, sketchFlags byte) []byte {
	if len(m.Events) > 0 {
		dst = append(dst, encodingVersionV3)
	} else {
		dst = append(dst, encodingVersion)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Series)))
	var sk []byte
	for _, s := range m.Sorted() {
		var flags byte
		if s.ProcessType {
			flags |= flagProcessType
		}
		if s.Kind == parse.Measure {
			flags |= sketchFlags
		}
		dst = append(dst, byte(s.Kind), flags)
		dst = appendString(dst, s.Name)
		dst = appendString(dst, s.Source)
		dst = appendString(dst, s.Dims)
		dst = appendString(dst, s.Unit)
		dst = binary.AppendVarint(dst, s.Count)
		for _, f := range [...]float64{s.Sum, s.Min, s.Max, s.SumSq, s.Last} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
		dst = binary.AppendVarint(dst, s.LastTime)
		sk = sk[:0]
		switch s.Kind {
		case parse.Measure:
			s.Sketch.Encode(&sk, true)
		case parse.Unique:
			sk, _ = s.HLL.AppendBinary(sk) // cannot fail
		}
		dst = appendString(dst, string(sk))
	}
	if len(m.Events) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(m.Events)))
		for _, e := range sortedEvents(m.Events) {
			dst = appendString(dst, e.Name)
			dst = appendString(dst, e.Title)
			dst = binary.AppendVarint(dst, e.Time)
		}
	}
	return dst
}

// SortedEvents returns the minute's events ordered by time, name and title
// (a copy).
func (m *Minute) SortedEvents() []Event { return sortedEvents(m.Events) }

// sortedEvents returns a copy of events ordered by time, name and title.
func sortedEvents(events []Event) []Event {
	out := append([]Event(nil), events...)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Time != b.Time {
			return a.Time < b.Time
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Title < b.Title
	})
	return out
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errCorrupt = errors.New("rollup: corrupt partial")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) f64() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// DecodeMinute decodes what AppendBinary encoded into a Minute of the given
// drain and start. A series with a sum that is not finite (stored before
// parse.MaxValue bounded values: 1.7e308 twice) is left out and counted in
// Repaired, so that it cannot poison a sealed minute or a running total.
func DecodeMinute(drain string, start int64, b []byte) (*Minute, error) {
	if len(b) == 0 || (b[0] != encodingVersionV3 && b[0] != encodingVersion && b[0] != encodingVersionV1) {
		return nil, errCorrupt
	}
	v1, v3 := b[0] == encodingVersionV1, b[0] == encodingVersionV3
	d := &decoder{b: b[1:]}
	n := d.uvarint()
	if n > uint64(len(b)) {
		return nil, errCorrupt
	}
	m := &Minute{Drain: drain, Start: start, Series: make(map[string]*Series, n)}
	for range n {
		if len(d.b) == 0 {
			return nil, errCorrupt
		}
		kind := parse.Kind(d.b[0])
		d.b = d.b[1:]
		if kind < parse.Measure || kind > parse.Unique {
			return nil, errCorrupt
		}
		var flags byte
		if !v1 {
			if len(d.b) == 0 {
				return nil, errCorrupt
			}
			flags, d.b = d.b[0], d.b[1:]
		}
		name, source := d.bytes(), d.bytes()
		var dims []byte
		if !v1 {
			dims = d.bytes()
		}
		unit := d.bytes()
		key := seriesKey(string(name), string(source), string(dims))
		s := newSeries(kind, key, len(name), len(source))
		s.Unit = string(unit)
		s.ProcessType = flags&flagProcessType != 0
		s.Count = d.varint()
		s.Sum, s.Min, s.Max, s.SumSq, s.Last = d.f64(), d.f64(), d.f64(), d.f64(), d.f64()
		s.LastTime = d.varint()
		sk := d.bytes()
		if d.err != nil {
			return nil, d.err
		}
		switch kind {
		case parse.Measure:
			if v1 {
				old, err := ddsketch.DecodeDDSketch(sk, store.BufferedPaginatedStoreConstructor, indexMappingV1)
				if err != nil {
					return nil, fmt.Errorf("rollup: partial sketch: %w", err)
				}
				old.ForEach(func(v, n float64) bool {
					_ = s.Sketch.AddWithCount(v, n) // representative values are in range
					return false
				})
				break
			}
			// Without flagSpecMapping, bins of the mapping before spec: bin i
			// is read as bin i (see the encoding's comment).
			dec, err := ddsketch.DecodeDDSketch(sk, store.BufferedPaginatedStoreConstructor, indexMapping)
			if err != nil {
				return nil, fmt.Errorf("rollup: partial sketch: %w", err)
			}
			s.Sketch = dec
		case parse.Unique:
			if err := s.HLL.UnmarshalBinary(sk); err != nil {
				return nil, fmt.Errorf("rollup: partial uniques: %w", err)
			}
		}
		if !finiteSums(s) {
			m.Repaired++
			continue
		}
		m.Series[key] = s
	}
	if v3 {
		n := d.uvarint()
		if n == 0 || n > uint64(len(d.b)) {
			return nil, errCorrupt
		}
		m.Events = make([]Event, 0, n)
		for range n {
			name, title := d.bytes(), d.bytes()
			t := d.varint()
			if d.err != nil {
				return nil, d.err
			}
			m.Events = append(m.Events, Event{Name: string(name), Title: string(title), Time: t})
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}

// finiteSums reports whether s's sum (a sample's value) is finite: what
// running totals add up. (A sum of squares that overflowed is left to the
// outlets: Librato leaves it out of its gauge, the others do not send it.)
func finiteSums(s *Series) bool {
	fin := func(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
	switch s.Kind {
	case parse.Measure, parse.Count:
		return fin(s.Sum)
	case parse.Sample:
		return fin(s.Last)
	}
	return true
}

// Sorted returns the minute's series ordered by key (name, source, dims).
func (m *Minute) Sorted() []*Series {
	keys := make([]string, 0, len(m.Series))
	for k := range m.Series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*Series, len(keys))
	for i, k := range keys {
		out[i] = m.Series[k]
	}
	return out
}

// Merge adds the series and events of o (a partial of the same drain and
// minute) to m. A series whose kind differs from m's is skipped and
// counted; an event m has already is not added again.
func (m *Minute) Merge(o *Minute) (conflicts int, err error) {
	for _, e := range o.Events {
		if !slices.Contains(m.Events, e) {
			m.Events = append(m.Events, e)
		}
	}
	for k, s := range o.Series {
		mine := m.Series[k]
		if mine == nil {
			m.Series[k] = s
			continue
		}
		if mine.Kind != s.Kind {
			conflicts++
			continue
		}
		if err := mine.Merge(s); err != nil {
			return conflicts, err
		}
	}
	return conflicts, nil
}
