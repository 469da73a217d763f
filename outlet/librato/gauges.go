package librato

import (
	"math"
	"strconv"
	"strings"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// Gauge is one measurement of Librato's legacy POST /v1/metrics, as l2met
// posted them: gauges only, a summary gauge for measures, value gauges for
// the rest.
type Gauge struct {
	Name        string      `json:"name"`
	Source      string      `json:"source,omitempty"`
	MeasureTime int64       `json:"measure_time"`
	Period      int         `json:"period"`
	Value       *float64    `json:"value,omitempty"`
	Count       *int64      `json:"count,omitempty"`
	Sum         *float64    `json:"sum,omitempty"`
	Min         *float64    `json:"min,omitempty"`
	Max         *float64    `json:"max,omitempty"`
	SumSquares  *float64    `json:"sum_squares,omitempty"`
	Attributes  *Attributes `json:"attributes,omitempty"`
}

// Attributes are the display properties Librato applies when it creates a
// metric.
type Attributes struct {
	DisplayUnitsLong  string `json:"display_units_long,omitempty"`
	SummarizeFunction string `json:"summarize_function,omitempty"`
}

// maxName is Librato's limit on names and sources.
const maxName = 255

// Sanitize maps s to Librato's name alphabet [A-Za-z0-9.:_-]: every run of
// other bytes becomes one '_'; the result is cut to 255 bytes.
func Sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && len(s) <= maxName {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	under := false
	for i := 0; i < len(s) && b.Len() < maxName; i++ {
		if c := s[i]; nameByte(c) {
			b.WriteByte(c)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	return b.String()
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == ':' || c == '_' || c == '-'
}

// SanitizeSource is Sanitize, and renames Librato's reserved source "all"
// (in any case) to "all_".
func SanitizeSource(s string) string {
	s = Sanitize(s)
	if strings.EqualFold(s, "all") {
		s += "_"
	}
	return s
}

// PercentileSuffix names a percentile gauge as l2met did: 50 → "median",
// 95 → "perc95", 99.9 → "perc99_9".
func PercentileSuffix(p float64) string {
	if p == 50 {
		return "median"
	}
	return "perc" + strings.ReplaceAll(strconv.FormatFloat(p, 'f', -1, 64), ".", "_")
}

// name joins a sanitized base and a suffix within 255 bytes.
func name(base, suffix string) string {
	if suffix == "" {
		return Sanitize(base)
	}
	s := Sanitize(base)
	if len(s)+1+len(suffix) > maxName {
		s = s[:maxName-1-len(suffix)]
	}
	return s + "." + suffix
}

// Librato refuses a request whose numbers have a base-10 exponent above 126
// and truncates those below -130 to 0.
const (
	maxMagnitude = 1e126
	minMagnitude = 1e-130
)

// fit reports whether v can be sent, and flushes tiny values to 0.
func fit(v float64) (float64, bool) {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || a >= maxMagnitude:
		return 0, false
	case a < minMagnitude:
		return 0, true
	}
	return v, true
}

// identity is what Librato tells gauges apart by: the name and source
// sanitized, case ignored.
func identity(name, source string) string {
	return strings.ToLower(name) + "\x00" + strings.ToLower(source)
}

// Summaries summarizes a minute's series as Librato will see them: series
// whose names and sources become one Librato name and source once
// sanitized, dimensions in the name (a/b, a|b and a_b; or names that differ
// only in case) are merged into one series, named as the first of them in
// key order. A series of another
// kind than that first cannot be merged: it is left out and counted in
// collided. m is not modified (merges happen on copies); the result
// depends on m alone.
func Summaries(m *rollup.Minute, percentiles []float64) (sums []rollup.Summary, collided int) {
	series := m.Sorted()
	merged := make([]*rollup.Series, 0, len(series))
	byID := make(map[string]int, len(series))
	copied := map[int]bool{}
	for _, s := range series {
		if rollup.Marker(s.Source, s.Dims, s.ProcessType) == rollup.RollupApp {
			continue // Librato sums sources itself; l2met had no such series
		}
		if app := rollup.App(s.Dims); app != "" {
			// Librato has no job: the app is the first part of the source,
			// as ?source-prefix=APP would make it.
			c := *s
			c.Source, c.Dims = app, rollup.LabelDims(s.Dims)
			if s.Source != "" {
				c.Source = app + "." + s.Source
			}
			s = &c
		}
		id := identity(Sanitize(SeriesName(s.Name, s.Dims)), SanitizeSource(s.Source))
		i, ok := byID[id]
		if !ok {
			byID[id] = len(merged)
			merged = append(merged, s)
			continue
		}
		if merged[i].Kind != s.Kind {
			collided++
			continue
		}
		if !copied[i] {
			merged[i], copied[i] = merged[i].Clone(), true
		}
		if err := merged[i].Merge(s); err != nil {
			collided++ // sketches of one mapping always merge: cannot happen
		}
	}
	sums = make([]rollup.Summary, len(merged))
	for i, s := range merged {
		sums[i] = s.Summarize(percentiles)
	}
	return sums, collided
}

// SeriesName is a series' Librato name. Librato has only names and sources,
// so a series' dimensions go into its name (README, "Per-route latency"):
// after the component "router" of a router series
// (router.route.GET.users._id.service for router.service with route
// "GET /users/:id"), at the end of any other name; each dimension is its
// key, then its value's words (route: the method and the path's segments,
// ':' and '*' as '_', the root as "_root").
func SeriesName(name, dims string) string {
	if dims == "" {
		return name
	}
	var comps []string
	rollup.EachDim(dims, func(k, v string) { comps = append(comps, k, dimWords(k, v)) })
	ins := strings.Join(comps, ".")
	at := -1
	switch {
	case strings.HasPrefix(name, "router."):
		at = len("router.")
	case strings.Contains(name, ".router."):
		at = strings.LastIndex(name, ".router.") + len(".router.")
	}
	if at < 0 {
		return name + "." + ins
	}
	return name[:at] + ins + "." + name[at:]
}

// dimWords turns a dimension's value into dot-separated name components:
// "GET /users/:id" → "GET.users._id", "GET /" → "GET._root".
func dimWords(key, v string) string {
	var b strings.Builder
	word := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '/', '.':
			if word {
				b.WriteByte('.')
				word = false
			}
		case ':', '*':
			b.WriteByte('_')
			word = true
		default:
			b.WriteByte(c)
			word = true
		}
	}
	out := strings.TrimSuffix(b.String(), ".")
	if key == "route" && strings.HasSuffix(v, " /") {
		out += "._root"
	}
	if out == "" {
		out = "_"
	}
	return out
}

