package remotewrite

import (
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
	for len(b) > 0 {
		_, _, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		lb, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		var k, v string
		for len(lb) > 0 {
			num, _, m := protowire.ConsumeTag(lb)
			if m < 0 {
				return ""
			}
			lb = lb[m:]
			s, m := protowire.ConsumeString(lb)
			if m < 0 {
				return ""
			}
			lb = lb[m:]
			if num == 1 {
				k = s
			} else {
				v = s
			}
		}
		if k == key {
			return v
		}
	}
	return ""
}
