package rollup

import "strings"

// Dimensions (labels) beyond name and source, such as a route, are kept in
// one string per series: each pair is the key, 0x1f and the value, and pairs
// are separated by 0x1e, ordered by key. Outlets with labels (OTLP, remote
// write) turn each pair into a label; Librato, which has only names and
// sources, appends them to the name.
const (
	dimSep  = '\x1e'
	pairSep = '\x1f'
)

// AppendDim appends the pair key=value to dims, which must hold only pairs
// whose keys sort before key.
func AppendDim(dims []byte, key, value string) []byte {
	if len(dims) > 0 {
		dims = append(dims, dimSep)
	}
	dims = append(dims, key...)
	dims = append(dims, pairSep)
	return append(dims, value...)
}

// EachDim calls f with every pair of dims, in order.
func EachDim(dims string, f func(key, value string)) {
	for dims != "" {
		pair, rest, _ := strings.Cut(dims, string(dimSep))
		k, v, _ := strings.Cut(pair, string(pairSep))
		f(k, v)
		dims = rest
	}
}
