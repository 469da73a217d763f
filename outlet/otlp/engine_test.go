package otlp

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// These tests run minutes through the real core (outlet.Engine, Sender,
// Client) to the fake receiver, as drainmeter runs them.

type harness struct {
	fake  *fakeotlp.Server
	eng   *outlet.Engine
	dests *outlettest.Dests
	reg   *stats.Registry
	logs  *logtest.Buffer
}

func engineConfig() outlet.Config {
	c := outlet.DefaultConfig
	c.UserAgent = "drainmeter/test"
	c.MinBackoff, c.MaxBackoff, c.Timeout, c.AuthProbe = 20*time.Millisecond, 100*time.Millisecond, 5*time.Second, time.Hour
	c.SplitFloor = 64 // TestTooLargeIsSplit's receiver takes no more than one series
	return c
}

func newHarness(t *testing.T, p fakeotlp.Personality, temp outlet.Temporality) *harness {
	t.Helper()
	fake := fakeotlp.New(p)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := engineConfig()
	h := &harness{fake: fake, reg: stats.NewRegistry(), logs: &logtest.Buffer{},
		dests: outlettest.NewDests(&outlet.Destination{ID: "d1", Name: "app-one", Outlets: []outlet.Outlet{{
			Kind: outlet.OTLP, URL: srv.URL + "/v1/metrics", Temporality: temp,
			Headers: []outlet.Header{{Name: "Authorization", Value: "Bearer x"}},
		}}})}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	client := outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)
	backends := map[outlet.Kind]outlet.Backend{outlet.OTLP: New(client, Config{Version: "test"})}
	h.eng = outlet.NewEngine(outlet.NewSender(cfg, backends, h.reg, log, time.Now), h.dests, h.reg, log, time.Now)
	h.eng.Start()
	t.Cleanup(func() { _ = h.eng.Shutdown(t.Context()) })
	return h
}

func (h *harness) state() outlet.State {
	for _, st := range h.eng.Lanes() {
		return st.State
	}
	return ""
}

func (h *harness) stat(c stats.Counter) uint64 { return h.reg.Drain("d1").Get(c) }

// ref names a series as the receiver sees it.
type ref struct{ name, source, rollup string }

func (r ref) attrs() map[string]string {
	a := map[string]string{"drainmeter.rollup": r.rollup}
	if r.source != "" {
		a["source"] = r.source
	}
	return a
}

// workload is a few minutes of random measurements, and what they must
// add up to.
type workload struct {
	start   time.Time
	minutes []*rollup.Minute
	kinds   map[ref]parse.Kind
	values  map[ref][][]float64 // per minute, in order (nil: absent)
	points  int                 // one per series and minute, in either temporality (no measure is negative)
}

func (w *workload) time(i int) uint64 {
	return uint64(w.start.Add(time.Duration(i+1) * time.Minute).UnixNano())
}

// newWorkload makes n minutes ending a minute ago. Series: counts and
// measures on two dynos each (with their process-type rollups), a sample
// and a source-less count; each dyno series is absent from a minute with
// probability 1/4.
func newWorkload(t *testing.T, seed uint64, n int) *workload {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := &workload{start: time.Now().Truncate(time.Minute).Add(-time.Duration(n+1) * time.Minute),
		kinds: map[ref]parse.Kind{}, values: map[ref][][]float64{}}
	type spec struct {
		kind         parse.Kind
		name, source string
		typ          string
	}
	specs := []spec{
		{parse.Count, "jobs.done", "worker.1", "worker"}, {parse.Count, "jobs.done", "worker.2", "worker"},
		{parse.Measure, "db.latency", "web.1", "web"}, {parse.Measure, "db.latency", "web.2", "web"},
		{parse.Sample, "memory_rss", "web.1", ""}, {parse.Count, "deploys", "", ""},
	}
	add := func(r ref, k parse.Kind, i int, v float64) {
		w.kinds[r] = k
		vs := w.values[r]
		for len(vs) < n {
			vs = append(vs, nil)
		}
		vs[i] = append(vs[i], v)
		w.values[r] = vs
	}
	for i := range n {
		at := w.start.Add(time.Duration(i) * time.Minute)
		var ms []parse.Measurement
		for _, sp := range specs {
			if sp.source != "" && rng.IntN(4) == 0 && i > 0 {
				continue
			}
			for j := range 1 + rng.IntN(20) {
				var v float64
				switch sp.kind {
				case parse.Count:
					v = float64(1 + rng.IntN(50))
				case parse.Measure:
					v = math.Exp(2 + rng.NormFloat64())
				case parse.Sample:
					v = float64(rng.IntN(1000)) / 4
				}
				m := meas(sp.kind, sp.name, sp.source, v, at.Add(time.Duration(j)*time.Second))
				marker := "none"
				if sp.source != "" {
					marker = "dyno"
				}
				add(ref{sp.name, sp.source, marker}, sp.kind, i, v)
				if sp.typ != "" {
					m.TypeSource = []byte(sp.typ)
					add(ref{sp.name, sp.typ, "process_type"}, sp.kind, i, v)
				}
				ms = append(ms, m)
			}
		}
		w.minutes = append(w.minutes, minuteOf(t, "d1", at, ms))
		w.points += len(w.minutes[i].Series)
	}
	return w
}