// Gauges converts a closed minute's summaries to Librato gauges. Summaries
// with a number Librato cannot take are left out and counted in skipped; a
// gauge whose name and source an earlier gauge of the post already has (a
// count named like a measure's percentile gauge, say) is left out and
// counted in collided.
func Gauges(minute int64, sums []rollup.Summary, percentiles []float64) (gauges []Gauge, skipped, collided int) {
	all, skipped := allGauges(minute, sums, percentiles)
	seen := make(map[string]bool, len(all))
	for _, g := range all {
		id := identity(g.Name, g.Source)
		if seen[id] {
			collided++
			continue
		}
		seen[id] = true
		gauges = append(gauges, g)
	}
	return gauges, skipped, collided
}

// allGauges is Gauges before collisions are left out.
func allGauges(minute int64, sums []rollup.Summary, percentiles []float64) (gauges []Gauge, skipped int) {
	for i := range sums {
		s := &sums[i]
		base := SeriesName(s.Name, s.Dims)
		src := SanitizeSource(s.Source)
		var attrs *Attributes
		if s.Unit != "" {
			attrs = &Attributes{DisplayUnitsLong: s.Unit}
		}
		switch s.Kind {
		case parse.Measure:
			sum, ok1 := fit(s.Sum)
			lo, ok2 := fit(s.Min)
			hi, ok3 := fit(s.Max)
			if !ok1 || !ok2 || !ok3 {
				skipped++
				continue
			}
			count := s.Count
			g := Gauge{Name: name(base, ""), Source: src, MeasureTime: minute, Period: 60,
				Count: &count, Sum: &sum, Min: &lo, Max: &hi, Attributes: attrs}
			if sq, ok := fit(s.SumSq); ok { // optional: left out when it overflows
				g.SumSquares = &sq
			}
			gauges = append(gauges, g)
			for j, p := range percentiles {
				if j >= len(s.Percentiles) {
					break
				}
				v, ok := fit(s.Percentiles[j])
				if !ok {
					continue
				}
				gauges = append(gauges, Gauge{Name: name(base, PercentileSuffix(p)), Source: src,
					MeasureTime: minute, Period: 60, Value: &v, Attributes: attrs})
			}
		case parse.Count, parse.Sample, parse.Unique:
			v, ok := fit(s.Value)
			if !ok {
				skipped++
				continue
			}
			a := attrs
			if s.Kind == parse.Count {
				a = &Attributes{SummarizeFunction: "sum"}
				if attrs != nil {
					a.DisplayUnitsLong = attrs.DisplayUnitsLong
				}
			}
			gauges = append(gauges, Gauge{Name: name(base, ""), Source: src, MeasureTime: minute, Period: 60, Value: &v, Attributes: a})
		}
	}
	return gauges, skipped
}
