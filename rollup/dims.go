package rollup

import "github.com/drainmeter/drainmeter/parse"

// Dimensions (labels) beyond name and source, such as a route, are kept in
// one string per series, in parse's canonical form (parse.AppendDim): each
// pair is the key, 0x1f and the value, and pairs are separated by 0x1e,
// ordered by key. Outlets with labels (OTLP, remote write) turn each pair
// into a label; Librato, which has only names and sources, puts them in the
// name.

// AppendDim appends the pair key=value to dims, which must hold only pairs
// whose keys sort before key.
func AppendDim(dims []byte, key, value string) []byte { return parse.AppendDim(dims, key, value) }

// EachDim calls f with every pair of dims, in order.
func EachDim(dims string, f func(key, value string)) { parse.EachDim(dims, f) }