// gaugePoints counts the points that are gauges in either temporality.
func (w *workload) gaugePoints() int {
	n := 0
	for r, vs := range w.values {
		if w.kinds[r] == parse.Sample {
			for _, v := range vs {
				if v != nil {
					n++
				}
			}
		}
	}
	return n
}

func sum(vs []float64) float64 {
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// checkDelta checks that every minute arrived exactly, in delta.
func (w *workload) checkDelta(t *testing.T, f *fakeotlp.Server) {
	t.Helper()
	for r, mins := range w.values {
		switch w.kinds[r] {
		case parse.Count:
			want := 0.0
			for _, vs := range mins {
				want += sum(vs)
			}
			if got := f.DeltaSum(r.name, r.attrs()); got != want {
				t.Errorf("%v: delta sum %v, want %v", r, got, want)
			}
		case parse.Measure:
			hs := f.ExpHistograms(r.name, r.attrs())
			for i, vs := range mins {
				p := hs[w.time(i)]
				if vs == nil {
					if p != nil {
						t.Errorf("%v minute %d: a point for an absent minute", r, i)
					}
					continue
				}
				if p == nil {
					t.Errorf("%v minute %d: no histogram", r, i)
					continue
				}
				if p.Count != uint64(len(vs)) || *p.Min != slices.Min(vs) || *p.Max != slices.Max(vs) || !near(*p.Sum, sum(vs)) {
					t.Errorf("%v minute %d: count %d min %v max %v sum %v; want %d %v %v %v", r, i,
						p.Count, *p.Min, *p.Max, *p.Sum, len(vs), slices.Min(vs), slices.Max(vs), sum(vs))
				}
			}
		case parse.Sample:
			w.checkGauges(t, f, r)
		}
	}
}

// checkCumulative checks that running totals equal the sum of all minutes
// and each minute's Summary its quantiles.
func (w *workload) checkCumulative(t *testing.T, f *fakeotlp.Server) {
	t.Helper()
	for r, mins := range w.values {
		var all []float64
		for _, vs := range mins {
			all = append(all, vs...)
		}
		switch w.kinds[r] {
		case parse.Count:
			got, ok := f.Cumulative(r.name, r.attrs())
			if !ok || got != sum(all) {
				t.Errorf("%v: running total %v (%v), want %v", r, got, ok, sum(all))
			}
		case parse.Measure:
			ss := f.Summaries(r.name, r.attrs())
			n, total := 0, 0.0
			for i, vs := range mins {
				n += len(vs)
				total += sum(vs)
				p := ss[w.time(i)]
				if vs == nil {
					continue
				}
				if p == nil {
					t.Errorf("%v minute %d: no summary", r, i)
					continue
				}
				if p.Count != uint64(n) || !near(p.Sum, total) {
					t.Errorf("%v minute %d: count %d sum %v; want running %d %v", r, i, p.Count, p.Sum, n, total)
				}
				q := p.QuantileValues
				if q[0].Value != slices.Min(vs) || q[4].Value != slices.Max(vs) {
					t.Errorf("%v minute %d: quantiles %v", r, i, q)
				}
			}
		case parse.Sample:
			w.checkGauges(t, f, r)
		}
	}
}

func (w *workload) checkGauges(t *testing.T, f *fakeotlp.Server, r ref) {
	t.Helper()
	gs := f.Gauges(r.name, r.attrs())
	for i, vs := range w.values[r] {
		if got, ok := gs[w.time(i)]; (vs != nil) != ok || vs != nil && got != vs[len(vs)-1] {
			t.Errorf("%v minute %d: gauge %v (%v), want %v", r, i, got, ok, vs)
		}
	}
}

// run hands the workload's minutes to the engine and waits until each of
// their points is posted, rejected or dropped.
func (h *harness) run(t *testing.T, w *workload) {
	t.Helper()
	h.eng.Closed(w.minutes)
	h.wait(t, w)
}

// wait waits until each of the workload's points is posted, rejected or
// dropped. (Engine.Pending is no good: it does not count a minute being
// built.)
func (h *harness) wait(t *testing.T, w *workload) {
	t.Helper()
	outlettest.WaitFor(t, "every point dealt with", func() bool {
		return h.stat(stats.Posted)+h.stat(stats.PostRejected)+h.stat(stats.PostDropped) >= uint64(w.points)
	})
}

func TestEndToEnd(t *testing.T) {
	for _, p := range []fakeotlp.Personality{fakeotlp.Strict, fakeotlp.Prometheus, fakeotlp.Mimir, fakeotlp.Victoria} {
		for _, temp := range []outlet.Temporality{outlet.Delta, outlet.Cumulative} {
			t.Run(string(p)+"/"+string(temp), func(t *testing.T) {
				h := newHarness(t, p, temp)
				w := newWorkload(t, 1, 5)
				h.run(t, w)
				reqs := h.fake.Requests()
				if len(reqs) != len(w.minutes) {
					t.Errorf("%d requests for %d minutes: statuses %v", len(reqs), len(w.minutes), h.fake.Statuses())
				}
				for _, r := range reqs {
					if r.UserAgent != "drainmeter/test" || r.Authorization != "Bearer x" || r.ContentEncoding != "gzip" {
						t.Errorf("request %+v", r)
					}
				}
				delta := temp == outlet.Delta
				switch {
				case delta && (p == fakeotlp.Prometheus || p == fakeotlp.Mimir):
					// Refused as a whole, not retried: every point dropped and counted.
					want := 500
					if p == fakeotlp.Mimir {
						want = 400
					}
					for _, s := range h.fake.Statuses() {
						if s != want {
							t.Errorf("status %d, want %d", s, want)
						}
					}
					if n := len(h.fake.Points()); n != 0 {
						t.Errorf("%d points stored", n)
					}
					if h.stat(stats.PostRejected) != uint64(w.points) || h.stat(stats.Posted) != 0 {
						t.Errorf("rejected %d posted %d; want %d rejected", h.stat(stats.PostRejected), h.stat(stats.Posted), w.points)
					}
					if h.state() != outlet.StateGivingUp {
						t.Errorf("lane %s", h.state())
					}
				case delta && p == fakeotlp.Victoria:
					// Accepted, and the deltas silently lost: only gauges arrive.
					for _, pt := range h.fake.Points() {
						if pt.Type != fakeotlp.Gauge {
							t.Errorf("a %s stored", pt.Type)
						}
					}
					if len(h.fake.Points()) != w.gaugePoints() || h.stat(stats.Posted) != uint64(w.points) {
						t.Errorf("%d points stored, %d posted", len(h.fake.Points()), h.stat(stats.Posted))
					}
				case delta:
					w.checkDelta(t, h.fake)
				default:
					w.checkCumulative(t, h.fake)
				}
				if !(delta && p != fakeotlp.Strict) {
					if h.stat(stats.Posted) != uint64(w.points) || h.stat(stats.PostRejected) != 0 {
						t.Errorf("posted %d rejected %d; want %d", h.stat(stats.Posted), h.stat(stats.PostRejected), w.points)
					}
				}
			})
		}
	}
}

// TestFlaky: 503s are retried, after Retry-After, until accepted; nothing
// is lost or counted twice.
func TestFlaky(t *testing.T) {
	h := newHarness(t, fakeotlp.Flaky, outlet.Cumulative)
	h.fake.SetFlaky(2)
	w := newWorkload(t, 2, 3)
	h.run(t, w)
	st := h.fake.Statuses()
	if !slices.Equal(st[:3], []int{503, 503, 200}) || len(st) != len(w.minutes)+2 {
		t.Errorf("statuses %v", st)
	}
	reqs := h.fake.Requests()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 not honoured: retried after %v", gap)
	}
	w.checkCumulative(t, h.fake)
	if h.stat(stats.Posted) != uint64(w.points) || h.stat(stats.PostRejected) != 0 {
		t.Errorf("posted %d rejected %d", h.stat(stats.Posted), h.stat(stats.PostRejected))
	}
}

