package otlp

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// TestHeldTotalsChargedToBudget: the running totals that hold counters
// are charged to the memory budget's totals share. With room for about
// 150 of them, 100 counters at minute 0 and 100 others at minute 1: after
// minute 1 about 50 of minute 0's are forgotten (they moved longest ago;
// the first in key order), the share never goes over, and minute 2 holds
// the ones that fit.
func TestHeldTotalsChargedToBudget(t *testing.T) {
	fake := fakeotlp.New(fakeotlp.Strict)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	reg, logs := stats.NewRegistry(), &logtest.Buffer{}
	dests := outlettest.NewDests(&outlet.Destination{ID: "d1", Name: "app-one", Outlets: []outlet.Outlet{{
		Kind: outlet.OTLP, URL: srv.URL + "/v1/metrics", Temporality: outlet.Cumulative}}})
	log := slog.New(slog.NewTextHandler(logs, nil))
	cfg := engineConfig()
	client := outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)
	backends := map[outlet.Kind]outlet.Backend{outlet.OTLP: New(client, Config{Version: "test", Hold: time.Hour})}
	eng := outlet.NewEngine(outlet.NewSender(cfg, backends, reg, log, time.Now), dests, reg, log, time.Now)

	name := func(set string, i int) string { return fmt.Sprintf("%s.%03d", set, i) }
	one := outlet.RunningBytes("\x00"+name("a", 0)+"\x00web.1", &outlet.Running{}) // about a series' key
	share := budget.NewShare("totals", 150*one+one/2)
	eng.ChargeTotals(share)
	eng.Start()
	t.Cleanup(func() { _ = eng.Shutdown(t.Context()) })

	start := time.Now().Truncate(time.Minute).Add(-4 * time.Minute)
	counts := func(set string, at time.Time) []parse.Measurement {
		var ms []parse.Measurement
		for i := range 100 {
			ms = append(ms, outlettest.Meas(parse.Count, name(set, i), "", 1, at))
		}
		return ms
	}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", at(0), counts("a", at(0)))})
	eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", at(1), counts("b", at(1)))})
	eng.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", at(2), []parse.Measurement{
		outlettest.Meas(parse.Count, "c", "", 1, at(2))})})
	end := uint64(at(3).UnixNano())
	outlettest.WaitFor(t, "three minutes posted", func() bool {
		for _, p := range fake.Points() {
			if p.Metric == "c" && p.Time == end {
				return true
			}
		}
		return false
	})
	if used := share.Used(); used > share.Limit() || used == 0 {
		t.Errorf("share used %d of %d", used, share.Limit())
	}
	held := map[string]bool{}
	for _, p := range fake.Points() {
		if p.Time == end && p.Metric != "c" {
			held[p.Metric] = true
		}
	}
	forgot := 0
	for i := range 100 {
		if !held[name("b", i)] {
			t.Errorf("%s (minute 1) not held at minute 2", name("b", i))
		}
		if !held[name("a", i)] {
			forgot++
			if i > 0 && held[name("a", i-1)] {
				t.Errorf("%s forgotten after %s was kept: the series that moved longest ago go first, in key order", name("a", i), name("a", i-1))
			}
		}
	}
	if forgot < 30 || forgot > 70 { // about 50: keys are a little longer than names
		t.Errorf("%d of minute 0's counters forgotten, want about 50 (the share fits about 150)", forgot)
	}
	if !strings.Contains(logs.String(), "running totals trimmed") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
}
