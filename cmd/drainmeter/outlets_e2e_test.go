package main

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/promtest"
)

// promName is a drainmeter name as a Prometheus metric name.
func promName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ':') {
			b[i] = '_'
		}
	}
	return string(b)
}

// running is what cumulative receivers must hold for totals: per (name,
// source) and minute, the running count total, and the running measure
// count and sum, through that minute.
type running struct {
	countsOf map[loadgen.Key]float64 // the minute's own sums
	counts   map[loadgen.Key]float64
	mcounts  map[loadgen.Key]float64
	msums    map[loadgen.Key]float64
	minutes  []int64
	measures map[loadgen.Key][]float64 // the minute's values, sorted
}

func runningTotals(totals *loadgen.Totals) *running {
	r := &running{countsOf: totals.Counts, counts: map[loadgen.Key]float64{}, mcounts: map[loadgen.Key]float64{}, msums: map[loadgen.Key]float64{},
		measures: map[loadgen.Key][]float64{}}
	seen := map[int64]bool{}
	for k := range totals.Counts {
		seen[k.Minute] = true
	}
	for k := range totals.Measures {
		seen[k.Minute] = true
	}
	for m := range seen {
		r.minutes = append(r.minutes, m)
	}
	slices.Sort(r.minutes)
	accC, accN, accS := map[[2]string]float64{}, map[[2]string]float64{}, map[[2]string]float64{}
	for _, m := range r.minutes {
		for k, v := range totals.Counts {
			if k.Minute == m {
				accC[[2]string{k.Name, k.Source}] += v
			}
		}
		for k, vs := range totals.Measures {
			if k.Minute != m {
				continue
			}
			id := [2]string{k.Name, k.Source}
			accN[id] += float64(len(vs))
			for _, v := range vs {
				accS[id] += v
			}
			sorted := slices.Clone(vs)
			slices.Sort(sorted)
			r.measures[k] = sorted
		}
		// Running totals are checked for the series present in the minute.
		for k := range totals.Counts {
			if k.Minute == m {
				r.counts[k] = accC[[2]string{k.Name, k.Source}]
			}
		}
		for k := range totals.Measures {
			if k.Minute == m {
				id := [2]string{k.Name, k.Source}
				r.mcounts[k], r.msums[k] = accN[id], accS[id]
			}
		}
	}
	return r
}

func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-9)
}

// checkPrometheus reads every minute back from Prometheus with PromQL.
func checkPrometheus(t *testing.T, p *promtest.Prometheus, job string, r *running) {
	t.Helper()
	fail := firstErrors(t, 20)
	for _, m := range r.minutes {
		at := time.Unix(m+60, 0)
		vec := func(expr string) map[[2]string]float64 {
			out := map[[2]string]float64{}
			for _, s := range p.Query(t, expr, at) {
				if s.Time.Equal(at) {
					out[[2]string{s.Metric["__name__"], s.Metric["source"]}] = s.Value
				}
			}
			return out
		}
		counts := vec(fmt.Sprintf(`{job=%q, __name__=~".+_total"}`, job))
		mcounts := vec(fmt.Sprintf(`{job=%q, __name__=~".+_count"}`, job))
		msums := vec(fmt.Sprintf(`{job=%q, __name__=~".+_sum"}`, job))
		p95 := vec(fmt.Sprintf(`{job=%q, quantile="0.95"}`, job))
		for k, want := range r.counts {
			if k.Minute != m {
				continue
			}
			if got, ok := counts[[2]string{promName(k.Name) + "_total", k.Source}]; !ok || got != want {
				fail("prometheus %s_total{source=%q} at %s = %v (present %v), want %v", promName(k.Name), k.Source, at.UTC().Format(time.TimeOnly), got, ok, want)
			}
		}
		for k, vs := range r.measures {
			if k.Minute != m {
				continue
			}
			n := promName(k.Name)
			if got := mcounts[[2]string{n + "_count", k.Source}]; got != r.mcounts[k] {
				fail("prometheus %s_count{source=%q} at %s = %v, want %v", n, k.Source, at.UTC().Format(time.TimeOnly), got, r.mcounts[k])
			}
			if got := msums[[2]string{n + "_sum", k.Source}]; !near(got, r.msums[k], 1e-9) {
				fail("prometheus %s_sum{source=%q} at %s = %v, want %v", n, k.Source, at.UTC().Format(time.TimeOnly), got, r.msums[k])
			}
			if got, want := p95[[2]string{n, k.Source}], exactNearestRank(vs, 0.95); !near(got, want, 0.01) {
				fail("prometheus %s{quantile=0.95, source=%q} at %s = %v, want %v ± 1 %%", n, k.Source, at.UTC().Format(time.TimeOnly), got, want)
			}
		}
	}
}