// TestDynatrace: a partial_success is done, never retried; its rejected
// points are counted and its message shown.
func TestDynatrace(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(map[bool]string{false: "protobuf", true: "json"}[asJSON], func(t *testing.T) {
			h := newHarness(t, fakeotlp.Dynatrace, outlet.Cumulative)
			h.fake.JSONResponses(asJSON)
			w := newWorkload(t, 3, 4)
			h.run(t, w)
			reqs := h.fake.Requests()
			if len(reqs) != len(w.minutes) {
				t.Errorf("%d requests for %d minutes", len(reqs), len(w.minutes))
			}
			rejected := 0
			for _, r := range reqs {
				rejected += r.Rejected
			}
			gauges := w.gaugePoints()
			if rejected != w.points-gauges {
				t.Errorf("fake rejected %d of %d points (%d gauges)", rejected, w.points, gauges)
			}
			if h.stat(stats.PostRejected) != uint64(rejected) || h.stat(stats.Posted) != uint64(gauges) {
				t.Errorf("rejected %d posted %d; want %d %d", h.stat(stats.PostRejected), h.stat(stats.Posted), rejected, gauges)
			}
			if !strings.Contains(h.logs.String(), "cumulative Sum and Summary points are not supported") {
				t.Errorf("the receiver's message was not logged:\n%s", h.logs)
			}
			for r := range w.values {
				if w.kinds[r] == parse.Sample {
					w.checkGauges(t, h.fake, r)
				}
			}
		})
	}
}

