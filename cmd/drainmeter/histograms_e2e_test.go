package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// spreadValues are n integer milliseconds from 1 ms to 10 s, log-uniform,
// one in five a power of two (1, 2, 4 … 8192: bucket boundaries).
func spreadValues(seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 20))
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = math.Round(math.Exp(rng.Float64() * math.Log(10000)))
		if rng.IntN(5) == 0 {
			vs[i] = math.Ldexp(1, rng.IntN(14))
		}
	}
	return vs
}

// TestOTLPQuantilesEndToEnd is issue 20's acceptance run for OTLP: a minute
// of 3,000 integer-ms measures from 1 ms to 10 s through the binary to the
// fake OTLP receiver. Delta at OTLP_MAX_BUCKETS=1000 keeps scale 6 and the
// receiver's nearest-rank p50/p95/p99 are within 1 %; at the default 160
// the histogram is downscaled and they are within the resolution of the
// scale sent; cumulative, the Summary's quantiles are within 1 %.
func TestOTLPQuantilesEndToEnd(t *testing.T) {
	t.Parallel()
	vs := spreadValues(1, 3000)
	sorted := slices.Sorted(slices.Values(vs))
	// batches stamps the lines when a subtest runs: a parallel subtest may
	// wait for minutes before it starts, and older lines would be late.
	batches := func() []string {
		at := time.Now()
		var batches []string
		var b strings.Builder
		for i, v := range vs {
			b.WriteString(appLine(at, "web.1", fmt.Sprintf("measure#db.latency=%gms", v)))
			if i%500 == 499 {
				batches = append(batches, b.String())
				b.Reset()
			}
		}
		return batches
	}
	for _, tc := range []struct {
		name      string
		env       []string
		delta     bool
		wantScale int32   // delta: the scale sent
		bound     float64 // the largest relative error allowed
	}{
		{"delta-1000", []string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta", "OTLP_MAX_BUCKETS=1000"}, true, 6, 0.01},
		// 1 ms to 10 s is 851 buckets at scale 6: scale 3 fits 160.
		{"delta-160", []string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta"}, true, 3, resolution(3)},
		{"cumulative", nil, false, 0, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := fakeotlp.New("")
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			s := startServer(t, append([]string{"DRAIN_SECRET=s3cret", "OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL}, tc.env...)...)
			for i, body := range batches() {
				resp := s.do(t, post{user: "myapp", pass: "s3cret", body: []byte(body),
					headers: map[string]string{"Logplex-Frame-Id": fmt.Sprintf("%032X", i+1)}})
				if resp.StatusCode != 200 {
					t.Fatalf("batch %d: %d", i, resp.StatusCode)
				}
			}
			if _, err := s.stop(t); err != nil { // SIGTERM posts the open minute
				t.Fatalf("exit: %v\n%s", err, s.out)
			}
			pts := fake.Series("db.latency", map[string]string{"source": "web.1", "drainmeter.rollup": "dyno"})
			if len(pts) != 1 {
				t.Fatalf("%d points of db.latency: %+v", len(pts), pts)
			}
			var worst float64
			for _, q := range []float64{0.5, 0.95, 0.99} {
				want := exactNearestRank(sorted, q)
				var got float64
				if tc.delta {
					p := pts[0].Exp
					if p == nil || p.Scale != tc.wantScale || p.Count != uint64(len(vs)) {
						t.Fatalf("histogram %+v, want scale %d and count %d", p, tc.wantScale, len(vs))
					}
					got = fakeotlp.ExpQuantile(p, q)
				} else {
					s := pts[0].Summary
					found := false
					for _, v := range s.GetQuantileValues() {
						if v.Quantile == q {
							got, found = v.Value, true
						}
					}
					if !found || s.Count != uint64(len(vs)) {
						t.Fatalf("summary %+v", s)
					}
				}
				e := math.Abs(got-want) / want
				worst = max(worst, e)
				if e > tc.bound {
					t.Errorf("q%v: %v, nearest rank %v: %.2f %% off, more than %.2f %%", q, got, want, 100*e, 100*tc.bound)
				}
			}
			t.Logf("OTLP %s: worst p50/p95/p99 error %.3f %% (bound %.2f %%)", tc.name, 100*worst, 100*tc.bound)
		})
	}
}

// resolution is the largest relative error of a bucket's value at scale s:
// (base-1)/(base+1).
func resolution(s int) float64 {
	base := math.Exp2(math.Exp2(-float64(s)))
	return (base - 1) / (base + 1)
}

// nativeHistogramsRun is what TestNativeHistogramsEndToEnd checks against
// Prometheus: the exact running totals of the load, and the count of
// failures (the first 20 are reported).
type nativeHistogramsRun struct {
	prom *promtest.Prometheus
	r    *running
	fail func(format string, args ...any) // the first 20 failures
}

// TestNativeHistogramsEndToEnd is issue 20's acceptance run for native
// histograms: drainbench-shaped load through two webs on one Postgres,
// remote write to a real Prometheus 2.42 with native histograms, web.2
// SIGTERMed and restarted mid-run. Per minute and source, histogram_count
// and histogram_sum are the exact running totals (so their increases are
// exact), and the minute's histogram_quantile is within one scale-6 bucket
// (1.1 %) of the exact nearest rank; summed over the dynos, it is within
// 1.1 % of the merged truth.
func TestNativeHistogramsEndToEnd(t *testing.T) {
	t.Parallel()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{NativeHistograms: true})
	dsn := pgtest.NewDatabase(t, false)
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--remote-write-url", prom.WriteURL(), "--remote-write-histograms", "native"},
		{"--name", "shop-summary", "--remote-write-url", prom.WriteURL()}, // the default, for comparison
	})
	c.start(1)
	restart := c.restart(2, c.start(2), 2*time.Second)
	totals := c.load(23, 130*time.Second, 15, 40, 0.05, map[time.Duration]func(){75 * time.Second: restart})
	r := runningTotals(totals)
	waitPosted(t, dsn, 2, r.minutes[len(r.minutes)-1], 2*time.Minute)
	c.stopAll()

	h := &nativeHistogramsRun{prom: prom, r: r, fail: firstErrors(t, 20)}
	checked, worst := h.perSource(t)
	checkedAll, worstAll := h.acrossDynos(t)
	worstSummary := h.summary(t)

	t.Logf("remote write summary: worst p50/p95/p99 error %.3f %%", 100*worstSummary)
	if checked < len(r.measures)/2 || checkedAll == 0 {
		t.Errorf("quantiles checked for %d of %d minutes of series, %d merged", checked, len(r.measures), checkedAll)
	}
	t.Logf("remote write native, Prometheus 2.42: %d series-minutes, worst p50/p95/p99 error %.3f %%; %d merged minutes, worst p95 %.3f %%",
		checked, 100*worst, checkedAll, 100*worstAll)
	noLaneLost(t, dsn)
}

// present says whether the load had the series name, source in minute.
func (h *nativeHistogramsRun) present(name, source string, minute int64) bool {
	for k := range h.r.measures {
		if k.Name == name && k.Source == source && k.Minute == minute {
			return true
		}
	}
	return false
}

// perSource checks, per minute and source, histogram_count and
// histogram_sum are the exact running totals, and the minute's
// histogram_quantile is within 1.1 % of the exact nearest rank. It returns
// how many series-minutes had their quantiles checked, and the worst error.
func (h *nativeHistogramsRun) perSource(t *testing.T) (checked int, worst float64) {
	t.Helper()
	for k, vs := range h.r.measures {
		at := time.Unix(k.Minute+60, 0)
		sel := fmt.Sprintf(`%s{job="shop",source=%q}`, promName(k.Name), k.Source)
		if got := promOne(t, h.prom, "histogram_count("+sel+")", at); got != h.r.mcounts[k] {
			h.fail("%s at %s: histogram_count %v, want %v", sel, at.UTC().Format(time.TimeOnly), got, h.r.mcounts[k])
		}
		if got := promOne(t, h.prom, "histogram_sum("+sel+")", at); !near(got, h.r.msums[k], 1e-9) {
			h.fail("%s at %s: histogram_sum %v, want %v", sel, at.UTC().Format(time.TimeOnly), got, h.r.msums[k])
		}
		// The minute alone: its running histogram less the minute
		// before's, or, in its first minute, the running histogram.
		minute := "rate(" + sel + "[61s])"
		switch {
		case h.present(k.Name, k.Source, k.Minute-60):
		case float64(len(vs)) == h.r.mcounts[k]:
			minute = sel
		default:
			continue // back after a gap: no one sample before it
		}
		checked++
		for _, q := range []float64{0.5, 0.95, 0.99} {
			got := promOne(t, h.prom, fmt.Sprintf("histogram_quantile(%g, %s)", q, minute), at)
			e := tieError(vs, q, got)
			worst = max(worst, e)
			if e > 0.011 {
				h.fail("%s at %s: histogram_quantile(%g) %v, nearest rank %v (%.2f %%)", minute, at.UTC().Format(time.TimeOnly), q, got, exactNearestRank(vs, q), 100*e)
			}
		}
	}
	return checked, worst
}

// acrossDynos checks the p95 across dynos, per name and minute where every
// dyno's series was also in the minute before (so that each has a rate),
// is within 1.1 % of the merged truth. It returns how many merged minutes
// were checked, and the worst error.
func (h *nativeHistogramsRun) acrossDynos(t *testing.T) (checkedAll int, worstAll float64) {
	t.Helper()
	type nm struct {
		name   string
		minute int64
	}
	merged := map[nm][]float64{}
	complete := map[nm]bool{}
	for k, vs := range h.r.measures {
		if k.Source == "web" { // the process-type rollup
			continue
		}
		id := nm{k.Name, k.Minute}
		if _, ok := complete[id]; !ok {
			complete[id] = true
		}
		complete[id] = complete[id] && h.present(k.Name, k.Source, k.Minute-60)
		merged[id] = append(merged[id], vs...)
	}
	for id, vs := range merged {
		if !complete[id] {
			continue
		}
		checkedAll++
		slices.Sort(vs)
		at := time.Unix(id.minute+60, 0)
		q := 0.95
		expr := fmt.Sprintf(`histogram_quantile(%g, sum(rate(%s{job="shop",drainmeter_rollup="dyno"}[61s])))`, q, promName(id.name))
		got := promOne(t, h.prom, expr, at)
		e := tieError(vs, q, got)
		worstAll = max(worstAll, e)
		if e > 0.011 {
			h.fail("%s at %s: %v, merged nearest rank %v (%.2f %%)", expr, at.UTC().Format(time.TimeOnly), got, exactNearestRank(vs, q), 100*e)
		}
	}
	return checkedAll, worstAll
}

// summary checks the Summary's quantiles of the same minutes, for
// comparison, and returns the worst error.
func (h *nativeHistogramsRun) summary(t *testing.T) (worstSummary float64) {
	t.Helper()
	for k, vs := range h.r.measures {
		at := time.Unix(k.Minute+60, 0)
		for _, q := range []string{"0.5", "0.95", "0.99"} {
			got := promOne(t, h.prom, fmt.Sprintf(`%s{job="shop-summary",source=%q,quantile=%q}`, promName(k.Name), k.Source, q), at)
			qf, _ := strconv.ParseFloat(q, 64)
			want := exactNearestRank(vs, qf)
			e := math.Abs(got-want) / max(want, 1e-9)
			worstSummary = max(worstSummary, e)
			if e > 0.01 {
				h.fail("summary %s %s at %s: q%s %v, nearest rank %v", k.Name, k.Source, at.UTC().Format(time.TimeOnly), q, got, want)
			}
		}
	}
	return worstSummary
}

// tieError is the relative error of Prometheus' estimate got of the
// q-quantile of vs (sorted) against the exact nearest rank, the
// ceil(q·n)-th value; where q·n is a whole number k, Prometheus' rank falls
// on the boundary between the k-th and the next value, and its float
// arithmetic (rate's per-second counts) lands on either side: the error is
// then against the nearer of the two.
func tieError(vs []float64, q, got float64) float64 {
	k := int(math.Ceil(q*float64(len(vs)))) - 1
	rel := func(want float64) float64 { return math.Abs(got-want) / max(math.Abs(want), 1e-9) }
	e := rel(vs[k])
	if r := q * float64(len(vs)); r == math.Trunc(r) && k+1 < len(vs) {
		e = min(e, rel(vs[k+1]))
	}
	return e
}

// promOne runs an instant query whose result is one sample.
func promOne(t *testing.T, p *promtest.Prometheus, expr string, at time.Time) float64 {
	t.Helper()
	got := p.Query(t, expr, at)
	if len(got) != 1 {
		t.Errorf("%s at %s: %v, want one sample", expr, at.UTC().Format(time.TimeOnly), got)
		return math.NaN()
	}
	return got[0].Value
}

// TestDrainsHistogramFlags: drains add|set --otlp-max-buckets and
// --remote-write-histograms are stored per drain, shown by list, and bad
// values are refused with a message naming the flag.
func TestDrainsHistogramFlags(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=https://my-drainmeter.herokuapp.com"}
	mustCLI(t, env, "drains", "add", "--name", "shop", "--otlp-endpoint", "https://otlp.example.com/v1/metrics",
		"--otlp-temporality", "delta", "--otlp-max-buckets", "1000",
		"--remote-write-url", "https://prom.example.com/api/v1/write", "--remote-write-histograms", "native")
	if list := mustCLI(t, env, "drains", "list"); !strings.Contains(list, "otlp(https://otlp.example.com/v1/metrics, delta, max buckets 1000)") ||
		!strings.Contains(list, "remotewrite(https://prom.example.com/api/v1/write, native histograms)") {
		t.Fatalf("list:\n%s", list)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--otlp-max-buckets", "many"}, `--otlp-max-buckets "many": a number of buckets, 2 to 4096`},
		{[]string{"--otlp-max-buckets", "1"}, "1 buckets: 2 to 4096"},
		{[]string{"--remote-write-histograms", "classic"}, `remote write histograms "classic": native or summary`},
	} {
		_, stderr, err := cli(t, env, append([]string{"drains", "set", "shop"}, tc.args...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("drains set shop %v: %v, stderr %q, want %q", tc.args, err, stderr, tc.want)
		}
	}
	mustCLI(t, env, "drains", "set", "shop", "--otlp-max-buckets", "160", "--remote-write-histograms", "summary")
	if list := mustCLI(t, env, "drains", "list"); !strings.Contains(list, "otlp(https://otlp.example.com/v1/metrics, delta)") ||
		!strings.Contains(list, "remotewrite(https://prom.example.com/api/v1/write)") {
		t.Fatalf("list after set:\n%s", list)
	}
}
