package status

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/stats"
)

// The explorer's pages:
//
//	GET /drains/{id}/metrics               the names of the last hour (?q= filters, ?sort=name|volume)
//	GET /drains/{id}/metrics?name=NAME     one metric (&by=dyno adds the dynos)
//	GET /drains/{id}/metrics.json          the same as JSON (?name= one metric)

// maxFilter bounds the filter's length.
const maxFilter = 100

func (h *handler) metricsPage(w http.ResponseWriter, r *http.Request) { h.metrics(w, r, false) }
func (h *handler) metricsJSON(w http.ResponseWriter, r *http.Request) { h.metrics(w, r, true) }

func (h *handler) metrics(w http.ResponseWriter, r *http.Request, asJSON bool) {
	id := r.PathValue("id")
	if h.cfg.Explorer == nil {
		h.fail(w, http.StatusNotFound, asJSON, "")
		return
	}
	snap, ok := h.drainSnapshot(w, r, id, asJSON)
	if !ok {
		return
	}
	x, err := h.cfg.Explorer.Explore(r.Context(), id)
	if err == nil && x == nil {
		err = errNoSnapshot
	}
	if err != nil {
		h.log.Error("status: explorer", "drain", id, "err", err)
		h.fail(w, http.StatusServiceUnavailable, asJSON, "")
		return
	}
	q := r.URL.Query()
	filter := q.Get("q")
	if len(filter) > maxFilter {
		filter = filter[:maxFilter]
	}
	name, hasName := q.Get("name"), q.Has("name")
	sortBy := q.Get("sort")
	if sortBy != "volume" {
		sortBy = "name"
	}
	x.Names = filterNames(x.Names, filter)
	if sortBy == "volume" {
		slices.SortStableFunc(x.Names, func(a, b NameView) int { return cmp.Compare(b.Volume, a.Volume) })
	}
	d := &snap.Drains[0]
	if nativeHistograms(d) {
		for i := range x.Names {
			x.Names[i].Posted = Posted(x.Names[i].Kind, x.Names[i].Name, true)
		}
	}
	if hasName {
		i := slices.IndexFunc(x.Names, func(n NameView) bool { return n.Name == name })
		if i < 0 {
			h.fail(w, http.StatusNotFound, asJSON, "")
			return
		}
		byDyno := q.Get("by") == "dyno"
		hist, err := h.cfg.Explorer.History(r.Context(), id, name, byDyno)
		if err != nil {
			h.log.Error("status: explorer history", "drain", id, "err", err)
			h.fail(w, http.StatusServiceUnavailable, asJSON, "")
			return
		}
		n := &x.Names[i]
		for _, sp := range hist {
			for j := range sp {
				sp[j].Minute = n.History[j].Minute // the same 60 minutes
			}
		}
		if asJSON {
			h.writeJSON(w, http.StatusOK, struct {
				NameView
				BySource map[string][]Spark `json:"by_source_history"` // per process type (and dyno, with by=dyno)
			}{*n, hist})
			return
		}
		h.render(w, http.StatusOK, "metric.html", h.metricView(d, x, n, byDyno, hist))
		return
	}
	if asJSON {
		h.writeJSON(w, http.StatusOK, x)
		return
	}
	h.render(w, http.StatusOK, "metrics.html", h.metricsView(d, x, filter, sortBy))
}

// filterNames keeps the names that contain filter, ignoring case.
func filterNames(ns []NameView, filter string) []NameView {
	if filter == "" {
		return ns
	}
	f := strings.ToLower(filter)
	return slices.DeleteFunc(ns, func(n NameView) bool { return !strings.Contains(strings.ToLower(n.Name), f) })
}

type metricsView struct {
	Title      string
	CSS        template.CSS
	Open       bool
	Version    string
	DrainID    string
	DrainName  string
	Back       string // the drain's page
	Store      string
	LastMinute timeView
	Filter     string
	Sort       string
	SortName   string // links
	SortVolume string
	JSONPath   string
	Shown      int
	Names      []nameRowView
	Omitted    int
	MemoryFull int
	Hidden     int
	Refused    []refusedPairView
	Overflowed []overflowView
}

