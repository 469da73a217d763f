package remotewrite

import (
	"bytes"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// These tests post through outlet.Engine to real receivers (package
// promtest): Prometheus 2.42 and VictoriaMetrics 1.79.5.

// recorder is a reverse proxy in front of a receiver that keeps the status
// of every answer.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []int
}

func newRecorder(t *testing.T, target string) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		r.mu.Lock()
		r.got = append(r.got, resp.StatusCode)
		r.mu.Unlock()
		return nil
	}
	r.srv = httptest.NewServer(proxy)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) statuses() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

type harness struct {
	engine *outlet.Engine
	reg    *stats.Registry
}

// newHarness runs an engine whose drains (ID → URL) each have one remote
// write outlet.
func newHarness(t *testing.T, urls map[string]string) *harness {
	t.Helper()
	d := outlettest.NewDests()
	for id, u := range urls {
		d.Put(&outlet.Destination{ID: id, Name: "app-" + id, Outlets: []outlet.Outlet{{Kind: outlet.RemoteWrite, URL: u}}})
	}
	cfg := outlet.DefaultConfig
	cfg.UserAgent = "drainmeter/test"
	cfg.MinBackoff, cfg.MaxBackoff, cfg.Timeout = 20*time.Millisecond, 200*time.Millisecond, 10*time.Second
	reg := stats.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	client := outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)
	backends := map[outlet.Kind]outlet.Backend{outlet.RemoteWrite: New(client, Config{})}
	h := &harness{reg: reg,
		engine: outlet.NewEngine(outlet.NewSender(cfg, backends, reg, log, time.Now), d, reg, log, time.Now)}
	h.engine.Start()
	t.Cleanup(func() { _ = h.engine.Shutdown(t.Context()) })
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimSpace(p))
	return len(p), nil
}

// wait waits until the engine has nothing pending and cond holds.
func (h *harness) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.engine.Pending() > 0 || !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, h.engine.Lanes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workload is what a drain logs in minute i of the real-receiver tests.
type workload struct {
	start    []time.Time
	counts   []float64   // jobs.done on worker.1, per minute
	measures [][]float64 // db.latency on web.1, per minute
	memory   []float64   // memory_rss on web.1: only in minutes 0-2
}

func newWorkload(first time.Time, n int) *workload {
	w := &workload{}
	for i := range n {
		w.start = append(w.start, first.Add(time.Duration(i)*time.Minute))
		w.counts = append(w.counts, float64(3*i+1))
		var vs []float64
		for k := 1; k <= 200; k++ {
			vs = append(vs, float64((k*k*(i+3))%997+1)) // integers: sums are exact
		}
		w.measures = append(w.measures, vs)
		if i < 3 {
			w.memory = append(w.memory, 100+float64(i))
		}
	}
	return w
}

func (w *workload) minute(t *testing.T, drain string, i int) *rollup.Minute {
	at := w.start[i].Add(time.Second)
	ms := []parse.Measurement{
		withType(meas(parse.Count, "jobs.done", "worker.1", w.counts[i], at), "worker"),
		meas(parse.Sample, "queue.depth", "", float64(i), at),
	}
	for _, v := range w.measures[i] {
		ms = append(ms, withType(meas(parse.Measure, "db.latency", "web.1", v, at), "web"))
	}
	if i < len(w.memory) {
		ms = append(ms, meas(parse.Sample, "memory_rss", "web.1", w.memory[i], at))
	}
	ms = append(ms, uniques("users", "web.1", at, "a", "b", "c")[:1+i%3]...)
	return minuteOf(t, drain, w.start[i], ms)
}

// encode encodes minutes [0, n) of the workload as the lane does, returning
// the encodings and the total of their points.
func (w *workload) encode(t *testing.T, drain *outlet.Destination, n int) ([]outlet.Encoded, uint64) {
	b := newBackend(Config{})
	var prev *outlet.Totals
	var encs []outlet.Encoded
	var points uint64
	for i := range n {
		enc, err := b.Encode(drain, nil, w.minute(t, drain.ID, i), prev)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range enc.Reqs {
			points += uint64(r.Points)
		}
		encs = append(encs, enc)
		prev = enc.Totals
	}
	return encs, points
}

