package status

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/axiomhq/hyperloglog"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/otlp"
	"github.com/drainmeter/drainmeter/outlet/remotewrite"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// The metrics explorer shows, per drain, what arrived under each metric
// name: its last hour minute by minute. It is fed by closed minutes only
// (never per line): Summarize turns one drain's closed (or, with Postgres,
// sealed) minute into one NameMinute per name, the busiest names first.

// MaxExplorerNames is how many names per drain and minute the explorer
// keeps: the busiest (most measurements) first. The others are counted as
// omitted, and the pages say so.
const MaxExplorerNames = 500

// MaxExplorerHour bounds the names of the hour one explorer page reads
// from Postgres (the busiest over the hour): names that change every
// minute cannot make a page read 30 000.
const MaxExplorerHour = 2000

// maxBreakdown bounds the sources and the routes kept per name and minute
// (the busiest first).
const maxBreakdown = 20

// Percentiles the explorer shows for measures.
var explorerPercentiles = []float64{50, 95, 99}

// NameMinute is what one metric name did in one closed minute, over its
// sources. Count counts each measurement once: the per-process-type
// rollups (web, of web.1 and web.2) and the per-route series, which hold
// measurements already counted under their dyno, are left out of it (they
// are in Sources and Routes).
type NameMinute struct {
	Minute  int64  `json:"minute"` // unix seconds
	Name    string `json:"name"`
	Kind    string `json:"kind"` // measure, count, sample, unique
	Unit    string `json:"unit,omitempty"`
	Sources int    `json:"sources"` // distinct sources, process-type rollups included
	Count   int64  `json:"count"`   // measurements
	// Value: a count's sum, a sample's last value, a unique's distinct
	// members; a measure's mean.
	Value float64 `json:"value"`
	// Measures: over every source, the sketches merged.
	Sum float64 `json:"sum,omitempty"`
	Min float64 `json:"min,omitempty"`
	Max float64 `json:"max,omitempty"`
	P50 float64 `json:"p50,omitempty"`
	P95 float64 `json:"p95,omitempty"`
	P99 float64 `json:"p99,omitempty"`
	// BySource is per source (the busiest first, at most 20), Routes per
	// route when routes are on.
	BySource []Point `json:"by_source,omitempty"`
	Routes   []Point `json:"routes,omitempty"`
}

// Point is one series' figures in a minute: a source's, or a route's.
type Point struct {
	Source      string  `json:"source,omitempty"`
	App         string  `json:"app,omitempty"` // the sending app, when the drain has one per app
	Route       string  `json:"route,omitempty"`
	ProcessType bool    `json:"process_type,omitempty"`
	Count       int64   `json:"count"`
	Value       float64 `json:"value"`
	P50         float64 `json:"p50,omitempty"`
	P95         float64 `json:"p95,omitempty"`
	P99         float64 `json:"p99,omitempty"`
}

// MinuteSummary is one drain's closed minute, summarized.
type MinuteSummary struct {
	Drain   string
	Minute  int64
	Names   []NameMinute // the busiest first
	Omitted int          // names left out (over MaxExplorerNames)
}

// KindName is the name of a kind as the explorer shows it.
func KindName(k parse.Kind) string {
	switch k {
	case parse.Measure:
		return "measure"
	case parse.Count:
		return "count"
	case parse.Sample:
		return "sample"
	case parse.Unique:
		return "unique"
	}
	return "other"
}

// Summarize summarizes a closed minute per name, keeping the maxNames
// busiest names (0: MaxExplorerNames). It reads the minute's series and
// never changes them. It costs one pass over the series and, for the names
// kept, a merge of their sketches: once per minute, off the ingest path.
func Summarize(m *rollup.Minute, maxNames int) MinuteSummary {
	if maxNames <= 0 {
		maxNames = MaxExplorerNames
	}
	out := MinuteSummary{Drain: m.Drain, Minute: m.Start}
	type group struct {
		name   string
		count  int64
		series []*rollup.Series
	}
	groups := map[string]*group{}
	for _, se := range m.Series {
		g := groups[se.Name]
		if g == nil {
			g = &group{name: se.Name}
			groups[se.Name] = g
		}
		g.series = append(g.series, se)
		if roleOf(se) == roleSource {
			g.count += se.Count
		}
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *group) int {
		return cmp.Or(cmp.Compare(b.count, a.count), strings.Compare(a.name, b.name))
	})
	if len(list) > maxNames {
		out.Omitted = len(list) - maxNames
		list = list[:maxNames]
	}
	out.Names = make([]NameMinute, 0, len(list))
	for _, g := range list {
		out.Names = append(out.Names, summarizeName(m.Start, g.name, g.series))
	}
	return out
}

