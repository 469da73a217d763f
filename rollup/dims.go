package rollup

import (
	"sort"

	"github.com/drainmeter/drainmeter/parse"
)

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

// The values of the rollup marker (OTLP attribute drainmeter.rollup,
// Prometheus label drainmeter_rollup): what part of a metric's lines a
// series counts (README, "The label contract").
const (
	RollupDyno        = "dyno"         // one source: a dyno (web.1), an add-on (DATABASE), …
	RollupProcessType = "process_type" // the lines of web.1, web.2 … as one series "web"
	RollupRoute       = "route"        // the router lines of one route (the route dimension)
	RollupApp         = parse.RollupApp
	RollupNone        = "none" // lines without a source
)

// Marker returns the rollup marker of a series of source source and
// dimensions dims, processType its Series.ProcessType.
func Marker(source, dims string, processType bool) string {
	if dims != "" {
		if v, ok := parse.DimValue(dims, parse.RollupDim); ok {
			return v
		}
	}
	switch {
	case processType:
		return RollupProcessType
	case dims != "" && dimSet(dims, parse.RouteDim):
		return RollupRoute
	case source != "":
		return RollupDyno
	}
	return RollupNone
}

func dimSet(dims, key string) bool {
	v, _ := parse.DimValue(dims, key)
	return v != ""
}

func hasDim(dims, key string) bool {
	_, ok := parse.DimValue(dims, key)
	return ok
}

// App returns the sending app of a series (parse.AppDim), or "" when it has
// none: the drain's own name applies.
func App(dims string) string {
	if dims == "" {
		return ""
	}
	v, _ := parse.DimValue(dims, parse.AppDim)
	return v
}

// Labelled reports whether a dimension is one outlets turn into a label or
// attribute of its own; the app and the rollup marker are not (they are
// the series' job / service.name and its drainmeter.rollup).
func Labelled(key string) bool { return key != parse.AppDim && key != parse.RollupDim }

// appRollupDims appends to dst the dimensions of the whole-app rollup of a
// measurement of dimensions dims: its dimensions but the route, and the
// marker RollupDim=RollupApp, in key order.
func appRollupDims(dst, dims []byte) []byte {
	marked := false
	for i := 0; i <= len(dims) && len(dims) > 0; {
		j := i
		for j < len(dims) && dims[j] != parse.DimSep {
			j++
		}
		pair := dims[i:j]
		k := pair
		for n, c := range pair {
			if c == parse.DimPairSep {
				k = pair[:n]
				break
			}
		}
		if !marked && string(k) > parse.RollupDim {
			dst = parse.AppendDim(dst, parse.RollupDim, parse.RollupApp)
			marked = true
		}
		if string(k) != parse.RouteDim && string(k) != parse.RollupDim {
			if len(dst) > 0 {
				dst = append(dst, parse.DimSep)
			}
			dst = append(dst, pair...)
		}
		i = j + 1
	}
	if !marked {
		dst = parse.AppendDim(dst, parse.RollupDim, parse.RollupApp)
	}
	return dst
}

// LabelDims returns dims without the dimensions that are not labels of
// their own (Labelled): the route, say, of a series of an app.
func LabelDims(dims string) string {
	if dims == "" || (!hasDim(dims, parse.AppDim) && !hasDim(dims, parse.RollupDim)) {
		return dims
	}
	var out []byte
	EachDim(dims, func(k, v string) {
		if Labelled(k) {
			out = parse.AppendDim(out, k, v)
		}
	})
	return string(out)
}

// AddAppRollups gives a closed minute its whole-app rollups, replacing any
// it has: for each name (and app, parse.AppDim), one series with no
// source, marked parse.RollupDim=parse.RollupApp, that merges every count,
// measure and unique series of the name that counts each line once — those
// of one source (dyno) and those of none — so every line of the metric,
// whatever its source (sketches merged: exact percentiles within the
// sketch's accuracy). Process-type rollups and route series, which repeat
// those lines, are left out, and so are samples. A name with series of two
// kinds gets the kind of its first in key order. It returns how many app
// rollups the minute has.
func AddAppRollups(m *Minute) int {
	var keys []string
	for k, s := range m.Series {
		if Marker(s.Source, s.Dims, s.ProcessType) == RollupApp {
			delete(m.Series, k)
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic: the first kind wins
	apps := map[string]*Series{}
	var dims []byte
	for _, k := range keys {
		s := m.Series[k]
		if s.Kind == parse.Sample || s.Kind == parse.Event {
			continue
		}
		if mk := Marker(s.Source, s.Dims, s.ProcessType); mk != RollupDyno && mk != RollupNone {
			continue
		}
		dims = appRollupDims(dims[:0], []byte(s.Dims))
		key := seriesKey(s.Name, "", string(dims))
		a := apps[key]
		if a == nil {
			a = newSeries(s.Kind, key, len(s.Name), 0)
			apps[key] = a
		}
		if a.Kind != s.Kind {
			continue
		}
		_ = a.Merge(s) // one kind, one sketch mapping: cannot fail
		a.ProcessType = false
	}
	for k, a := range apps {
		m.Series[k] = a
	}
	return len(apps)
}