type nameRowView struct {
	Name        string
	NameHTML    template.HTML // Name, breakable after its dots
	Link        string
	Kind        string
	Unit        string
	RemoteWrite string
	OTLP        string
	Sources     int
	Volume      string
	VolumeN     int64
	Figures     []figureView
	Current     bool // in the drain's last minute
	LastAt      string
	Spark       sparkView
	Refused     bool
}

type figureView struct {
	Key   string // count, sum, p50 … (data-figure)
	Label string
	Value string
}

type sparkView struct {
	Points string // a polyline's points
	Title  string
	Empty  bool
}

type refusedPairView struct {
	At     timeView
	Token  string
	Reason string
	Why    string
}

type overflowView struct {
	At   timeView
	Name string
	Link string
}

func (h *handler) metricsView(d *Report, x *Explore, filter, sortBy string) metricsView {
	base := "metrics"
	link := func(params ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(params); i += 2 {
			if params[i+1] != "" {
				v.Set(params[i], params[i+1])
			}
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	v := metricsView{
		Title: "metrics · " + cmp.Or(d.Name, d.ID) + " · drainmeter", CSS: h.css, Open: h.open(), Version: h.cfg.Version,
		DrainID: d.ID, DrainName: cmp.Or(d.Name, d.ID), Back: "../" + d.ID, Store: x.Store,
		LastMinute: formatTime(x.Now, x.LastMinute), Filter: filter, Sort: sortBy,
		SortName: link("q", filter), SortVolume: link("q", filter, "sort", "volume"),
		JSONPath: "metrics.json", Omitted: x.Omitted, MemoryFull: x.MemoryFull, Hidden: x.Hidden, Shown: len(x.Names),
	}
	var last int64
	if x.LastMinute != nil {
		last = x.LastMinute.Unix()
	}
	for i := range x.Names {
		n := &x.Names[i]
		row := nameRowView{Name: n.Name, Link: link("name", n.Name), Kind: n.Kind, Unit: n.Unit,
			RemoteWrite: strings.Join(n.Posted.RemoteWrite, ", "), OTLP: n.Posted.OTLP, Sources: n.Sources,
			Volume: count(uint64(max(n.Volume, 0))), VolumeN: n.Volume, Current: n.Last.Minute == last,
			Spark: spark(n), Refused: len(n.Refused) > 0}
		row.NameHTML = breakable(row.Name)
		if row.Current {
			row.Figures = figures(&n.Last)
		} else {
			row.LastAt = n.LastAt.Format("15:04 UTC")
		}
		v.Names = append(v.Names, row)
	}
	for _, rf := range x.Refused {
		v.Refused = append(v.Refused, refusedPairView{At: formatTime(x.Now, &rf.At), Token: rf.Token, Reason: rf.Reason, Why: reasonText(rf.Reason)})
	}
	for _, o := range x.Overflowed {
		v.Overflowed = append(v.Overflowed, overflowView{At: formatTime(x.Now, &o.At), Name: o.Name})
	}
	return v
}

// breakable escapes s for HTML with a line-break opportunity (<wbr>)
// after each dot, underscore and slash, so that long metric names wrap
// between their words rather than anywhere.
func breakable(s string) template.HTML {
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == '_' || c == '/' {
			b.WriteString(template.HTMLEscapeString(s[start : i+1]))
			b.WriteString("<wbr>")
			start = i + 1
		}
	}
	b.WriteString(template.HTMLEscapeString(s[start:]))
	return template.HTML(b.String()) // every part escaped
}

// reasonText says what a refused pair's reason means.
func reasonText(r string) string {
	return cmp.Or(stats.ReasonText(stats.PairRejects, r), strings.ReplaceAll(r, "_", " "))
}

// figures are a minute's figures, by kind.
func figures(nm *NameMinute) []figureView {
	f := func(key, label string, v float64) figureView {
		return figureView{Key: key, Label: label, Value: num(v)}
	}
	switch nm.Kind {
	case "measure":
		return []figureView{
			{Key: "count", Label: "count", Value: count(uint64(max(nm.Count, 0)))},
			f("sum", "sum", nm.Sum), f("p50", "p50", nm.P50), f("p95", "p95", nm.P95), f("p99", "p99", nm.P99),
		}
	case "count":
		return []figureView{f("value", "total", nm.Value)}
	case "sample":
		return []figureView{f("value", "last", nm.Value)}
	case "unique":
		return []figureView{f("value", "distinct", nm.Value)}
	}
	return nil
}

// num formats a figure: whole numbers with thousands separators, others
// with 4 significant digits or more as needed.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		if v < 0 {
			return "-" + count(uint64(-v))
		}
		return count(uint64(v))
	}
	if a := math.Abs(v); a >= 1000 && a < 1e15 { // 235,902.85
		whole, frac, _ := strings.Cut(strconv.FormatFloat(a, 'f', 2, 64), ".")
		n, _ := strconv.ParseUint(whole, 10, 64)
		out := count(n) + "." + frac
		if v < 0 {
			out = "-" + out
		}
		return out
	}
	return strconv.FormatFloat(v, 'g', max(4, int(math.Log10(math.Abs(v)))+3), 64)
}