// checkVictoria reads every series back from VictoriaMetrics.
func checkVictoria(t *testing.T, v *promtest.VictoriaMetrics, job string, r *running) {
	t.Helper()
	type id struct {
		name, source, quantile string
		ms                     int64
	}
	got := map[id][]float64{}
	for _, s := range v.Export(t, fmt.Sprintf(`{job=%q}`, job)) {
		for i, ts := range s.Timestamps {
			k := id{s.Metric["__name__"], s.Metric["source"], s.Metric["quantile"], ts}
			got[k] = append(got[k], s.Values[i])
		}
	}
	fail := firstErrors(t, 20)
	check := func(k id, want float64, rel float64) {
		t.Helper()
		if vs := got[k]; len(vs) != 1 || !near(vs[0], want, rel) {
			fail("victoria %+v = %v, want one value %v", k, vs, want)
		}
	}
	for k, want := range r.counts {
		check(id{promName(k.Name) + "_total", k.Source, "", (k.Minute + 60) * 1000}, want, 0)
	}
	for k, vs := range r.measures {
		n, ms := promName(k.Name), (k.Minute+60)*1000
		check(id{n + "_count", k.Source, "", ms}, r.mcounts[k], 0)
		check(id{n + "_sum", k.Source, "", ms}, r.msums[k], 1e-9)
		check(id{n, k.Source, "0.99", ms}, exactNearestRank(vs, 0.99), 0.01)
	}
}