// nearestRank is the exact nearest-rank q-quantile of vs.
func nearestRank(vs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	switch {
	case q <= 0:
		return s[0]
	case q >= 1:
		return s[len(s)-1]
	}
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

// TestRealReceivers posts five consecutive recent minutes to Prometheus and
// VictoriaMetrics through the engine and reads them back; then checks an
// identical re-post, and an older minute after newer ones.
func TestRealReceivers(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	vm := promtest.StartVictoriaMetrics(t)
	pr, vr := newRecorder(t, prom.URL), newRecorder(t, vm.URL)
	h := newHarness(t, map[string]string{"p": pr.srv.URL + "/api/v1/write", "v": vr.srv.URL + "/api/v1/write"})

	const n = 5
	w := newWorkload(time.Now().Truncate(time.Minute).Add(-12*time.Minute), n)
	for i := range n {
		h.engine.Closed([]*rollup.Minute{w.minute(t, "p", i), w.minute(t, "v", i)})
	}
	encs, points := w.encode(t, &outlet.Destination{ID: "p", Name: "app-p"}, n)
	h.wait(t, "every minute posted", func() bool {
		return h.reg.Drain("p").Get(stats.Posted) == points && h.reg.Drain("v").Get(stats.Posted) == points
	})
	for _, rec := range []*recorder{pr, vr} {
		if got := rec.statuses(); len(got) != n || slices.ContainsFunc(got, func(s int) bool { return s != http.StatusNoContent }) {
			t.Fatalf("answers %v, want %d × 204", got, n)
		}
	}

	at := func(i int) time.Time { return w.start[i].Add(time.Minute) }
	one := func(t *testing.T, expr string, i int) float64 {
		t.Helper()
		got := prom.Query(t, expr, at(i))
		if len(got) != 1 {
			t.Fatalf("minute %d: %s = %+v, want one sample", i, expr, got)
		}
		if !got[0].Time.Equal(at(i)) {
			t.Errorf("minute %d: %s at %v", i, expr, got[0].Time)
		}
		return got[0].Value
	}
	t.Run("prometheus", func(t *testing.T) {
		var total, count, valueSum float64
		for i := range n {
			total += w.counts[i]
			count += float64(len(w.measures[i]))
			valueSum += sum(w.measures[i])
			for _, kind := range []string{"dyno", "process_type"} {
				if got := one(t, `jobs_done_total{job="app-p",drainmeter_rollup="`+kind+`"}`, i); got != total {
					t.Errorf("minute %d: %s jobs_done_total = %v, want %v", i, kind, got, total)
				}
			}
			if got := one(t, `db_latency_count{source="web.1"}`, i); got != count {
				t.Errorf("minute %d: _count = %v, want %v", i, got, count)
			}
			if got := one(t, `db_latency_sum{source="web.1"}`, i); got != valueSum {
				t.Errorf("minute %d: _sum = %v, want %v", i, got, valueSum)
			}
			for _, q := range []string{"0", "0.5", "0.95", "0.99", "1"} {
				qf, _ := strconv.ParseFloat(q, 64)
				want := nearestRank(w.measures[i], qf)
				got := one(t, `db_latency{source="web.1",drainmeter_rollup="dyno",quantile="`+q+`"}`, i)
				if math.Abs(got-want) > 0.01*want || ((q == "0" || q == "1") && got != want) {
					t.Errorf("minute %d: quantile %s = %v, want %v", i, q, got, want)
				}
			}
			if got := one(t, `queue_depth{job="app-p"}`, i); got != float64(i) {
				t.Errorf("minute %d: queue_depth = %v", i, got)
			}
			if got := one(t, `users`, i); got != float64(1+i%3) {
				t.Errorf("minute %d: users = %v", i, got)
			}
		}
		// memory_rss was in minutes 0-2: carried 30 s after its last
		// sample, stale (gone) from the end of minute 3, though Prometheus'
		// lookback is 5 minutes.
		if got := prom.Query(t, `memory_rss`, at(2).Add(30*time.Second)); len(got) != 1 || got[0].Value != w.memory[2] {
			t.Errorf("memory_rss after minute 2: %+v", got)
		}
		for _, ts := range []time.Time{at(3), at(3).Add(30 * time.Second), at(4)} {
			if got := prom.Query(t, `memory_rss`, ts); len(got) != 0 {
				t.Errorf("memory_rss at %v is not stale: %+v", ts, got)
			}
		}
		// Stored once per minute.
		if got := one(t, `count_over_time(jobs_done_total{drainmeter_rollup="dyno"}[15m])`, n-1); got != n {
			t.Errorf("%v samples of jobs_done_total, want %d", got, n)
		}
	})

	t.Run("victoriametrics", func(t *testing.T) {
		checkExport := func(match string, want []float64) {
			t.Helper()
			got := vm.Export(t, match)
			if len(got) != 1 {
				t.Fatalf("%s: %d series: %+v", match, len(got), got)
			}
			var ts []int64
			for i := range want {
				ts = append(ts, at(i).UnixMilli())
			}
			if !slices.Equal(got[0].Values, want) || !slices.Equal(got[0].Timestamps, ts) {
				t.Errorf("%s: %v at %v, want %v at %v", match, got[0].Values, got[0].Timestamps, want, ts)
			}
		}
		var totals, counts, sums, p99 []float64
		var total, count, valueSum float64
		for i := range n {
			total += w.counts[i]
			count += float64(len(w.measures[i]))
			valueSum += sum(w.measures[i])
			totals, counts, sums = append(totals, total), append(counts, count), append(sums, valueSum)
			p99 = append(p99, nearestRank(w.measures[i], 0.99))
		}
		checkExport(`jobs_done_total{job="app-v",drainmeter_rollup="dyno"}`, totals)
		checkExport(`jobs_done_total{job="app-v",drainmeter_rollup="process_type"}`, totals)
		checkExport(`db_latency_count{drainmeter_rollup="dyno"}`, counts)
		checkExport(`db_latency_sum{drainmeter_rollup="dyno"}`, sums)
		got := vm.Export(t, `db_latency{drainmeter_rollup="dyno",quantile="0.99"}`)
		if len(got) != 1 || len(got[0].Values) != n {
			t.Fatalf("p99: %+v", got)
		}
		for i, v := range got[0].Values {
			if math.Abs(v-p99[i]) > 0.01*p99[i] {
				t.Errorf("minute %d: p99 %v, want %v", i, v, p99[i])
			}
		}
		// memory_rss: three values, then the stale marker (a NaN).
		mem := vm.Export(t, `memory_rss`)
		if len(mem) != 1 || len(mem[0].Values) < 3 || !slices.Equal(mem[0].Values[:3], w.memory) {
			t.Fatalf("memory_rss: %+v", mem)
		}
		if vs := mem[0].Values[3:]; len(vs) != 1 || !math.IsNaN(vs[0]) || mem[0].Timestamps[3] != at(3).UnixMilli() {
			t.Errorf("memory_rss after its values: %v at %v, want a stale marker at %d", vs, mem[0].Timestamps[3:], at(3).UnixMilli())
		}
	})

	t.Run("identical re-post", func(t *testing.T) {
		// Prometheus: 204 and stored once. VictoriaMetrics: 204 and stored
		// twice (why an accepted request is never resent).
		b := newBackend(Config{})
		last := encs[n-1].Reqs[0]
		o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: prom.WriteURL()}
		if res := b.Send(t.Context(), o, last); res.Outcome != outlet.Accepted || res.Status != http.StatusNoContent {
			t.Fatalf("Prometheus: %+v", res)
		}
		if got := one(t, `count_over_time(jobs_done_total{drainmeter_rollup="dyno"}[15m])`, n-1); got != n {
			t.Errorf("Prometheus: %v samples after the re-post, want %d", got, n)
		}
		vencs, _ := w.encode(t, &outlet.Destination{ID: "v", Name: "app-v"}, n)
		o.URL = vm.WriteURL()
		if res := b.Send(t.Context(), o, vencs[n-1].Reqs[0]); res.Outcome != outlet.Accepted || res.Status != http.StatusNoContent {
			t.Fatalf("VictoriaMetrics: %+v", res)
		}
		if got := vm.Export(t, `jobs_done_total{job="app-v",drainmeter_rollup="dyno"}`); len(got) != 1 || len(got[0].Values) != n+1 {
			t.Errorf("VictoriaMetrics after the re-post: %+v", got)
		}
	})

	t.Run("older minute after newer", func(t *testing.T) {
		// Prometheus refuses it (400, the whole request): counted as
		// rejected, not retried. VictoriaMetrics takes it.
		older := newWorkload(w.start[0].Add(-time.Minute), 1)
		before := len(pr.statuses())
		h.engine.Closed([]*rollup.Minute{older.minute(t, "p", 0), older.minute(t, "v", 0)})
		h.wait(t, "the older minute dealt with", func() bool {
			return h.reg.Drain("p").Get(stats.PostRejected) > 0 && h.reg.Drain("v").Get(stats.Posted) > points
		})
		time.Sleep(300 * time.Millisecond) // more than the backoff: a retry would show
		if got := pr.statuses()[before:]; !slices.Equal(got, []int{http.StatusBadRequest}) {
			t.Errorf("Prometheus answered %v, want one 400", got)
		}
		if got, want := h.reg.Drain("p").Get(stats.PostRejected), h.reg.Drain("v").Get(stats.Posted)-points; got != want {
			t.Errorf("%d points rejected, want %d", got, want)
		}
		if got := prom.Query(t, `jobs_done_total{drainmeter_rollup="dyno"}`, older.start[0].Add(time.Minute)); len(got) != 0 {
			t.Errorf("Prometheus stored some of the older minute: %+v", got)
		}
		for _, st := range h.engine.Lanes() {
			if st.Waiting != 0 || (st.Drain == "p" && st.State != outlet.StateGivingUp) {
				t.Errorf("lane %+v", st)
			}
		}
	})
}

