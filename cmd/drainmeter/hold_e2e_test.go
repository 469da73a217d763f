package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/promtest"
)

// TestCounterHoldEndToEnd is issue 18's acceptance for rare events, through
// drainmeter web (in-process, on a clock 30 times as fast as the wall's,
// starting 40 minutes ago) into a real Prometheus 2.42 by remote write: an
// app that logs nothing but count#sparse.errors=1 at minute 0 and again at
// minute 20. The alert increase(sparse_errors_total[5m]) > 0 holds when
// Prometheus evaluates it at each of minutes 1 … 5 and 21 … 25, and
// x_total - x_total offset 5m is exactly 1 at minutes 5 and 25: the counter
// is held (sent every minute with its running total, COUNTER_HOLD's
// default hour) although the app is silent, and its first sample is
// preceded by a 0.
func TestCounterHoldEndToEnd(t *testing.T) {
	t.Parallel()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	const speed = 30
	first := time.Now().Truncate(time.Minute).Add(-40 * time.Minute)
	began := time.Now()
	clock := func() time.Time { return first.Add(time.Since(began) * speed) }
	minute := func(k int) time.Time { return first.Add(time.Duration(k) * time.Minute) }
	s := startServerWith(t, process{clock: clock}, "DRAIN_SECRET=s3cret", "REMOTE_WRITE_URL="+prom.WriteURL(), "GRACE=15s")

	sel := func(rollup string) string {
		return fmt.Sprintf(`sparse_errors_total{job="quiet-app",drainmeter_rollup=%q}`, rollup)
	}
	event := func(k int) {
		t.Helper()
		for clock().Before(minute(k).Add(10 * time.Second)) {
			time.Sleep(20 * time.Millisecond)
		}
		body := herokuLine(clock(), "quiet-app", "web.1", "count#sparse.errors=1")
		if resp := s.do(t, post{user: "quiet-app", pass: "s3cret", body: []byte(body)}); resp.StatusCode != http.StatusOK {
			t.Fatalf("minute %d: %d", k, resp.StatusCode)
		}
	}
	event(0)
	event(20)
	// Minute 26 posted (held: the app sent nothing since minute 20).
	eventually(t, 3*time.Minute, "minute 26 in Prometheus", func() bool {
		got := prom.Query(t, sel("dyno"), minute(27))
		return len(got) == 1 && got[0].Time.Equal(minute(27))
	})
	for _, rollup := range []string{"dyno", "process_type", "app"} {
		for _, from := range []int{0, 20} {
			for k := from + 1; k <= from+5; k++ {
				if got := prom.Query(t, `increase(`+sel(rollup)+`[5m]) > 0`, minute(k)); len(got) != 1 {
					t.Errorf("%s: the alert increase(…[5m]) > 0 at minute %d: %+v, want it firing", rollup, k, got)
				}
			}
			got := prom.Query(t, sel(rollup)+` - `+sel(rollup)+` offset 5m`, minute(from+5))
			if len(got) != 1 || got[0].Value != 1 {
				t.Errorf("%s: x_total - x_total offset 5m at minute %d = %+v, want exactly 1", rollup, from+5, got)
			}
		}
		// Held every minute in between, at 1 then 2, each sample sent at
		// its minute's end.
		for k := 1; k <= 26; k++ {
			want := 1.0
			if k > 20 {
				want = 2
			}
			if got := prom.Query(t, sel(rollup), minute(k)); len(got) != 1 || got[0].Value != want || !got[0].Time.Equal(minute(k)) {
				t.Errorf("%s at minute %d: %+v, want %v sent at that minute", sel(rollup), k, got, want)
			}
		}
	}
	if t.Failed() {
		out := s.out.String()
		if i := strings.LastIndex(out, "\n"); i > 4000 {
			out = out[len(out)-4000:]
		}
		t.Logf("web's output (tail):\n%s", out)
	}
}