// sparkline dimensions.
const (
	sparkW = 120
	sparkH = 24
)

// spark draws a name's volume per minute.
func spark(n *NameView) sparkView {
	var peak int64
	for _, s := range n.History {
		peak = max(peak, s.Count)
	}
	v := sparkView{Empty: peak == 0,
		Title: fmt.Sprintf("%s measurements over the last 60 minutes, at most %s a minute", count(uint64(max(n.Volume, 0))), count(uint64(peak)))}
	var b strings.Builder
	for i, s := range n.History {
		y := float64(sparkH - 1)
		if peak > 0 {
			y = sparkH - 1 - float64(s.Count)/float64(peak)*(sparkH-2)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fmtFloat(float64(i) * sparkW / 59))
		b.WriteByte(',')
		b.WriteString(fmtFloat(y))
	}
	v.Points = b.String()
	return v
}

// The metric page.

type metricView struct {
	Title       string
	CSS         template.CSS
	Open        bool
	Version     string
	DrainID     string
	DrainName   string
	Back        string
	List        string
	Name        string
	Kind        string
	Unit        string
	Posted      PostedNames
	RWNames     string
	LastAt      string
	Figures     []figureView
	Chart       lineChartView
	SourceChart lineChartView // one line per source
	ByDyno      bool
	DynoLink    string
	Sources     []pointView
	Routes      []pointView
	Volume      string
	Refused     []reasonView
	Overflowed  bool
	Late        string // its late measurements
	LateWarn    bool
	Happened    []counterView // drain-wide
	JSONPath    string
}

type pointView struct {
	Label   string
	Kind    string // dyno, process type, none
	Count   string
	Figures []figureView
}

type lineChartView struct {
	Title   string
	Width   int
	Height  int
	Lines   []lineView
	Bars    []barView
	Max     string // the top of the value scale
	BarMax  string
	Measure bool
	What    string // what the lines show (the chart by source)
}

type lineView struct {
	Key   string // p50, p95, p99, value
	Label string
	Path  string // an SVG path: broken where the name is absent, a dot for a lone minute
}

const (
	lineChartW = 600
	lineChartH = 160
	barsH      = 40 // the count bars, under the lines
)