// TestPrometheusOutOfOrderWindow: with out_of_order_time_window, Prometheus
// takes an older minute after newer ones.
func TestPrometheusOutOfOrderWindow(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{OutOfOrderWindow: 30 * time.Minute})
	h := newHarness(t, map[string]string{"p": prom.WriteURL()})
	w := newWorkload(time.Now().Truncate(time.Minute).Add(-10*time.Minute), 3)
	h.engine.Closed([]*rollup.Minute{w.minute(t, "p", 1), w.minute(t, "p", 2)})
	h.wait(t, "two minutes posted", func() bool { return h.reg.Drain("p").Get(stats.Posted) > 0 })
	posted := h.reg.Drain("p").Get(stats.Posted)
	h.engine.Closed([]*rollup.Minute{w.minute(t, "p", 0)})
	h.wait(t, "the older minute posted", func() bool { return h.reg.Drain("p").Get(stats.Posted) > posted })
	if got := h.reg.Drain("p").Get(stats.PostRejected); got != 0 {
		t.Errorf("%d rejected", got)
	}
	got := prom.Query(t, `queue_depth`, w.start[0].Add(time.Minute))
	if len(got) != 1 || got[0].Value != 0 || !got[0].Time.Equal(w.start[0].Add(time.Minute)) {
		t.Errorf("the older minute: %+v", got)
	}
}
