package parse

import (
	"strings"
	"time"
)

// Kind is what a measurement reports per minute.
type Kind uint8

// The kinds of measurement, named by their key prefix.
const (
	Measure Kind = iota + 1 // count, sum, min, max, sum of squares, percentiles
	Count                   // sum
	Sample                  // last value by log timestamp
	Unique                  // number of distinct members
	// Event is a point in time worth marking on charts (a release, a
	// deploy, a rollback): Member is its title. Events are kept with their
	// minute, not rolled up into a series; outlets that have annotations
	// post them.
	Event
)

var kindNames = [...]string{Measure: "measure", Count: "count", Sample: "sample", Unique: "unique", Event: "event"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Measurement is one observation read from a log line.
//
// Its byte slices point into the parser's input and scratch space: they are
// valid only until the callback that received the measurement returns. Copy
// what you keep.
type Measurement struct {
	Kind   Kind
	Name   []byte // with the drain's prefix applied
	Value  float64
	Member []byte // unique: the member; event: the title
	Unit   []byte // display unit, may be empty
	Source []byte // with the drain's source prefix applied; may be empty
	// TypeSource is the process-type source ("web" for dyno "web.1", with the
	// source prefix applied) of a measure, count or unique whose source is a
	// dyno name, when the parser's options ask for per-process-type series.
	TypeSource []byte
	// Dims are extra dimensions of the series (a route, say), in the
	// canonical form of AppendDim; empty for most measurements.
	Dims []byte
	Time time.Time // the log timestamp, or the receive time
}

// Reason says why a frame or a pair was rejected.
type Reason uint8

// Reasons for rejecting input. A BadHeader rejects the whole frame; the others
// reject one pair and leave the rest of the line alone.
const (
	BadHeader         Reason = iota // the syslog header could not be read
	BadValue                        // a number that is not a number, or overflows
	EmptyName                       // "measure#=1": no metric name
	EmptyMember                     // "unique#users=": no member
	LongMember                      // a unique member longer than MaxMemberBytes
	UnterminatedQuote               // the line's pairs ended at an open quote
	LongName                        // a name, source or unit longer than MaxNameBytes (prefixes included)
	NumReasons
)

var reasonNames = [...]string{
	BadHeader:         "bad_header",
	BadValue:          "bad_value",
	EmptyName:         "empty_name",
	EmptyMember:       "empty_member",
	LongMember:        "long_member",
	UnterminatedQuote: "unterminated_quote",
	LongName:          "long_name",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Rejects counts rejects by reason.
type Rejects [NumReasons]uint64

// Total is the number of rejects of every reason.
func (r *Rejects) Total() uint64 {
	var n uint64
	for _, v := range r {
		n += v
	}
	return n
}

// MaxMemberBytes is the longest member a unique# pair may carry.
const MaxMemberBytes = 128

// MaxNameBytes is the longest metric name, source or unit a measurement may
// have, with the drain's prefixes applied: Librato's limit on names and
// sources. A longer one is rejected (LongName) rather than cut, so that two
// names that differ only after it never become one series.
const MaxNameBytes = 255

// Dimensions (labels) beyond name and source, such as a route, are kept in
// one string per series: each pair is the key, DimPairSep and the value;
// pairs are separated by DimSep and ordered by key. Outlets with labels
// (OTLP, remote write) turn each pair into a label; Librato, which has only
// names and sources, puts them in the name.
const (
	DimSep     = '\x1e'
	DimPairSep = '\x1f'
)

// The dimensions that outlets read as part of a series' identity rather
// than as a label of their own.
const (
	// AppDim is the sending app of a drain several apps send to (the
	// built-in drain; Options.App): outlets make it the series' job
	// (Prometheus) or service.name (OTLP).
	AppDim = "app"
	// RollupDim marks a rollup series that no line names itself: its value
	// RollupApp is the whole-app rollup (rollup.Store), which outlets label
	// drainmeter_rollup="app".
	RollupDim = "drainmeter.rollup"
	RollupApp = "app"
)

// AppendDim appends the pair key=value to dims, which must hold only pairs
// whose keys sort before key.
func AppendDim(dims []byte, key, value string) []byte {
	if len(dims) > 0 {
		dims = append(dims, DimSep)
	}
	dims = append(dims, key...)
	dims = append(dims, DimPairSep)
	return append(dims, value...)
}

// EachDim calls f with every pair of dims, in order.
func EachDim(dims string, f func(key, value string)) {
	for dims != "" {
		pair, rest, _ := strings.Cut(dims, string(rune(DimSep)))
		k, v, _ := strings.Cut(pair, string(rune(DimPairSep)))
		f(k, v)
		dims = rest
	}
}

// DimValue returns the value of the dimension key in dims.
func DimValue(dims, key string) (string, bool) {
	for dims != "" {
		pair, rest, _ := strings.Cut(dims, string(rune(DimSep)))
		if k, v, _ := strings.Cut(pair, string(rune(DimPairSep))); k == key {
			return v, true
		}
		dims = rest
	}
	return "", false
}
