package remotewrite

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// nativeWorkload is four minutes of db.latency on web.1 and web.2 (rolled
// into web): integer milliseconds from 1 to 10,000, log-uniform, so that
// powers of two (bucket boundaries) are common; web.2 is absent from the
// last minute.
func nativeWorkload(t *testing.T, first time.Time) (minutes []*rollup.Minute, values []map[string][]float64) {
	rng := rand.New(rand.NewPCG(20, 42))
	for i := range 4 {
		start := first.Add(time.Duration(i) * time.Minute)
		vals := map[string][]float64{}
		var ms []parse.Measurement
		for _, src := range []string{"web.1", "web.2"} {
			if src == "web.2" && i == 3 {
				continue
			}
			for range 400 + 100*i {
				v := math.Round(math.Exp(rng.Float64() * math.Log(10000)))
				if rng.IntN(5) == 0 {
					v = math.Ldexp(1, rng.IntN(14)) // 1, 2, 4 … 8192 ms
				}
				vals[src] = append(vals[src], v)
				vals["web"] = append(vals["web"], v)
				ms = append(ms, withType(meas(parse.Measure, "db.latency", src, v, start.Add(time.Second)), "web"))
			}
		}
		minutes = append(minutes, minuteOf(t, "d1", start, ms))
		values = append(values, vals)
	}
	return minutes, values
}

// post sends every request of enc to url, returning the statuses.
func post(t *testing.T, b *Backend, url string, enc outlet.Encoded) []int {
	t.Helper()
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: url}
	var statuses []int
	for _, r := range enc.Reqs {
		res := b.Send(context.Background(), o, r)
		statuses = append(statuses, res.Status)
		if res.Outcome != outlet.Accepted {
			t.Logf("%s: %d %s", url, res.Status, res.Message)
		}
	}
	return statuses
}