// TestPausedUntilNewCredentials: 401 pauses the lane (no retries, no
// drops); new headers in the drain's configuration resume it at once and
// every minute arrives.
func TestPausedUntilNewCredentials(t *testing.T) {
	h := newHarness(t, fakeotlp.Strict, outlet.Cumulative)
	h.fake.RequireAuth("Bearer good")
	w := newWorkload(t, 4, 3)
	h.eng.Closed(w.minutes)
	outlettest.WaitFor(t, "the lane paused", func() bool { return h.state() == outlet.StatePaused })
	time.Sleep(300 * time.Millisecond)
	if st := h.fake.Statuses(); !slices.Equal(st, []int{401}) {
		t.Errorf("statuses while paused %v", st)
	}
	if h.stat(stats.PostDropped) != 0 || h.stat(stats.PostRejected) != 0 {
		t.Errorf("dropped %d rejected %d while paused", h.stat(stats.PostDropped), h.stat(stats.PostRejected))
	}
	if strings.Contains(h.logs.String(), "Bearer") {
		t.Errorf("credentials logged:\n%s", h.logs)
	}
	h.dests.Update("d1", func(d *outlet.Destination) {
		d.Outlets[0].Headers = []outlet.Header{{Name: "Authorization", Value: "Bearer good"}}
	})
	h.wait(t, w)
	if h.state() != outlet.StateOK {
		t.Errorf("lane %s", h.state())
	}
	w.checkCumulative(t, h.fake)
	if h.stat(stats.Posted) != uint64(w.points) {
		t.Errorf("posted %d, want %d", h.stat(stats.Posted), w.points)
	}
}

// TestTooLargeIsSplit: a 413 splits the request until the receiver takes
// the parts; every point arrives once.
func TestTooLargeIsSplit(t *testing.T) {
	h := newHarness(t, fakeotlp.Strict, outlet.Delta)
	w := newWorkload(t, 5, 3)
	// The limit: the largest single-series request, smaller than any minute's.
	b := newBackend(Config{Version: "test"}) // as the harness's
	limit, smallest := 0, math.MaxInt
	var leaves func(r *outlet.Request)
	leaves = func(r *outlet.Request) {
		parts := b.Split(r)
		if parts == nil {
			limit = max(limit, len(r.Body))
		}
		for _, p := range parts {
			leaves(p)
		}
	}
	for _, m := range w.minutes {
		d, _ := h.dests.Destination("d1")
		enc, err := b.Encode(d, &d.Outlets[0], m, nil)
		if err != nil || len(enc.Reqs) != 1 {
			t.Fatal(err, len(enc.Reqs))
		}
		smallest = min(smallest, len(enc.Reqs[0].Body))
		leaves(enc.Reqs[0])
	}
	if limit >= smallest {
		t.Fatalf("a single series takes %d bytes, a minute %d", limit, smallest)
	}
	h.fake.SetMaxBody(limit)
	h.run(t, w)
	if !slices.Contains(h.fake.Statuses(), 413) {
		t.Fatalf("no 413: statuses %v (raise the workload or lower the limit)", h.fake.Statuses())
	}

	w.checkDelta(t, h.fake)
	if h.stat(stats.Posted) != uint64(w.points) || h.stat(stats.PostRejected) != 0 {
		t.Errorf("posted %d rejected %d; want %d", h.stat(stats.Posted), h.stat(stats.PostRejected), w.points)
	}
}

