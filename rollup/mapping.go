package rollup

import (
	"math"

	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/pb/sketchpb"
)

// MinScale is the lowest exponential-histogram scale a sketch is
// downscaled to: scale -4 (buckets of 2^16) is Prometheus' lowest native
// histogram schema; a bucket of a sketch's values can never be wider.
const MinScale = -4

// MapToIndex returns the index of the exponential-histogram bucket of
// scale that holds v > 0: the i with base^i < v ≤ base^(i+1), base =
// 2^(2^-scale), as the OpenTelemetry data model and Prometheus' native
// histograms (whose index is i+1) define it. It is exact for every power
// of two (math.Frexp tells them apart) and for the values next to them,
// at every scale, as the OpenTelemetry Go SDK's exponent mapping is;
// elsewhere the logarithm of the fraction decides, which may put a value
// within an ulp or so of another boundary in the bucket beside it (the
// data model allows that). Bucket i of scale s is bucket
// i>>1 of scale s-1: MapToIndex(v, s-1) == MapToIndex(v, s)>>1.
func MapToIndex(v float64, scale int) int {
	frac, exp := math.Frexp(v) // v = frac·2^exp, frac in [0.5, 1)
	if scale <= 0 {
		// (2^(exp-1), 2^exp] is bucket exp-1 of scale 0, and 2^(exp-1)
		// itself bucket exp-2.
		e := exp - 1
		if frac == 0.5 {
			e--
		}
		return e >> -scale
	}
	if frac == 0.5 {
		return (exp-1)<<scale - 1
	}
	// v in (2^(exp-1), 2^exp): log2 v = exp + log2 frac, with log2 frac in
	// (-1, 0) computed on its own, so that a value an ulp above a power of
	// two is not rounded onto it.
	return exp<<scale + int(math.Ceil(math.Log(frac)*math.Ldexp(math.Log2E, scale))) - 1
}

// scaleFactor is 2^Scale/ln 2: log2 x · 2^Scale = ln x · scaleFactor.
var scaleFactor = math.Ldexp(math.Log2E, Scale)

// index is MapToIndex(v, Scale), the sketch's hot path: the same
// arithmetic, its scale a constant.
func index(v float64) int {
	frac, exp := math.Frexp(v)
	if frac == 0.5 {
		return (exp-1)<<Scale - 1
	}
	return exp<<Scale + int(math.Ceil(math.Log(frac)*scaleFactor)) - 1
}

// spec is the sketch's index mapping: bin i is bucket i of an exponential
// histogram of scale 6, (Gamma^i, Gamma^(i+1)]. A bin's value, its lower
// bound and the range of values it indexes are those of DDSketch's
// logarithmic mapping of the same Gamma (logGamma), whose bin i is
// [Gamma^i, Gamma^(i+1)): the two differ only in the bin of a value on a
// boundary. The value is the point within RelativeAccuracy of both bounds.
type spec struct{}

var logGamma = mustMapping(mapping.NewLogarithmicMappingWithGamma(Gamma, 0))

var _ mapping.IndexMapping = spec{}

func (spec) Equals(o mapping.IndexMapping) bool { _, ok := o.(spec); return ok }
func (spec) Index(v float64) int                { return index(v) }
func (spec) Value(i int) float64                { return logGamma.Value(i) }

// LowerBound is the bin's lower bound, which it does not hold.
func (spec) LowerBound(i int) float64   { return logGamma.LowerBound(i) }
func (spec) RelativeAccuracy() float64  { return logGamma.RelativeAccuracy() }
func (spec) MinIndexableValue() float64 { return logGamma.MinIndexableValue() }
func (spec) MaxIndexableValue() float64 { return logGamma.MaxIndexableValue() }
func (m spec) ToProto() *sketchpb.IndexMapping {
	// The protocol has no upper-inclusive mapping: the logarithmic one of
	// the same gamma is the nearest (it differs on bin boundaries alone).
	// drainmeter stores its sketches without a mapping and never sends
	// them as DDSketch protos.
	return &sketchpb.IndexMapping{Gamma: Gamma, Interpolation: sketchpb.IndexMapping_NONE}
}
func (spec) EncodeProto(b *sketchpb.IndexMappingBuilder) {
	b.SetGamma(Gamma)
	b.SetIndexOffset(0)
	b.SetInterpolation(uint64(sketchpb.IndexMapping_NONE))
}
func (spec) Encode(b *[]byte) { // as ToProto says
	enc.EncodeFlag(b, enc.FlagIndexMappingBaseLogarithmic)
	enc.EncodeFloat64LE(b, Gamma)
	enc.EncodeFloat64LE(b, 0)
}