// TestNativeHistogramsRealReceivers: native histograms against Prometheus
// 2.42 with --enable-feature=native-histograms: every minute's
// histogram_count and histogram_sum are the running totals, the minute's
// histogram_quantile (of rate over the minute) is within one scale-6
// bucket (1.1 %) of the exact nearest rank per source and summed over the
// dynos, and a series gone is stale at once. Without the feature flag
// Prometheus refuses them; VictoriaMetrics 1.79 accepts the request and
// drops the histograms, keeping the rest.
func TestNativeHistogramsRealReceivers(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{NativeHistograms: true})
	plain := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	vm := promtest.StartVictoriaMetrics(t)

	first := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	minutes, values := nativeWorkload(t, first)
	b := newBackend(Config{})
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, Histograms: outlet.NativeHistograms}
	var prev *outlet.Totals
	var encs []outlet.Encoded
	for _, m := range minutes {
		enc, err := b.Encode(drain, o, m, prev)
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, enc)
		prev = enc.Totals
	}
	for i, enc := range encs {
		if st := post(t, b, prom.WriteURL(), enc); slices.ContainsFunc(st, func(s int) bool { return s/100 != 2 }) {
			t.Fatalf("minute %d: Prometheus with native histograms answered %v", i, st)
		}
		if st := post(t, b, vm.WriteURL(), enc); slices.ContainsFunc(st, func(s int) bool { return s/100 != 2 }) {
			t.Fatalf("minute %d: VictoriaMetrics answered %v", i, st)
		}
	}
	// Without the feature flag, Prometheus 2.42 answers 500 (retried until
	// MaxAge) and says why, which the lane's error shows.
	res := b.Send(context.Background(), &outlet.Outlet{Kind: outlet.RemoteWrite, URL: plain.WriteURL()}, encs[0].Reqs[0])
	if res.Status != http.StatusInternalServerError || res.Outcome != outlet.Retry || !strings.Contains(res.Message, "native histograms are disabled") {
		t.Errorf("Prometheus without --enable-feature=native-histograms: %+v", res)
	}

	// Prometheus: per minute and source.
	var count, sum = map[string]float64{}, map[string]float64{}
	var worst, worstAll float64
	for i, vals := range values {
		at := first.Add(time.Duration(i+1) * time.Minute)
		for _, src := range []string{"web.1", "web.2", "web"} {
			vs := vals[src]
			sel := fmt.Sprintf(`db_latency{source=%q}`, src)
			if vs == nil {
				if got := prom.Query(t, "histogram_count("+sel+")", at); len(got) != 0 {
					t.Errorf("minute %d %s: %v after it is gone, want nothing (stale)", i, src, got)
				}
				continue
			}
			count[src] += float64(len(vs))
			sum[src] += sumOf(vs)
			if got := one(t, prom, "histogram_count("+sel+")", at); got != count[src] {
				t.Errorf("minute %d %s: histogram_count %v, want %v", i, src, got, count[src])
			}
			if got := one(t, prom, "histogram_sum("+sel+")", at); got != sum[src] {
				t.Errorf("minute %d %s: histogram_sum %v, want %v", i, src, got, sum[src])
			}
			minute := "rate(" + sel + "[61s])" // this sample less the minute before's, per second
			perSecond := 60.0
			if i == 0 {
				minute, perSecond = sel, 1 // the first: the running histogram is the minute's
			}
			// The minute's buckets, read back, are exactly its values'.
			if got, want := bucketsOf(t, prom, minute, at, perSecond), promBuckets(vs); !bucketsNear(got, want) {
				t.Errorf("minute %d %s: buckets of %s\n%v\nwant\n%v", i, src, minute, got, want)
			}
			for _, q := range []float64{0.5, 0.95, 0.99} {
				got := one(t, prom, fmt.Sprintf("histogram_quantile(%g, %s)", q, minute), at)
				e := quantileError(vs, q, got)
				worst = max(worst, e)
				if e > 0.011 {
					t.Errorf("minute %d %s: histogram_quantile(%g) %v, nearest rank %v (%.2f %%)", i, src, q, got, nearestRank(vs, q), 100*e)
				}
			}
		}
		if i == 0 || vals["web.2"] == nil {
			continue
		}
		// Across dynos: the sum of their rates is the merged minute.
		merged := append(slices.Clone(vals["web.1"]), vals["web.2"]...)
		for _, q := range []float64{0.5, 0.95, 0.99} {
			got := one(t, prom, fmt.Sprintf(`histogram_quantile(%g, sum(rate(db_latency{drainmeter_rollup="dyno"}[61s])))`, q), at)
			e := quantileError(merged, q, got)
			worstAll = max(worstAll, e)
			if e > 0.011 {
				t.Errorf("minute %d across dynos: histogram_quantile(%g) %v, nearest rank %v (%.2f %%)", i, q, got, nearestRank(merged, q), 100*e)
			}
		}
	}
	t.Logf("Prometheus 2.42 native histograms: worst quantile error per source %.3f %%, across dynos %.3f %%", 100*worst, 100*worstAll)

	// VictoriaMetrics 1.79 keeps the gauges and drops the histograms.
	if got := vm.Export(t, `{__name__="db_latency"}`); len(got) != 0 {
		t.Errorf("VictoriaMetrics stored native histograms: %+v", got)
	}
	if got := vm.Export(t, `{__name__="db_latency_max",source="web.1"}`); len(got) != 1 || len(got[0].Values) != len(minutes) {
		t.Errorf("VictoriaMetrics db_latency_max: %+v", got)
	}
}

// one runs an instant query whose result is one sample, and returns it.
func one(t *testing.T, p *promtest.Prometheus, expr string, at time.Time) float64 {
	t.Helper()
	got := p.Query(t, expr, at)
	if len(got) != 1 {
		t.Errorf("%s at %s: %v, want one sample", expr, at.UTC().Format(time.TimeOnly), got)
		return math.NaN()
	}
	return got[0].Value
}

