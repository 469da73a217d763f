package main

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
)

// TestValuesCannotPoisonCounters is issue 19's acceptance run for values:
// count#c=1.7e308 twice (and -1.7e308, and measure#m=1e308 twice), then a
// minute whose count is negative, through remote write into a real
// Prometheus 2.42. Every c_total and m_sum sample is finite, no counter
// sample decreases, and the status page counts the values refused
// (bad_value) and the negative minute kept out of the counter (kept_out).
//
// Three consecutive minutes are sent at once, stamped in the past, with a
// GRACE that closes the first one a few seconds later: the first two are
// posted as they close (the status page shows them), the last at SIGTERM.
func TestValuesCannotPoisonCounters(t *testing.T) {
	t.Parallel() // about 70 s: the second minute closes a minute after the first
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	now := time.Now()
	f := now.Truncate(time.Minute)
	m1, m2, m3 := f.Add(-2*time.Minute), f.Add(-time.Minute), f
	grace := now.Add(8 * time.Second).Sub(m1.Add(time.Minute)).Round(time.Second) // m1 closes 8 s from now
	s := startServer(t, "REMOTE_WRITE_URL="+prom.WriteURL(), "APP_NAME=poison", "GRACE="+grace.String(), "SELF_METRICS=false")
	body := appLine(m1.Add(5*time.Second), "web.1", "count#c=100 count#c=1.7e308 count#c=1.7976931348623157e308 count#c=-1.7e308 measure#m=1e308 measure#m=1e308 measure#m=4") +
		appLine(m2.Add(5*time.Second), "web.1", "count#c=-5 measure#m=2") +
		appLine(m3.Add(5*time.Second), "web.1", "count#c=1 measure#m=1")
	if resp := s.do(t, post{user: "app", pass: "x", body: []byte(body)}); resp.StatusCode != 200 {
		t.Fatalf("POST /logs: %d", resp.StatusCode)
	}
	type drainStatus struct {
		Rejected map[string]uint64 `json:"rejected"`
		KeptOut  uint64            `json:"kept_out"`
	}
	var st drainStatus
	eventually(t, 100*time.Second, "kept_out on /status.json", func() bool {
		code, b := get(t, s.url+"/status.json", "", "")
		if code != 200 {
			t.Fatalf("/status.json: %d %s", code, b)
		}
		var snap struct{ Drains []drainStatus }
		if err := json.Unmarshal([]byte(b), &snap); err != nil || len(snap.Drains) != 1 {
			t.Fatalf("/status.json: %v %s", err, b)
		}
		st = snap.Drains[0]
		return st.KeptOut > 0
	})
	// c's minute-2 total is negative: one series per source (web.1, and
	// the process type web) and the app rollup kept out of its counter.
	if st.Rejected["bad_value"] != 5 || st.KeptOut != 3 {
		t.Errorf("status: bad_value %d, kept_out %d; want 5 refused values and 3 series kept out", st.Rejected["bad_value"], st.KeptOut)
	}
	// The status page itself: the refused values under their reason, the
	// series kept out among the counters.
	if code, page := get(t, s.url+"/", "", ""); code != 200 || !strings.Contains(page, `<tr data-reason="bad_value"><th scope="row">bad_value</th><td>5</td>`) ||
		!strings.Contains(page, `data-counter="kept_out"><dt>counts kept out of counters (negative minute totals)</dt><dd>3</dd>`) {
		t.Errorf("the status page (%d) does not show bad_value 5 and kept_out 3:\n%s", code, page)
	}
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	// Prometheus, at each minute's end, for both sources.
	want := map[string][3]float64{"c_total": {100, 100, 101}, "m_sum": {4, 6, 7}, "m_count": {1, 2, 3}}
	for name, ws := range want {
		for _, src := range []string{"web.1", "web"} {
			prev := math.Inf(-1)
			for i, m := range []time.Time{m1, m2, m3} {
				at := m.Add(time.Minute)
				var got []float64
				for _, smp := range prom.Query(t, name+`{job="poison", source="`+src+`"}`, at) {
					if smp.Time.Equal(at) {
						got = append(got, smp.Value)
					}
				}
				if len(got) != 1 || math.IsInf(got[0], 0) || math.IsNaN(got[0]) || got[0] < prev || got[0] != ws[i] {
					t.Errorf("%s{source=%q} at minute %d: %v, want %v (finite, never lower than %v)", name, src, i+1, got, ws[i], prev)
					continue
				}
				prev = got[0]
			}
		}
	}
	// No reset anywhere: Prometheus' own view of the counter.
	for _, smp := range prom.Query(t, `resets(c_total{job="poison"}[10m])`, m3.Add(time.Minute)) {
		if smp.Value != 0 {
			t.Errorf("resets(c_total{source=%q}) = %v, want 0", smp.Metric["source"], smp.Value)
		}
	}
	if sum := summaryTotals(s.out.String(), "default"); sum["kept_out"] != 3 || sum["pairs_bad_value"] != 5 {
		t.Errorf("drain summary lines: kept_out %d, pairs_bad_value %d; want 3, 5", sum["kept_out"], sum["pairs_bad_value"])
	}
	if strings.Contains(s.out.String(), "+Inf") || strings.Contains(s.out.String(), "NaN") {
		t.Errorf("a non-finite value in the output:\n%s", s.out)
	}
}

// TestStoredInfiniteTotalsRepaired: running totals an earlier version
// stored in Postgres as +Inf (count#c=1.7e308 twice) are repaired when the
// web starts: the series starts again, and Prometheus gets finite samples,
// not +Inf for as long as the series lives.
func TestStoredInfiniteTotalsRepaired(t *testing.T) {
	t.Parallel() // waits for a minute to close and be posted
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	mustCLI(t, env, "migrate")
	id, secret := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "shop", "--remote-write-url", prom.WriteURL()))
	now := time.Now()
	minute := now.Truncate(time.Minute)
	before := minute.Add(-time.Minute).Unix()
	poisoned := (&outlet.Totals{Minute: before, Series: map[string]*outlet.Running{
		"c\x00web.1": {Kind: parse.Count, Start: before - 3600, Sum: math.Inf(1), Last: before},
	}}).AppendBinary(nil)
	pool := pgtest.MustPool(t, dsn)
	if _, err := pool.Exec(context.Background(), `INSERT INTO lanes (drain_id, outlet, posted_through, encoding, totals)
		VALUES ($1, 'remotewrite', $2, $3, $4)`, id, before, (&outlet.Outlet{Kind: outlet.RemoteWrite}).EncodingKey(), poisoned); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, append(env, "GRACE=2s", "PARTIAL_FLUSH_INTERVAL=1s", "SELF_METRICS=false", "PROCESS_TYPE_ROLLUPS=false")...)
	if !strings.Contains(s.out.String(), `msg="running totals that were not finite repaired`) {
		t.Errorf("the repair at start is not logged:\n%s", s.out)
	}
	if resp := s.do(t, post{user: id, pass: secret, body: []byte(appLine(now, "web.1", "count#c=3"))}); resp.StatusCode != 200 {
		t.Fatalf("POST /logs: %d", resp.StatusCode)
	}
	at := minute.Add(time.Minute)
	var got []promtest.Sample
	eventually(t, 150*time.Second, "c_total in Prometheus", func() bool {
		got = prom.Query(t, `c_total{job="shop", source="web.1"}`, at)
		return len(got) == 1 && got[0].Time.Equal(at)
	})
	if v := got[0].Value; v != 3 {
		t.Errorf("c_total after the repair = %v, want 3 (the series started again)", v)
	}
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
}
