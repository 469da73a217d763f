// Package loadgen makes realistic logplex batches (router lines, runtime
// metrics, app lines) and remembers exactly what they should add up to, so
// that a test or the drainbench tool can compare it with what arrived.
package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"time"
)

// Key names one series.
type Key struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Minute int64  `json:"minute"`
}

// Totals is what the generated frames must produce: count series' sums and
// every value of measure series (for exact percentiles). Per-process-type
// series ("web") are included. With API paths (SetPaths), the route series
// too, apart: they have no source, and a route.
type Totals struct {
	Frames        int
	Counts        map[Key]float64
	Measures      map[Key][]float64
	RouteCounts   map[RouteKey]float64
	RouteMeasures map[RouteKey][]float64
	// Measurements is, per minute (unix seconds of its start), how many
	// measurements drainmeter counts in its rollups: one per series a value
	// goes to, of every kind (samples and uniques too), the per-process-type
	// rollup included. It is the unit of a partial minute's measurements
	// (and of the shifts table).
	Measurements map[int64]int
}

// NewTotals returns empty totals.
func NewTotals() *Totals {
	return &Totals{Counts: map[Key]float64{}, Measures: map[Key][]float64{},
		RouteCounts: map[RouteKey]float64{}, RouteMeasures: map[RouteKey][]float64{}, Measurements: map[int64]int{}}
}

// Merge adds o to t.
func (t *Totals) Merge(o *Totals) {
	t.Frames += o.Frames
	for k, v := range o.Counts {
		t.Counts[k] += v
	}
	for k, v := range o.Measures {
		t.Measures[k] = append(t.Measures[k], v...)
	}
	for k, v := range o.RouteCounts {
		t.RouteCounts[k] += v
	}
	for k, v := range o.RouteMeasures {
		t.RouteMeasures[k] = append(t.RouteMeasures[k], v...)
	}
	for m, n := range o.Measurements {
		t.Measurements[m] += n
	}
}

// AllMeasurements is the sum of Measurements over every minute.
func (t *Totals) AllMeasurements() int {
	n := 0
	for _, v := range t.Measurements {
		n += v
	}
	return n
}

// Series is one series of Totals in its JSON form.
type Series struct {
	Key
	Route string  `json:"route,omitempty"` // route series (no source)
	Kind  string  `json:"kind"`
	Count int     `json:"count,omitempty"`
	Sum   float64 `json:"sum"`
}

// WriteFile writes the totals as JSON: frames and one entry per series.
func (t *Totals) WriteFile(path string) error {
	out := struct {
		Frames int      `json:"frames"`
		Series []Series `json:"series"`
	}{Frames: t.Frames}
	for k, v := range t.Counts {
		out.Series = append(out.Series, Series{Key: k, Kind: "count", Sum: v})
	}
	for k, vs := range t.Measures {
		s := Series{Key: k, Kind: "measure", Count: len(vs)}
		for _, v := range vs {
			s.Sum += v
		}
		out.Series = append(out.Series, s)
	}
	for k, v := range t.RouteCounts {
		out.Series = append(out.Series, Series{Key: Key{Name: k.Name, Minute: k.Minute}, Route: k.Route, Kind: "count", Sum: v})
	}
	for k, vs := range t.RouteMeasures {
		s := Series{Key: Key{Name: k.Name, Minute: k.Minute}, Route: k.Route, Kind: "measure", Count: len(vs)}
		for _, v := range vs {
			s.Sum += v
		}
		out.Series = append(out.Series, s)
	}
	sort.Slice(out.Series, func(i, j int) bool {
		a, b := out.Series[i], out.Series[j]
		if a.Minute != b.Minute {
			return a.Minute < b.Minute
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Route < b.Route
	})
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Generator makes batches. It is not safe for concurrent use: give each
// goroutine its own.
type Generator struct {
	rng    *rand.Rand
	dynos  int
	totals *Totals
	buf    []byte
	frame  []byte
	seq    int
	paths  PathMode
	mix    [3]int // the shares of router, runtime and app lines, out of 10
}

// New returns a generator for an app with the given number of web dynos.
func New(seed uint64, dynos int) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), dynos: max(1, dynos), totals: NewTotals(), mix: [3]int{5, 2, 3}}
}

// Totals returns what the batches so far must add up to.
func (g *Generator) Totals() *Totals { return g.totals }

// Batch returns a drain body of n frames stamped within the second at at.
// The slice is reused by the next call.
func (g *Generator) Batch(n int, at time.Time) []byte {
	g.buf = g.buf[:0]
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Microsecond)
		g.frame = g.frame[:0]
		switch r := g.rng.IntN(10); {
		case r < g.mix[0]:
			g.router(ts)
		case r < g.mix[0]+g.mix[1]:
			g.runtime(ts)
		default:
			g.app(ts)
		}
		g.buf = strconv.AppendInt(g.buf, int64(len(g.frame)), 10)
		g.buf = append(g.buf, ' ')
		g.buf = append(g.buf, g.frame...)
		g.totals.Frames++
	}
	return g.buf
}