func sumOf(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

// quantileError is the relative error of got, Prometheus' estimate of the
// q-quantile of vs, against the exact nearest rank: the ceil(q·n)-th
// smallest value. Where q·n is a whole number k, Prometheus' rank q·n
// falls on the boundary between the k-th and the next value, and its float
// arithmetic (rate's per-second counts are n/60) lands on either side of
// it: the error is then against the nearer of the two.
func quantileError(vs []float64, q, got float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	k := int(math.Ceil(q*float64(len(s)))) - 1
	e := math.Abs(got-s[k]) / s[k]
	if r := q * float64(len(s)); r == math.Trunc(r) && k+1 < len(s) {
		e = min(e, math.Abs(got-s[k+1])/s[k+1])
	}
	return e
}

// promBuckets are values' native-histogram buckets at schema 6: upper bound
// (2^(i/64), i = the OTLP-spec bucket + 1) → count.
func promBuckets(vs []float64) map[float64]float64 {
	out := map[float64]float64{}
	for _, v := range vs {
		out[math.Exp2(float64(rollup.MapToIndex(v, rollup.Scale)+1)/64)]++
	}
	return out
}

func bucketsNear(a, b map[float64]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for ub, n := range a {
		var m float64
		found := false
		for ub2, n2 := range b {
			if math.Abs(ub-ub2) <= 1e-9*ub {
				m, found = n2, true
			}
		}
		if !found || math.Abs(n-m) > 1e-6 {
			return false
		}
	}
	return true
}

// bucketsOf runs an instant query whose result is one native histogram and
// returns its non-empty buckets, upper bound → count × scale.
func bucketsOf(t *testing.T, p *promtest.Prometheus, expr string, at time.Time, scale float64) map[float64]float64 {
	t.Helper()
	q := url.Values{"query": {expr}, "time": {strconv.FormatInt(at.Unix(), 10)}}
	resp, err := http.Get(p.URL + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Histogram [2]json.RawMessage
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) != 1 {
		t.Fatalf("%s: %v %+v", expr, err, body)
	}
	var h struct {
		Buckets [][4]json.RawMessage
	}
	if err := json.Unmarshal(body.Data.Result[0].Histogram[1], &h); err != nil {
		t.Fatal(err)
	}
	out := map[float64]float64{}
	for _, b := range h.Buckets {
		var ub, n string
		if json.Unmarshal(b[2], &ub) != nil || json.Unmarshal(b[3], &n) != nil {
			t.Fatalf("%s: bucket %s", expr, b)
		}
		u, _ := strconv.ParseFloat(ub, 64)
		c, _ := strconv.ParseFloat(n, 64)
		if c != 0 {
			out[u] = c * scale
		}
	}
	return out
}

// TestNativeHistogramFirstMinute: with counters held (COUNTER_HOLD), a new
// native histogram is preceded by an empty one a minute before, as a
// counter by a 0, so that increase() and rate() see its first minute.
func TestNativeHistogramFirstMinute(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{NativeHistograms: true})
	first := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	minutes, values := nativeWorkload(t, first)
	b := newBackend(Config{Hold: time.Hour})
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, Histograms: outlet.NativeHistograms}
	enc, err := b.Encode(drain, o, minutes[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := post(t, b, prom.WriteURL(), enc); slices.ContainsFunc(st, func(s int) bool { return s/100 != 2 }) {
		t.Fatalf("Prometheus answered %v", st)
	}
	if got := one(t, prom, `histogram_count(db_latency{source="web.1"})`, first); got != 0 {
		t.Errorf("the minute before the first: histogram_count %v, want 0", got)
	}
	want := float64(len(values[0]["web.1"]))
	if got := one(t, prom, `histogram_count(db_latency{source="web.1"}) - histogram_count(db_latency{source="web.1"} offset 1m)`, first.Add(time.Minute)); got != want {
		t.Errorf("the first minute's count over the minute before: %v, want %v", got, want)
	}
	if got := one(t, prom, `histogram_count(increase(db_latency{source="web.1"}[90s]))`, first.Add(time.Minute)); !(got >= want) {
		t.Errorf("increase over the first minute: %v, want at least %v", got, want)
	}
}