func (h *handler) metricView(d *Report, x *Explore, n *NameView, byDyno bool, hist map[string][]Spark) metricView {
	q := url.Values{"name": {n.Name}}
	v := metricView{
		Title: n.Name + " · " + cmp.Or(d.Name, d.ID) + " · drainmeter", CSS: h.css, Open: h.open(), Version: h.cfg.Version,
		DrainID: d.ID, DrainName: cmp.Or(d.Name, d.ID), Back: "../" + d.ID, List: "metrics",
		Name: n.Name, Kind: n.Kind, Unit: n.Unit, Posted: n.Posted, RWNames: strings.Join(n.Posted.RemoteWrite, ", "),
		LastAt: n.LastAt.Format("2006-01-02 15:04 UTC"), Figures: figures(&n.Last), ByDyno: byDyno,
		Chart: lineChart(n), SourceChart: sourceChart(n, hist), Volume: count(uint64(max(n.Volume, 0))), JSONPath: "metrics.json?" + q.Encode(),
	}
	if !byDyno {
		q.Set("by", "dyno")
	}
	v.DynoLink = "metrics?" + q.Encode()
	for _, p := range n.Last.BySource {
		kind := "dyno"
		switch {
		case p.ProcessType:
			kind = "process type"
		case p.Source == "":
			kind = "none"
		}
		if kind == "dyno" && !byDyno && hasProcessTypes(n.Last.BySource) {
			continue
		}
		v.Sources = append(v.Sources, pointView{Label: pointLabel(p), Kind: kind, Count: count(uint64(max(p.Count, 0))), Figures: pointFigures(n.Kind, p)})
	}
	for _, p := range n.Last.Routes {
		v.Routes = append(v.Routes, pointView{Label: p.Route, Kind: "route", Count: count(uint64(max(p.Count, 0))), Figures: pointFigures(n.Kind, p)})
	}
	for reason, c := range n.Refused {
		v.Refused = append(v.Refused, reasonView{Reason: reason + " (" + reasonText(reason) + ")", Count: count(c)})
	}
	slices.SortFunc(v.Refused, func(a, b reasonView) int { return strings.Compare(a.Reason, b.Reason) })
	v.Overflowed = slices.ContainsFunc(x.Overflowed, func(o Overflowed) bool { return o.Name == n.Name })
	v.Late = count(n.Late)
	v.LateWarn = n.Late > 0
	c := func(key, label string, n uint64) {
		v.Happened = append(v.Happened, counterView{Key: key, Label: label, Value: count(n), Warn: n > 0 && key != "late_shifted"})
	}
	c("late", "late (after its minute closed)", d.Late)
	c("late_shifted", "late, posted in a later minute", d.LateShifted)
	c("overflow", "overflow (series caps)", d.Overflow)
	c("kind_conflict", "kind conflict", d.KindConflict)
	return v
}

func hasProcessTypes(ps []Point) bool {
	return slices.ContainsFunc(ps, func(p Point) bool { return p.ProcessType })
}

func pointFigures(kind string, p Point) []figureView {
	nm := NameMinute{Kind: kind, Count: p.Count, Value: p.Value, P50: p.P50, P95: p.P95, P99: p.P99, Sum: p.Value * float64(p.Count)}
	fs := figures(&nm)
	if kind == "measure" {
		fs = slices.DeleteFunc(fs, func(f figureView) bool { return f.Key == "count" || f.Key == "sum" })
	}
	return fs
}