func (g *Generator) header(pri int, ts time.Time, app, proc string) {
	g.frame = fmt.Appendf(g.frame, "<%d>1 %s host %s %s - ", pri, ts.UTC().Format("2006-01-02T15:04:05.000000+00:00"), app, proc)
}

func (g *Generator) dyno() (string, int) {
	n := 1 + g.rng.IntN(g.dynos)
	return "web." + strconv.Itoa(n), n
}

func (g *Generator) router(ts time.Time) {
	dyno, _ := g.dyno()
	connect := g.rng.IntN(5)
	service := int(math.Round(math.Exp(3 + 1.2*g.rng.NormFloat64())))
	status := []int{200, 200, 200, 200, 201, 204, 302, 404, 500, 503}[g.rng.IntN(10)]
	nbytes := 100 + g.rng.IntN(50000)
	g.seq++
	method, path := "GET", fmt.Sprintf("/items/%d", g.seq)
	switch g.paths {
	case PathAPI:
		r := &apiRoutes[g.rng.IntN(len(apiRoutes))]
		method, path = r.method, r.path(g.rng)
		service = max(0, int(math.Round(math.Exp(math.Log(r.median)+0.8*g.rng.NormFloat64()))))
		m := minute(ts)
		g.totals.RouteMeasures[RouteKey{"router.service", r.route, m}] = append(g.totals.RouteMeasures[RouteKey{"router.service", r.route, m}], float64(service))
		g.totals.RouteCounts[RouteKey{"router.requests", r.route, m}]++
		g.totals.RouteCounts[RouteKey{fmt.Sprintf("router.status.%dxx", status/100), r.route, m}]++
	case PathScan:
		path = fmt.Sprintf("/%s/%s-%x.php", scanDirs[g.seq%len(scanDirs)], scanWords[g.rng.IntN(len(scanWords))], g.rng.Uint64())
	}
	g.header(158, ts, "heroku", "router")
	g.frame = fmt.Appendf(g.frame, `at=info method=%s path="%s" host=myapp.herokuapp.com request_id=%08x-6a83-4c12-8269-97c8e32cdb22 fwd="203.0.113.%d" dyno=%s connect=%dms service=%dms status=%d bytes=%d protocol=https`+"\n",
		method, path, g.rng.Uint32(), g.rng.IntN(255), dyno, connect, service, status, nbytes)
	g.measure("router.connect", dyno, ts, float64(connect))
	g.measure("router.service", dyno, ts, float64(service))
	g.measure("router.bytes", dyno, ts, float64(nbytes))
	g.count("router.requests", dyno, ts, 1)
	g.count(fmt.Sprintf("router.status.%dxx", status/100), dyno, ts, 1)
}

func (g *Generator) runtime(ts time.Time) {
	dyno, _ := g.dyno()
	g.header(45, ts, "heroku", dyno)
	g.frame = fmt.Appendf(g.frame, "source=%s dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 sample#memory_total=%.2fMB sample#memory_rss=%.2fMB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages\n",
		dyno, 200+g.rng.Float64()*300, 180+g.rng.Float64()*300)
	g.totals.Measurements[minute(ts)] += 6 // the six samples, of the dyno only
}

func (g *Generator) app(ts time.Time) {
	dyno, _ := g.dyno()
	lat := strconv.FormatFloat(math.Exp(1+g.rng.NormFloat64()), 'f', 3, 64)
	jobs := 1 + g.rng.IntN(3)
	g.header(190, ts, "app", dyno)
	g.frame = fmt.Appendf(g.frame, "at=info msg=\"request done\" measure#app.latency=%sms count#app.jobs=%d unique#app.users=u%d\n", lat, jobs, g.rng.IntN(500))
	v, _ := strconv.ParseFloat(lat, 64)
	g.measure("app.latency", dyno, ts, v)
	g.count("app.jobs", dyno, ts, float64(jobs))
	g.totals.Measurements[minute(ts)] += 2 // the unique, of the dyno and its process type
}

func minute(ts time.Time) int64 { return ts.Unix() - ts.Unix()%60 }

// measure records a measure value for the dyno and its process type "web".
func (g *Generator) measure(name, dyno string, ts time.Time, v float64) {
	m := minute(ts)
	for _, src := range []string{dyno, "web"} {
		k := Key{name, src, m}
		g.totals.Measures[k] = append(g.totals.Measures[k], v)
	}
	g.totals.Measurements[m] += 2
}

func (g *Generator) count(name, dyno string, ts time.Time, v float64) {
	m := minute(ts)
	g.totals.Counts[Key{name, dyno, m}] += v
	g.totals.Counts[Key{name, "web", m}] += v
	g.totals.Measurements[m] += 2
}
