package parse

import "time"

// Kind is what a measurement reports per minute.
type Kind uint8

// The kinds of measurement, named by their key prefix.
const (
	Measure Kind = iota + 1 // count, sum, min, max, sum of squares, percentiles
	Count                   // sum
	Sample                  // last value by log timestamp
	Unique                  // number of distinct members
)

var kindNames = [...]string{Measure: "measure", Count: "count", Sample: "sample", Unique: "unique"}

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
	Member []byte // unique only
	Unit   []byte // display unit, may be empty
	Source []byte // with the drain's source prefix applied; may be empty
	// TypeSource is the process-type source ("web" for dyno "web.1", with the
	// source prefix applied) of a measure, count or unique whose source is a
	// dyno name, when the parser's options ask for per-process-type series.
	TypeSource []byte
	// Dims are extra dimensions of the series (a route, say), in the
	// canonical form of rollup.AppendDim; empty for most measurements.
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
