package remotewrite

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// holdMinutes are minutes 0 … n-1 from first of a drain that logs a
// heartbeat sample every minute and count#sparse.errors=1 in minutes 0 and
// 20 only (a rare event), and a measure rare.latency in minute 0.
func holdMinutes(t *testing.T, first time.Time, n int) []*rollup.Minute {
	var out []*rollup.Minute
	for i := range n {
		start := first.Add(time.Duration(i) * time.Minute)
		at := start.Add(10 * time.Second)
		ms := []parse.Measurement{meas(parse.Sample, "heartbeat", "web.1", 1, at)}
		if i == 0 || i == 20 {
			ms = append(ms, withType(meas(parse.Count, "sparse.errors", "web.1", 1, at), "web"))
		}
		if i == 0 {
			ms = append(ms, meas(parse.Measure, "rare.latency", "web.1", 40, at))
		}
		out = append(out, minuteOf(t, "d1", start, ms))
	}
	return out
}

// postHeld encodes minutes in order as a lane does and posts every request to
// Prometheus, failing on any answer but 204.
func postHeld(t *testing.T, b *Backend, d *outlet.Destination, url string, minutes []*rollup.Minute) {
	t.Helper()
	o := &outlet.Outlet{Kind: outlet.RemoteWrite, URL: url}
	var prev *outlet.Totals
	for _, m := range minutes {
		enc, err := b.Encode(d, o, m, prev)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range enc.Reqs {
			if res := b.Send(t.Context(), o, r); res.Outcome != outlet.Accepted || res.Status != http.StatusNoContent {
				t.Fatalf("minute %v: %+v", time.Unix(m.Start, 0).UTC(), res)
			}
		}
		prev = enc.Totals
	}
}

// TestCounterHoldPrometheus is issue 18's acceptance for counters: a
// counter incremented once at minute 0 makes the alert
// increase(x_total[5m]) > 0 fire when Prometheus 2.42 evaluates it at each
// of minutes 1 … 5, and x_total - x_total offset 5m is exactly 1 at minute
// 5; incremented again at minute 20, the same at minutes 21 … 25. Without
// the hold (COUNTER_HOLD=0) the alert is empty from minute 2 on: what the
// hold fixes.
func TestCounterHoldPrometheus(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	first := time.Now().Truncate(time.Minute).Add(-40 * time.Minute)
	minutes := holdMinutes(t, first, 32)
	postHeld(t, newBackend(Config{Hold: time.Hour}), &outlet.Destination{ID: "d1", Name: "held"}, prom.WriteURL(), minutes)
	postHeld(t, newBackend(Config{}), &outlet.Destination{ID: "d1", Name: "unheld"}, prom.WriteURL(), minutes)

	minute := func(k int) time.Time { return first.Add(time.Duration(k) * time.Minute) }
	for _, rollupKind := range []string{"dyno", "process_type"} {
		sel := fmt.Sprintf(`sparse_errors_total{job="held",drainmeter_rollup=%q}`, rollupKind)
		for _, from := range []int{0, 20} {
			for k := from + 1; k <= from+5; k++ {
				if got := prom.Query(t, `increase(`+sel+`[5m]) > 0`, minute(k)); len(got) != 1 {
					t.Errorf("%s: the alert increase(…[5m]) > 0 at minute %d: %+v, want it firing", rollupKind, k, got)
				}
			}
			got := prom.Query(t, sel+` - `+sel+` offset 5m`, minute(from+5))
			if len(got) != 1 || got[0].Value != 1 {
				t.Errorf("%s: x_total - x_total offset 5m at minute %d = %+v, want exactly 1", rollupKind, from+5, got)
			}
		}
		// The running total, every minute in between (held), at 1 then 2.
		for k := 1; k <= 31; k++ {
			want := 1.0
			if k > 20 {
				want = 2
			}
			if got := prom.Query(t, sel, minute(k)); len(got) != 1 || got[0].Value != want || !got[0].Time.Equal(minute(k)) {
				t.Errorf("%s at minute %d: %+v, want %v sent at that minute", sel, k, got, want)
			}
		}
	}
	// The measure's _count and _sum are held the same way; its quantiles
	// (minute 0's) end after their minute.
	if got := prom.Query(t, `rare_latency_count{job="held"} - rare_latency_count{job="held"} offset 5m`, minute(5)); len(got) != 1 || got[0].Value != 1 {
		t.Errorf("rare_latency_count - offset 5m at minute 5: %+v, want 1", got)
	}
	if got := prom.Query(t, `rare_latency{job="held",quantile="0.5"}`, minute(3)); len(got) != 0 {
		t.Errorf("rare_latency's quantile is not stale at minute 3: %+v", got)
	}
	// One sample a minute, and one zero before the first.
	if got := prom.Query(t, `count_over_time(sparse_errors_total{job="held",drainmeter_rollup="dyno"}[1h])`, minute(31)); len(got) != 1 || got[0].Value != 32 {
		t.Errorf("samples of the held counter: %+v, want 32 (a zero, then minutes 0 … 30 stamped at their ends)", got)
	}
	// Without the hold, the rare event is invisible to the alert.
	if got := prom.Query(t, `increase(sparse_errors_total{job="unheld",drainmeter_rollup="dyno"}[5m]) > 0`, minute(3)); len(got) != 0 {
		t.Errorf("without the hold the alert fires at minute 3 (%+v): this test could not fail", got)
	}
}

// TestCounterHoldEnds: a held counter is sent Hold after its last
// increment, then marked stale; its running total restarts if it comes
// back later than Forget.
func TestCounterHoldEnds(t *testing.T) {
	b := newBackend(Config{Hold: 3 * time.Minute})
	first := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	minutes := holdMinutes(t, first, 8)
	var prev *outlet.Totals
	var sent []string
	for i, m := range minutes {
		enc, err := b.Encode(drain, nil, m, prev)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range enc.Reqs {
			for _, d := range decodeRequest(t, r) {
				if d.name() == "sparse_errors_total" && d.label("source") == "web.1" {
					var ss []string
					for _, x := range d.Samples {
						ss = append(ss, fmt.Sprintf("%v@%d", x, x.Ts/1000-m.Start+60*int64(i)))
					}
					sent = append(sent, fmt.Sprintf("%d:%v", i, ss))
				}
			}
		}
		prev = enc.Totals
	}
	want := "[0:[0@0 1@60] 1:[1@120] 2:[1@180] 3:[1@240] 4:[stale@300]]"
	if got := fmt.Sprint(sent); got != want {
		t.Errorf("sparse_errors_total{source=web.1} per minute:\n%s\nwant\n%s", got, want)
	}
}
