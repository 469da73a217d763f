package rollup

import (
	"math"
	"unsafe"

	"github.com/drainmeter/drainmeter/parse"
)

// Series state is accounted in bytes, per drain across all its open minutes
// (future ones included): each series is counted for an upper bound of the
// heap it holds, raised as it grows, and a new series — or a value that
// would grow a series — that does not fit in the drain's share
// (Config.MaxBytesPerDrain) or in the process's (Config.Series) is refused
// and counted as overflow. A minute's bytes are given back when it closes
// (Flush). Series that TakeOpen hands out of a minute still open stay
// accounted with it: a series of that key later in the minute goes on
// from the account it had, so that a minute's bytes bound the series the
// durable mode merges from its partials, as if they had stayed.
//
// The bounds, checked against the heap by TestSeriesBytesBound:
//
//	every series   seriesBase + its key (name, source, dims) + its unit
//	count, sample  nothing more
//	measure        sketchBase + per store of values of one sign: its buffer
//	               of 8 bytes a value (with append's slack) or, once values
//	               are paged, at most 31 buffered per page and 256 bytes a
//	               page, plus the slice of pages, which spans the range of
//	               the values (2 pages per power of two): a sketch of values
//	               near 1e-300 and 1e300 holds ~100 KB for 128 values
//	unique         hllBase + 12 bytes a member while the sketch is sparse,
//	               at most 24 KiB (dense: 16 KiB of registers)
const (
	seriesBase = int64(unsafe.Sizeof(Series{})) + 16 + 64 // the Series (in its size class), its map entry (with the map's growth slack)
	sketchBase = 320                                      // a DDSketch and its two empty stores
	hllBase    = 200
	maxHLL     = 24 << 10
)

// seriesBytes is the bound for a series of this kind, key and unit that
// has observed count values, whose binary exponents span [lo, hi] (signs:
// bit 0 positive values seen, bit 1 negative).
func seriesBytes(kind parse.Kind, keyLen, unitLen int, count int64, lo, hi int16, signs uint8) int64 {
	n := seriesBase + int64(keyLen) + int64(keyLen)/8 + 16 + int64(unitLen)
	switch kind {
	case parse.Measure:
		n += sketchBase
		if signs != 0 {
			stores := int64(1)
			if signs == 3 {
				stores = 2
			}
			n += storesBytes(count, 2*(int64(hi)-int64(lo)+1)+1, stores)
		}
	case parse.Unique:
		n += hllBase + min(12*count, 4*count+1500, maxHLL)
	}
	return n
}

// storesBytes bounds the stores (one per sign of the values) of a DDSketch
// that hold count values in all, each spread over at most pages pages.
func storesBytes(count, pages, stores int64) int64 {
	buffered := 16 * count // before the first compaction: every value buffered; append doubles
	if count >= 256 {
		buffered = 10 * count // append grows large slices by 1.25
	}
	paged := stores * (16*(31*pages+32) + 256*pages) // after: at most 31 a page buffered, 256 bytes a page
	b := min(buffered, paged)
	if count > 64 { // a store compacts at 64 buffered values: from then on a page may exist, and the slice of pages spans them
		b += stores * 48 * (pages + 8)
	}
	return b
}

// resumed returns the account of a series handed out by TakeOpen, for a
// new series of its key: it goes on from where the other stopped.
func (a memAcct) resumed() memAcct {
	a.prior = a.until
	return a
}

// exponent returns v's binary exponent (biased; 0 for 0 and subnormals).
func exponent(v float64) int16 {
	return int16(math.Float64bits(v) >> 52 & 0x7ff)
}

// memAcct is what the store accounts for a series.
type memAcct struct {
	bytes        int32 // the bound
	until        int32 // the count of values the bound holds for
	prior        int32 // values the series' key had in the minute before TakeOpen handed them out (at most)
	unitBytes    int32 // the longest unit the series had
	expLo, expHi int16 // the range of its values' binary exponents
	signs        uint8 // bit 0: positive values seen; bit 1: negative
	kind         parse.Kind
}

// accountEvery is how many values a measure's or a unique's bound is
// raised for at a time, so that most values only compare.
const accountEvery = 16

// fits reports whether the series' account holds for one more value m
// (its count is count): the common case, with nothing to charge.
func (a *memAcct) fits(kind parse.Kind, count int64, m *parse.Measurement) bool {
	if int64(a.prior)+count >= int64(a.until) || len(m.Unit) > int(a.unitBytes) {
		return false
	}
	v := m.Value
	if kind != parse.Measure || v == 0 {
		return true
	}
	e := exponent(v)
	sign := uint8(1)
	if v < 0 {
		sign = 2
	}
	return a.signs&sign != 0 && e >= a.expLo && e <= a.expHi
}

// grown returns the account of a series of this kind and key length that
// has observed count values (and prior more before), once it has observed
// m too.
func (a memAcct) grown(kind parse.Kind, keyLen int, count int64, m *parse.Measurement) memAcct {
	a.kind = kind
	a.unitBytes = max(a.unitBytes, int32(min(len(m.Unit), math.MaxInt32)))
	if v := m.Value; kind == parse.Measure && v != 0 {
		e, sign := exponent(v), uint8(1)
		if v < 0 {
			sign = 2
		}
		if a.signs == 0 {
			a.expLo, a.expHi = e, e
		}
		a.expLo, a.expHi, a.signs = min(a.expLo, e), max(a.expHi, e), a.signs|sign
	}
	until := min((int64(a.prior)+count+accountEvery)/accountEvery*accountEvery, math.MaxInt32)
	a.bytes = int32(min(seriesBytes(kind, keyLen, int(a.unitBytes), until, a.expLo, a.expHi, a.signs), math.MaxInt32))
	a.until = int32(until)
	if kind == parse.Count || kind == parse.Sample {
		a.until = math.MaxInt32 // their bound does not depend on their count
	}
	return a
}