// lineChart draws a name's last 60 minutes: measures' p50, p95 and p99
// (others: their value) as lines over the count as bars.
func lineChart(n *NameView) lineChartView {
	v := lineChartView{Width: lineChartW, Height: lineChartH + barsH + 8, Measure: n.Kind == "measure"}
	keys := []struct {
		key, label string
		get        func(Spark) float64
	}{{"value", valueLabel(n.Kind), func(s Spark) float64 { return s.Value }}}
	if v.Measure {
		keys = keys[:0]
		keys = append(keys,
			struct {
				key, label string
				get        func(Spark) float64
			}{"p99", "p99", func(s Spark) float64 { return s.P99 }},
			struct {
				key, label string
				get        func(Spark) float64
			}{"p95", "p95", func(s Spark) float64 { return s.P95 }},
			struct {
				key, label string
				get        func(Spark) float64
			}{"p50", "p50", func(s Spark) float64 { return s.P50 }})
	}
	lo, hi := 0.0, 0.0
	var peak int64
	for _, s := range n.History {
		peak = max(peak, s.Count)
		if s.Count == 0 {
			continue
		}
		for _, k := range keys {
			hi = max(hi, k.get(s))
			lo = min(lo, k.get(s))
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	v.Max, v.BarMax = num(hi), count(uint64(peak))
	step := float64(lineChartW) / 60
	for _, k := range keys {
		v.Lines = append(v.Lines, lineView{Key: k.key, Label: k.label, Path: linePath(n.History, k.get, lo, hi, step)})
	}
	for i, s := range n.History {
		bh := 0.0
		if peak > 0 && s.Count > 0 {
			bh = max(float64(s.Count)/float64(peak)*barsH, 1)
		}
		label := time.Unix(s.Minute, 0).UTC().Format("15:04") + " UTC: " + count(uint64(max(s.Count, 0))) + " measurements"
		if s.Count > 0 {
			if v.Measure {
				label += fmt.Sprintf(", p50 %s, p95 %s, p99 %s", num(s.P50), num(s.P95), num(s.P99))
			} else {
				label += ", " + valueLabel(n.Kind) + " " + num(s.Value)
			}
		}
		v.Bars = append(v.Bars, barView{X: fmtFloat(float64(i)*step + 1), Y: fmtFloat(float64(v.Height) - bh), W: fmtFloat(step - 2),
			H: fmtFloat(bh), Lines: uint64(max(s.Count, 0)), Label: label})
	}
	v.Title = fmt.Sprintf("%s over the last 60 minutes: lines for %s (top of the scale %s), bars for the measurements a minute (at most %s).",
		n.Name, strings.Join(lineLabels(v.Lines), ", "), v.Max, v.BarMax)
	return v
}

// maxSourceLines bounds the lines of the chart by source.
const maxSourceLines = 8

// sourceChart draws one line per source (the busiest maxSourceLines):
// a measure's p95, another kind's value.
func sourceChart(n *NameView, hist map[string][]Spark) lineChartView {
	v := lineChartView{Width: lineChartW, Height: lineChartH, Measure: n.Kind == "measure"}
	type src struct {
		name  string
		vol   int64
		spark []Spark
	}
	var srcs []src
	for name, sp := range hist {
		s := src{name: name, spark: sp}
		for _, p := range sp {
			s.vol += p.Count
		}
		srcs = append(srcs, s)
	}
	slices.SortFunc(srcs, func(a, b src) int { return cmp.Or(cmp.Compare(b.vol, a.vol), strings.Compare(a.name, b.name)) })
	if len(srcs) > maxSourceLines {
		srcs = srcs[:maxSourceLines]
	}
	get := func(s Spark) float64 { return s.Value }
	what := valueLabel(n.Kind)
	if v.Measure {
		get, what = func(s Spark) float64 { return s.P95 }, "p95"
	}
	lo, hi := 0.0, 0.0
	for _, s := range srcs {
		for _, p := range s.spark {
			if p.Count > 0 {
				lo, hi = min(lo, get(p)), max(hi, get(p))
			}
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	v.Max = num(hi)
	step := float64(lineChartW) / 60
	for i, s := range srcs {
		v.Lines = append(v.Lines, lineView{Key: "src-" + strconv.Itoa(i), Label: s.name, Path: linePath(s.spark, get, lo, hi, step)})
	}
	v.Title = fmt.Sprintf("%s of %s per source over the last 60 minutes: %s (top of the scale %s).", what, n.Name,
		strings.Join(lineLabels(v.Lines), ", "), v.Max)
	v.What = what
	return v
}

// linePath is an SVG path through the minutes of hist that have data,
// scaled from lo..hi to the chart's height, one step wide each: absent
// minutes break the line, and a lone point is drawn as a short dash.
func linePath(hist []Spark, get func(Spark) float64, lo, hi, step float64) string {
	var b strings.Builder
	run := 0 // points in the current segment
	for i, s := range hist {
		if s.Count == 0 { // absent: the line breaks
			if run == 1 {
				b.WriteString(" h4")
			}
			run = 0
			continue
		}
		y := 4 + (1-(get(s)-lo)/(hi-lo))*(lineChartH-8)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if run == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte('L')
		}
		b.WriteString(fmtFloat(float64(i)*step + step/2))
		b.WriteByte(' ')
		b.WriteString(fmtFloat(y))
		run++
	}
	if run == 1 {
		b.WriteString(" h4")
	}
	return b.String()
}

func lineLabels(ls []lineView) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Label
	}
	return out
}

func valueLabel(kind string) string {
	switch kind {
	case "count":
		return "total"
	case "sample":
		return "last"
	case "unique":
		return "distinct"
	}
	return "value"
}