// waitPosted waits until every lane has posted through the last minute.
func waitPosted(t *testing.T, dsn string, lanes int, last int64, timeout time.Duration) {
	t.Helper()
	pool := pgtest.MustPool(t, dsn)
	eventually(t, timeout, "every lane posted the last minute", func() bool {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM lanes WHERE posted_through >= $1`, last).Scan(&n)
		return err == nil && n >= lanes
	})
}

// TestRemoteWriteEndToEnd is issue 8's acceptance run for remote write:
// drainbench-shaped load through two web dynos on one Postgres across more
// than two minutes, web.2 SIGTERMed and restarted mid-run; then every count
// total and measure count and sum read back from a real Prometheus and a
// real VictoriaMetrics equals what was sent, quantiles within 1 %, and no
// request was refused.
func TestRemoteWriteEndToEnd(t *testing.T) {
	t.Parallel()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	vm := promtest.StartVictoriaMetrics(t)
	dsn := pgtest.NewDatabase(t, false)
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--remote-write-url", prom.WriteURL()},
		{"--name", "shop-vm", "--remote-write-url", vm.WriteURL()},
	})
	c.start(1)
	restart := c.restart(2, c.start(2), 2*time.Second)
	totals := c.load(21, 130*time.Second, 15, 40, 0.05, map[time.Duration]func(){75 * time.Second: restart})
	r := runningTotals(totals)
	waitPosted(t, dsn, 2, r.minutes[len(r.minutes)-1], 2*time.Minute)
	checkPrometheus(t, prom, "shop", r)
	checkVictoria(t, vm, "shop-vm", r)
	c.stopAll()
	for _, s := range []string{"refused the request", "refused some points"} {
		for _, w := range c.allOutput() {
			if strings.Contains(w, s) {
				t.Errorf("a web logged %q", s)
			}
		}
	}
	noLaneLost(t, dsn)
}

// otlpAttrs are the point attributes of a loadgen source.
func otlpAttrs(source string) map[string]string {
	if source == "web" {
		return map[string]string{"source": "web", "drainmeter.rollup": "process_type"}
	}
	return map[string]string{"source": source, "drainmeter.rollup": "dyno"}
}

// checkOTLP compares what a fake OTLP receiver holds with the load.
func checkOTLP(t *testing.T, fake *fakeotlp.Server, delta, pctGauges bool, r *running) {
	t.Helper()
	fail := firstErrors(t, 20)
	byTime := func(name string, attrs map[string]string) map[uint64][]fakeotlp.Point {
		out := map[uint64][]fakeotlp.Point{}
		for _, p := range fake.Series(name, attrs) {
			out[p.Time] = append(out[p.Time], p)
		}
		return out
	}
	for k, want := range r.counts {
		at := uint64(k.Minute+60) * 1e9
		pts := byTime(k.Name, otlpAttrs(k.Source))[at]
		if delta {
			want = r.countsOf[k]
		}
		if len(pts) != 1 || pts[0].Type != fakeotlp.Sum || pts[0].Delta() != delta || pts[0].Value != want {
			fail("otlp %s %s at %d: %+v, want one sum %v (delta %v)", k.Name, k.Source, k.Minute, pts, want, delta)
		}
	}
	for k, vs := range r.measures {
		at := uint64(k.Minute+60) * 1e9
		pts := byTime(k.Name, otlpAttrs(k.Source))[at]
		if len(pts) != 1 {
			fail("otlp %s %s at %d: %d points, want 1", k.Name, k.Source, k.Minute, len(pts))
			continue
		}
		var sum float64
		for _, v := range vs {
			sum += v
		}
		if pctGauges { // PERCENTILES is the default 50, 95, 99
			for _, p := range []float64{50, 95, 99} {
				name := fmt.Sprintf("%s.p%g", k.Name, p)
				g := byTime(name, otlpAttrs(k.Source))[at]
				if want := exactNearestRank(vs, p/100); len(g) != 1 || g[0].Type != fakeotlp.Gauge || !near(g[0].Value, want, 0.01) {
					fail("otlp %s %s at %d: %+v, want one gauge %v ± 1 %%", name, k.Source, k.Minute, g, want)
				}
			}
		}
		if delta {
			e := pts[0].Exp
			if e == nil || e.Count != uint64(len(vs)) || !near(e.GetSum(), sum, 1e-9) || e.GetMin() != vs[0] || e.GetMax() != vs[len(vs)-1] {
				fail("otlp delta %s %s at %d: %+v, want count %d sum %v min %v max %v", k.Name, k.Source, k.Minute, e, len(vs), sum, vs[0], vs[len(vs)-1])
			}
			continue
		}
		s := pts[0].Summary
		if s == nil || float64(s.Count) != r.mcounts[k] || !near(s.Sum, r.msums[k], 1e-9) {
			fail("otlp cumulative %s %s at %d: %+v, want count %v sum %v", k.Name, k.Source, k.Minute, s, r.mcounts[k], r.msums[k])
			continue
		}
		for _, q := range s.QuantileValues {
			if want := exactNearestRank(vs, q.Quantile); !near(q.Value, want, 0.01) {
				fail("otlp cumulative %s %s at %d: q%v = %v, want %v ± 1 %%", k.Name, k.Source, k.Minute, q.Quantile, q.Value, want)
			}
		}
	}
	for _, req := range fake.Requests() {
		if (req.Status != 200 && req.Status != 401) || req.Rejected != 0 { // 401: refused credentials, tested apart
			fail("the fake refused a request: %+v", req)
		}
	}
}

// laneRow is a lane as the status page will show it.
func laneRow(t *testing.T, dsn, drainName, kind string) (postedThrough int64, state, lastErr string) {
	t.Helper()
	pool := pgtest.MustPool(t, dsn)
	var pt *int64
	var le *string
	err := pool.QueryRow(context.Background(), `SELECT l.posted_through, l.state, l.last_error FROM lanes l JOIN drains d ON d.id = l.drain_id
		WHERE d.name = $1 AND l.outlet = $2`, drainName, kind).Scan(&pt, &state, &le)
	if err != nil {
		return 0, "", ""
	}
	if pt != nil {
		postedThrough = *pt
	}
	if le != nil {
		lastErr = *le
	}
	return postedThrough, state, lastErr
}

// TestOTLPEndToEnd is issue 8's acceptance run for OTLP and fan-out: two
// webs on one Postgres; drain shop posts OTLP cumulative and to Librato,
// drain shop-delta OTLP delta. Librato is down for 60 s mid-run: OTLP
// stays current meanwhile, Librato catches up after, and every receiver
// ends up with exactly what was sent.
func TestOTLPEndToEnd(t *testing.T) {
	t.Parallel()
	cum, delta := fakeotlp.New(""), fakeotlp.New("")
	cumSrv, deltaSrv := httptest.NewServer(cum), httptest.NewServer(delta)
	t.Cleanup(cumSrv.Close)
	t.Cleanup(deltaSrv.Close)
	cum.RequireAuth("Bearer otlp-secret-token")
	dsn := pgtest.NewDatabase(t, false)
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--otlp-endpoint", cumSrv.URL + "/v1/metrics", "--otlp-header", "Authorization=Bearer otlp-secret-token",
			"--librato-user", "me@example.com", "--librato-token", "tok"},
		// As for Dynatrace: delta, and percentiles as gauges too.
		{"--name", "shop-delta", "--otlp-endpoint", deltaSrv.URL + "/v1/metrics", "--otlp-temporality", "delta", "--otlp-percentile-gauges"},
	})
	c.start(1)
	c.start(2)
	// While Librato is down, watch the lanes: OTLP must get ahead of
	// Librato (a minute is sealed within the outage whatever the load's
	// alignment to minutes), and Librato must show that it retries.
	var ahead atomic.Bool
	var seen atomic.Value
	watch := func() {
		for end := time.Now().Add(58 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
			o, _, _ := laneRow(t, dsn, "shop", "otlp")
			l, state, lastErr := laneRow(t, dsn, "shop", "librato")
			seen.Store(fmt.Sprintf("OTLP through %d, Librato through %d (%s: %q)", o, l, state, lastErr))
			if o > l && state == "retrying" && strings.Contains(lastErr, "503") {
				ahead.Store(true)
				return
			}
		}
	}
	events := map[time.Duration]func(){
		15 * time.Second: func() {
			c.fake.FailUntil(time.Now().Add(60*time.Second), fakelibrato.Maintenance)
			watch()
		},
	}
	totals := c.load(22, 100*time.Second, 15, 40, 0.05, events)
	r := runningTotals(totals)
	waitPosted(t, dsn, 3, r.minutes[len(r.minutes)-1], 3*time.Minute)
	c.stopAll()
	if !ahead.Load() {
		t.Errorf("with Librato down, OTLP never got ahead of a retrying Librato; last seen: %v", seen.Load())
	}
	checkOTLP(t, cum, false, false, r)
	checkOTLP(t, delta, true, true, r)
	checkDelivered(t, c.fake, totals)
	for _, w := range c.allOutput() {
		if strings.Contains(w, "otlp-secret-token") {
			t.Error("a web logged the OTLP header")
		}
	}
}

// TestCredentialChangeEndToEnd: an outlet whose credentials the receiver
// refuses pauses (on every dyno: the lane is shared); `drains set` with the
// right header makes it post at once — well within DRAIN_CACHE_TTL — and
// every queued minute arrives.
func TestCredentialChangeEndToEnd(t *testing.T) {
	t.Parallel()
	rcv := fakeotlp.New("")
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	rcv.RequireAuth("Bearer right-token")
	dsn := pgtest.NewDatabase(t, false)
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--otlp-endpoint", srv.URL + "/v1/metrics", "--otlp-header", "Authorization=Bearer wrong-token"},
	}, "DRAIN_CACHE_TTL=30s")
	c.start(1)
	c.start(2)
	totals := c.load(23, 70*time.Second, 10, 40, 0, nil)
	eventually(t, 60*time.Second, "the lane paused on the refused credentials", func() bool {
		_, state, lastErr := laneRow(t, dsn, "shop", "otlp")
		return state == "paused" && strings.Contains(lastErr, "401")
	})
	pausedAt, _, _ := laneRow(t, dsn, "shop", "otlp")
	start := time.Now()
	mustCLI(t, c.env[:3], "drains", "set", "shop", "--otlp-header", "Authorization=Bearer right-token")
	// The queued minutes go out at once, well within DRAIN_CACHE_TTL.
	eventually(t, 30*time.Second, "posting resumed within DRAIN_CACHE_TTL", func() bool {
		through, state, _ := laneRow(t, dsn, "shop", "otlp")
		return state == "ok" && through > pausedAt
	})
	t.Logf("posting resumed %v after drains set", time.Since(start).Round(time.Millisecond))
	r := runningTotals(totals)
	waitPosted(t, dsn, 1, r.minutes[len(r.minutes)-1], 2*time.Minute)
	c.stopAll()
	checkOTLP(t, rcv, false, false, r)
	for _, w := range c.allOutput() {
		if strings.Contains(w, "right-token") || strings.Contains(w, "wrong-token") {
			t.Error("a web logged a credential")
		}
	}
}

// noLaneLost checks that no lane of the database at dsn had a minute
// rejected or dropped.
func noLaneLost(t *testing.T, dsn string) {
	t.Helper()
	pool := pgtest.MustPool(t, dsn)
	var rejected, dropped int64
	if err := pool.QueryRow(context.Background(), `SELECT sum(rejected), sum(dropped) FROM lanes`).Scan(&rejected, &dropped); err != nil {
		t.Fatal(err)
	}
	if rejected != 0 || dropped != 0 {
		t.Errorf("lanes rejected %d, dropped %d", rejected, dropped)
	}
}
