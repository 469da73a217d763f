package remotewrite

import (
	"iter"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// SeriesNames returns the metric names (__name__) a series of this kind and
// name is posted under (native: by an outlet that sends measures as native
// histograms), in the order the outlet writes them: the very encoding
// Encode uses, read back, so that what the status pages show is what a
// receiver gets.
func SeriesNames(kind parse.Kind, name string, native bool) []string {
	var out []string
	for _, p := range seriesOf(drainLabels{}, &rollup.Series{Kind: kind, Name: name}, &outlet.Running{Kind: kind}, true, native) {
		if n := labelValue(p.labels, labelName); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// labelValue returns the value of label key in encoded Label fields.
func labelValue(b []byte, key string) string {
	for k, v := range labelsOf(b) {
		if k == key {
			return v
		}
	}
	return ""
}

// labelsOf yields the name and value of each label in encoded Label fields
// (a Label's field 1 is its name, field 2 its value, as Encode writes
// them), in order, each time it is ranged over. It stops at the end or at
// the first malformed byte.
func labelsOf(b []byte) iter.Seq2[string, string] {
	return func(yield func(k, v string) bool) {
		for fields := b; len(fields) > 0; {
			_, msg, rest, ok := nextBytesField(fields)
			if !ok {
				return
			}
			fields = rest
			var k, v string
			for len(msg) > 0 {
				num, s, rest, ok := nextBytesField(msg)
				if !ok {
					return
				}
				msg = rest
				if num == 1 {
					k = string(s)
				} else {
					v = string(s)
				}
			}
			if !yield(k, v) {
				return
			}
		}
	}
}

// nextBytesField splits the first field off b, read as length-delimited
// (every field of a Label and of its list is): its number, its contents and
// what follows it. ok is false at a malformed byte.
func nextBytesField(b []byte) (num protowire.Number, v, rest []byte, ok bool) {
	num, _, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, nil, nil, false
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0, nil, nil, false
	}
	return num, v, b[n+m:], true
}