// TestNegativeMinutesCounted: the core counts the measures a cumulative
// outlet sent as gauges, and the strict receiver (which refuses a Summary
// with a negative sum) takes both minutes.
func TestNegativeMinutesCounted(t *testing.T) {
	h := newHarness(t, fakeotlp.Strict, outlet.Cumulative)
	start := time.Now().Truncate(time.Minute).Add(-3 * time.Minute)
	next := start.Add(time.Minute)
	h.eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", start, []parse.Measurement{
		outlettest.Meas(parse.Measure, "t", "web.1", -50, start), outlettest.Meas(parse.Measure, "t", "web.1", 3, start)})})
	h.eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", next, []parse.Measurement{
		outlettest.Meas(parse.Measure, "t", "web.1", 4, next)})})
	outlettest.WaitFor(t, "both minutes posted", func() bool { return h.stat(stats.Posted) == 6 })
	if got := h.stat(stats.AsGauges); got != 1 {
		t.Errorf("as_gauges %d, want 1", got)
	}
	for i, s := range h.fake.Statuses() {
		if s != 200 {
			t.Errorf("request %d answered %d", i, s)
		}
	}
}

// TestTemporalitySwitchStartsNewTotals: cumulative, then delta, then
// cumulative again: the running totals start anew rather than resume the
// ones from before the switch (which the receiver reset meanwhile).
func TestTemporalitySwitchStartsNewTotals(t *testing.T) {
	h := newHarness(t, fakeotlp.Strict, outlet.Cumulative)
	start := time.Now().Truncate(time.Minute).Add(-5 * time.Minute)
	post := func(i int, temp outlet.Temporality, want uint64) {
		t.Helper()
		h.dests.Update("d1", func(d *outlet.Destination) { d.Outlets[0].Temporality = temp })
		at := start.Add(time.Duration(i) * time.Minute)
		h.eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", at, []parse.Measurement{
			outlettest.Meas(parse.Count, "c", "web.1", 5, at)})})
		outlettest.WaitFor(t, "the minute posted", func() bool { return h.stat(stats.Posted) == want })
	}
	post(0, outlet.Cumulative, 1)
	post(1, outlet.Delta, 2)
	post(2, outlet.Cumulative, 3)
	pts := h.fake.Points()
	last := pts[len(pts)-1]
	if last.Value != 5 || last.Start != uint64(start.Add(2*time.Minute).UnixNano()) {
		t.Fatalf("after switching back: value %g since %d, want 5 since the minute's start", last.Value, last.Start)
	}
}

// TestRedirectPauses: a receiver that redirects is not followed; the lane
// pauses, keeping its minutes (nothing dropped or refused), and says where
// the redirect pointed.
func TestRedirectPauses(t *testing.T) {
	h := newHarness(t, fakeotlp.Strict, outlet.Delta)
	redirect := httptest.NewServer(http.RedirectHandler("https://elsewhere.example.com/v1/metrics", http.StatusMovedPermanently))
	t.Cleanup(redirect.Close)
	h.dests.Update("d1", func(d *outlet.Destination) { d.Outlets[0].URL = redirect.URL + "/v1/metrics" })
	start := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	h.eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", start, []parse.Measurement{
		outlettest.Meas(parse.Count, "c", "web.1", 5, start)})})
	outlettest.WaitFor(t, "the lane paused", func() bool { return h.state() == outlet.StatePaused })
	if h.stat(stats.Posted)+h.stat(stats.PostRejected)+h.stat(stats.PostDropped) != 0 {
		t.Fatalf("posted %d rejected %d dropped %d", h.stat(stats.Posted), h.stat(stats.PostRejected), h.stat(stats.PostDropped))
	}
	for _, st := range h.eng.Lanes() {
		if !strings.Contains(st.LastError, "redirected to https://elsewhere.example.com,") || st.Waiting != 1 {
			t.Fatalf("lane: %+v", st)
		}
	}
}
