package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/pgtest"
)

// TestWrongURLPausesUntilFixed is issue 21's acceptance run for "wrong
// place pauses": two webs on one Postgres; drain shop's OTLP endpoint has
// a wrong path, which the receiver answers 404 ("404 page not found", as
// Prometheus and Go servers do). The lane pauses with the reason, keeping
// its minutes, while the status page says what to fix; two minutes later
// `drains set` from a one-off process (another dyno) fixes the URL, and
// every minute arrives, none twice.
func TestWrongURLPausesUntilFixed(t *testing.T) {
	t.Parallel()
	rcv := fakeotlp.New("")
	var wrong atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/v1/metrics", rcv)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wrong.Add(1)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dsn := pgtest.NewDatabase(t, false)
	const admin = "admin-pw-for-the-test"
	c := newClusterWith(t, dsn, [][]string{{"--name", "shop", "--otlp-endpoint", srv.URL + "/otlp/v1/metrics"}}, "ADMIN_PASSWORD="+admin)
	w1 := c.start(1)
	w2 := c.start(2)
	pool := pgtest.MustPool(t, dsn)
	// Sealed minutes the lane holds back.
	held := func() int {
		var n int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM minutes m JOIN lanes l ON l.drain_id = m.drain_id AND l.outlet = 'otlp'
			WHERE m.sealed_at IS NOT NULL AND m.minute > coalesce(l.posted_through, -1)`).Scan(&n)
		return n
	}
	var paused laneJSON
	var page string
	fixed := make(chan time.Time, 1)
	var resumed atomic.Int64 // after drains set
	watch := func() {
		defer close(fixed)
		deadline := time.Now().Add(150 * time.Second)
		for ; time.Now().Before(deadline); time.Sleep(time.Second) {
			st := outletStatus(t, w2.url, "admin", admin, "shop", "otlp")
			if st.State != "paused" || held() < 2 {
				continue
			}
			paused = st
			_, page = get(t, w1.url+"/", "admin", admin)
			pausedAt, _, _ := laneRow(t, dsn, "shop", "otlp")
			mustCLI(t, c.env[:3], "drains", "set", "shop", "--otlp-endpoint", srv.URL+"/v1/metrics")
			at := time.Now()
			fixed <- at
			for time.Since(at) < time.Minute { // the held minutes go out at once, not at the next probe
				if through, state, _ := laneRow(t, dsn, "shop", "otlp"); state == "ok" && through > pausedAt {
					resumed.Store(int64(time.Since(at)))
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		t.Errorf("the lane never held two minutes paused; last: %+v", outletStatus(t, w2.url, "admin", admin, "shop", "otlp"))
	}
	totals := c.load(24, 170*time.Second, 10, 40, 0.05, map[time.Duration]func(){time.Second: watch})
	at, ok := <-fixed
	if !ok {
		t.FailNow()
	}
	r := runningTotals(totals)
	waitPosted(t, dsn, 1, r.minutes[len(r.minutes)-1], 2*time.Minute)
	took := time.Duration(resumed.Load())
	t.Logf("posting resumed %v after drains set (all posted %v after); %d requests to the wrong path",
		took.Round(time.Millisecond), time.Since(at).Round(time.Second), wrong.Load())
	if took <= 0 || took > 30*time.Second {
		t.Errorf("posting did not resume within 30 s of drains set (%v)", took)
	}
	if paused.PauseReason != "wrong_url" || paused.Dropped != 0 || !strings.Contains(paused.LastError, "HTTP 404") ||
		!strings.Contains(paused.Fix, "check the outlet's URL") || paused.NextAttemptAt == nil {
		t.Errorf("the status while paused: %+v", paused)
	}
	for _, want := range []string{`data-state="paused"`, "paused, minutes kept", "to fix:", "HTTP 404: 404 page not found", "next attempt"} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page while paused lacks %q", want)
		}
	}
	c.stopAll()
	checkOTLP(t, rcv, false, false, r) // every minute, each once
	if n := wrong.Load(); n < 1 || n > 4 {
		t.Errorf("%d requests to the wrong URL: the lane did not pause at once", n)
	}
	logged := false
	for _, out := range c.allOutput() {
		if strings.Contains(out, "posting paused") && strings.Contains(out, "reason=wrong_url") {
			logged = true
		}
		if strings.Contains(out, "measurements dropped") || strings.Contains(out, "refused the request; dropped") {
			t.Errorf("a web dropped measurements")
		}
	}
	if !logged {
		t.Error("no web logged the pause with its reason")
	}
	var dropped, rejected int64
	if err := pool.QueryRow(context.Background(), `SELECT dropped, rejected FROM lanes WHERE outlet = 'otlp'`).Scan(&dropped, &rejected); err != nil ||
		dropped != 0 || rejected != 0 {
		t.Errorf("lane dropped %d rejected %d (%v)", dropped, rejected, err)
	}
}