// summarizeName merges the series of one name (of one kind: the store
// refuses a second kind in a minute).
func summarizeName(minute int64, name string, series []*rollup.Series) NameMinute {
	slices.SortFunc(series, func(a, b *rollup.Series) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Dims, b.Dims))
	})
	kind := series[0].Kind
	// Strings cloned: a summary outlives the minute, and must not pin its keys.
	nm := NameMinute{Minute: minute, Name: strings.Clone(name), Kind: KindName(kind), Min: math.Inf(1), Max: math.Inf(-1)}
	var sketch *ddsketch.DDSketch
	var hll *hyperloglog.Sketch
	lastTime := int64(math.MinInt64)
	sources := map[string]bool{}
	for _, se := range series {
		if se.Kind != kind {
			continue // cannot happen within a minute
		}
		if se.Unit != "" && se.Unit != nm.Unit {
			nm.Unit = strings.Clone(se.Unit)
		}
		role := roleOf(se)
		if role == roleRollup {
			continue // built from the others: each measurement is in them
		}
		p := point(se)
		if role == roleRoute {
			p.Route = routeOf(se.Dims)
			nm.Routes = append(nm.Routes, p)
			continue
		}
		sources[p.App+"\x00"+p.Source] = true
		nm.BySource = append(nm.BySource, p)
		if role == roleProcessType {
			continue // its measurements are its dynos'
		}
		nm.Count += se.Count
		switch kind {
		case parse.Measure:
			nm.Sum += se.Sum
			nm.Min = math.Min(nm.Min, se.Min)
			nm.Max = math.Max(nm.Max, se.Max)
			if se.Sketch != nil {
				if sketch == nil {
					sketch = se.Sketch.Copy()
				} else {
					_ = sketch.MergeWith(se.Sketch)
				}
			}
		case parse.Count:
			nm.Value += se.Sum
		case parse.Sample:
			if se.LastTime >= lastTime {
				nm.Value, lastTime = se.Last, se.LastTime
			}
		case parse.Unique:
			if se.HLL != nil {
				if hll == nil {
					hll = se.HLL.Clone()
				} else {
					_ = hll.Merge(se.HLL)
				}
			}
		}
	}
	nm.Sources = len(sources)
	switch kind {
	case parse.Measure:
		if nm.Count > 0 && sketch != nil {
			all := &rollup.Series{Kind: parse.Measure, Count: nm.Count, Sum: nm.Sum, Min: nm.Min, Max: nm.Max, Sketch: sketch}
			nm.P50, nm.P95, nm.P99 = all.Quantile(.50), all.Quantile(.95), all.Quantile(.99)
			nm.Value = nm.Sum / float64(nm.Count)
		}
	case parse.Unique:
		if hll != nil {
			nm.Value = float64(hll.Estimate())
		}
	}
	if math.IsInf(nm.Min, 0) {
		nm.Min, nm.Max = 0, 0
	}
	nm.BySource = busiest(nm.BySource)
	nm.Routes = busiest(nm.Routes)
	return nm
}

// role is how a series' measurements count in its name's figures.
type role int

const (
	roleSource      role = iota // a dyno's, an add-on's or the lines without a source: counted
	roleProcessType             // web, of web.1 and web.2: shown, not counted again
	roleRoute                   // a route's: shown apart, not counted again
	roleRollup                  // a rollup of the others (the whole app): left out
)

// roleOf reads the series' rollup marker (the drainmeter_rollup label).
func roleOf(se *rollup.Series) role {
	switch rollup.Marker(se.Source, se.Dims, se.ProcessType) {
	case rollup.RollupDyno, rollup.RollupNone:
		return roleSource
	case rollup.RollupProcessType:
		return roleProcessType
	case rollup.RollupRoute:
		return roleRoute
	}
	return roleRollup // the whole app's, or any rollup of the others
}

// pointLabel names a point's source: "web.1", "web.1 · shop" (its app,
// when the drain has one per app), "(no source)".
func pointLabel(p Point) string {
	l := cmp.Or(p.Source, "(no source)")
	if p.App != "" {
		l += " · " + p.App
	}
	return l
}

// point is one series' figures.
func point(se *rollup.Series) Point {
	s := se.Summarize(explorerPercentiles)
	app, _ := parse.DimValue(se.Dims, parse.AppDim)
	p := Point{Source: strings.Clone(se.Source), App: strings.Clone(app), ProcessType: se.ProcessType, Count: se.Count, Value: s.Value}
	if se.Kind == parse.Measure {
		p.P50, p.P95, p.P99 = s.Percentiles[0], s.Percentiles[1], s.Percentiles[2]
		if se.Count > 0 {
			p.Value = se.Sum / float64(se.Count)
		}
	}
	for _, f := range []*float64{&p.Value, &p.P50, &p.P95, &p.P99} {
		if math.IsNaN(*f) || math.IsInf(*f, 0) {
			*f = 0
		}
	}
	return p
}

// routeOf returns the route of a series' dimensions.
func routeOf(dims string) string {
	route, _ := parse.DimValue(dims, parse.RouteDim)
	return strings.Clone(route)
}

// busiest keeps the maxBreakdown points with the most measurements.
func busiest(ps []Point) []Point {
	slices.SortStableFunc(ps, func(a, b Point) int { return cmp.Compare(b.Count, a.Count) })
	if len(ps) > maxBreakdown {
		ps = ps[:maxBreakdown:maxBreakdown]
	}
	return ps
}

// PostedNames are the names a series of this kind and name goes out under
// to each outlet (the drain's prefix is already part of name).
type PostedNames struct {
	RemoteWrite []string `json:"remote_write"`
	OTLP        string   `json:"otlp"`
}

// Posted returns the names as remote write and OTLP spell them, from the
// outlets' own naming; native: the drain's remote-write outlet sends
// measures as native histograms.
func Posted(kind, name string, native bool) PostedNames {
	return PostedNames{RemoteWrite: remotewrite.SeriesNames(parseKind(kind), name, native), OTLP: otlp.MetricName(name)}
}

// nativeHistograms reports whether the drain's remote-write outlet sends
// measures as native histograms.
func nativeHistograms(d *Report) bool {
	return slices.ContainsFunc(d.Outlets, func(o Outlet) bool { return o.Kind == string(outlet.RemoteWrite) && o.Native })
}

func parseKind(s string) parse.Kind {
	switch s {
	case "measure":
		return parse.Measure
	case "count":
		return parse.Count
	case "unique":
		return parse.Unique
	}
	return parse.Sample
}
