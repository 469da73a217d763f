package rollup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/drainmeter/drainmeter/parse"
)

// A partial minute is encoded as
//
//	version(1) | uvarint series count | series…
//
// and each series as
//
//	kind(1) | str name | str source | str unit | varint count | f64 sum, min, max, sumsq, last | varint lasttime | bytes sketch
//
// where str and bytes are a uvarint length and the bytes, f64 is 8 bytes
// little endian, and the sketch is DDSketch's own encoding (measure) or
// HyperLogLog's (unique), empty for the other kinds.
const encodingVersion = 1

// AppendBinary appends the encoding of the minute's series to dst.
func (m *Minute) AppendBinary(dst []byte) []byte {
	dst = append(dst, encodingVersion)
	dst = binary.AppendUvarint(dst, uint64(len(m.Series)))
	var sk []byte
	for _, s := range m.Series {
		dst = append(dst, byte(s.Kind))
		dst = appendString(dst, s.Name)
		dst = appendString(dst, s.Source)
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
	return dst
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
// drain and start.
func DecodeMinute(drain string, start int64, b []byte) (*Minute, error) {
	if len(b) == 0 || b[0] != encodingVersion {
		return nil, errCorrupt
	}
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
		name, source, unit := string(d.bytes()), string(d.bytes()), string(d.bytes())
		key := name + "\x00" + source
		s := newSeries(kind, key, len(name))
		s.Unit = unit
		s.Count = d.varint()
		s.Sum, s.Min, s.Max, s.SumSq, s.Last = d.f64(), d.f64(), d.f64(), d.f64(), d.f64()
		s.LastTime = d.varint()
		sk := d.bytes()
		if d.err != nil {
			return nil, d.err
		}
		switch kind {
		case parse.Measure:
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
		m.Series[key] = s
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}

// Merge adds the series of o (a partial of the same drain and minute) to m.
// A series whose kind differs from m's is skipped and counted.
func (m *Minute) Merge(o *Minute) (conflicts int, err error) {
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
