package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/outlet/librato"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/status"
)

// TestRoutesEndToEnd is issue 13's acceptance run, through the binary: two
// web dynos on one Postgres.
//
//   - Drain shop (routes: loadgen's API templates, auto) gets a
//     drainbench-style load whose router lines request an API's paths:
//     per route and minute, the fake OTLP receiver (cumulative) holds the
//     exact request and status counts and service count and sum, and p95
//     within 1 % of the exact nearest rank over both dynos' requests; Librato
//     gets the same under router.route.METHOD.path names.
//   - Platform API lines through shop: their series, and an annotation per
//     release and rollback at the fake Librato, without the user.
//   - A log-shuttle batch with Logshuttle-Drops, retried with the same
//     X-Request-Id: counted once.
//   - Drain scan (auto) gets 100 000 distinct random paths stamped within
//     one minute: its routes stay within the cap (200 per dyno), every
//     request is counted (into route other past the cap), the overflow is
//     exact on /status.json and in the drain summary, and the webs' RSS
//     stays bounded.
func TestRoutesEndToEnd(t *testing.T) {
	t.Parallel()
	r := routesStartWebs(t)
	c := r.c

	// The path scan, in the background: 100 000 router lines stamped within
	// the next minute (accepted: at most 5 minutes ahead), sent at once.
	r.scanMinute = time.Now().Truncate(time.Minute).Add(time.Minute)
	var scanWG sync.WaitGroup
	scanWG.Add(1)
	go func() {
		defer scanWG.Done()
		r.sendScan(t)
	}()
	api, gen := r.sendAPILoad(t)
	scanWG.Wait()
	totals := gen.Totals()
	r.waitPosted(t, totals)

	t.Run("per-route series, OTLP", func(t *testing.T) { checkRoutesOTLP(t, r.cum, totals) })
	t.Run("per-route series, Librato", func(t *testing.T) { checkRoutesLibrato(t, c.fake, totals) })
	t.Run("deploy markers", func(t *testing.T) { r.checkDeployMarkers(t, api) })
	t.Run("path scan", func(t *testing.T) { r.checkPathScan(t) })

	c.stopAll()
	t.Run("drain summary", func(t *testing.T) {
		// Each web's summary lines (changes, the last at shutdown) add up
		// to its part of the overflow.
		var sum uint64
		for _, out := range c.allOutput() {
			sum += summaryTotals(out, r.scan[0])["overflow"]
		}
		if sum != r.scanOverflow {
			t.Errorf("the webs' drain summaries add up to overflow=%d, want %d", sum, r.scanOverflow)
		}
	})
}

// routesScanLines and routesScanPerBatch are TestRoutesEndToEnd's path
// scan: that many router lines on distinct paths, in batches of so many.
const routesScanLines, routesScanPerBatch = 100_000, 250

// routesAdmin is TestRoutesEndToEnd's ADMIN_PASSWORD.
const routesAdmin = "admin-password-routes"

// routesRun is TestRoutesEndToEnd's shared state: the fake OTLP receivers
// (shop's cumulative, scan's delta), the two webs on one Postgres, the
// drains, the path scan's minute, the webs' RSS around it and the
// overflow it makes (set by the subtest "path scan").
type routesRun struct {
	cum, delta   *fakeotlp.Server
	dsn          string
	c            *cluster
	shop, scan   [2]string
	w1, w2       *server
	scanMinute   time.Time
	rss          map[string][2]int // KiB, before and after the scan, by web
	scanOverflow uint64
}

// routesStartWebs starts the fake OTLP receivers and two web processes on
// one Postgres with the drains shop (API routes) and scan (auto).
func routesStartWebs(t *testing.T) *routesRun {
	t.Helper()
	r := &routesRun{cum: fakeotlp.New(""), delta: fakeotlp.New(""), rss: map[string][2]int{}}
	cumSrv, deltaSrv := httptest.NewServer(r.cum), httptest.NewServer(r.delta)
	t.Cleanup(cumSrv.Close)
	t.Cleanup(deltaSrv.Close)
	r.dsn = pgtest.NewDatabase(t, false)
	r.c = newClusterWith(t, r.dsn, [][]string{
		{"--name", "shop", "--otlp-endpoint", cumSrv.URL + "/v1/metrics", "--librato-user", "me@example.com", "--librato-token", "tok",
			"--routes", strings.Join(loadgen.APIRoutes, ","), "--route-metrics", loadgen.APIRouteMetrics},
		{"--name", "scan", "--otlp-endpoint", deltaSrv.URL + "/v1/metrics", "--otlp-temporality", "delta", "--route-metrics", "auto"},
	}, "ADMIN_PASSWORD="+routesAdmin)
	r.shop, r.scan = r.c.drains[0], r.c.drains[1]
	r.c.process = true // each web's resident memory (vmRSS)
	r.w1 = r.c.start(1)
	r.w2 = r.c.start(2)
	return r
}

// sendScan sends scan's 100 000 router lines, noting each web's RSS before
// and after. It runs in its own goroutine: it must not call t.Fatal.
func (r *routesRun) sendScan(t *testing.T) {
	t.Helper()
	for _, w := range []*server{r.w1, r.w2} {
		r.rss[w.url] = [2]int{vmRSS(t, w), 0}
	}
	gen := loadgen.New(41, 4)
	gen.SetPaths(loadgen.PathScan)
	rng := rand.New(rand.NewPCG(41, 1))
	for i := range routesScanLines / routesScanPerBatch {
		body := bytes.Clone(gen.Batch(routesScanPerBatch, r.scanMinute.Add(time.Duration(i)*125*time.Millisecond)))
		r.c.sendTo(rng, r.scan, fmt.Sprintf("SCAN%028X", i), body)
	}
	for _, w := range []*server{r.w1, r.w2} {
		x := r.rss[w.url]
		x[1] = vmRSS(t, w)
		r.rss[w.url] = x
	}
}

// sendAPILoad sends the API's load on shop for 75 s, with Platform API
// lines and a log-shuttle batch; it returns the Platform API lines' times
// and what they announce, and the load's generator.
func (r *routesRun) sendAPILoad(t *testing.T) (api []string, gen *loadgen.Generator) {
	t.Helper()
	gen = loadgen.New(42, 4)
	gen.SetPaths(loadgen.PathAPI)
	rng := rand.New(rand.NewPCG(42, 1))
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	for i := 0; time.Since(start) < 75*time.Second; i++ {
		<-tick.C
		body := bytes.Clone(gen.Batch(30, time.Now()))
		switch i {
		case 100, 400:
			msg := map[int]string{100: "Release v74 created by user ned@example.com", 400: "Rollback to v73 by user kate@example.com"}[i]
			now := time.Now().UTC()
			body = append(body, frame(fmt.Sprintf("<134>1 %s host app api - %s", now.Format(time.RFC3339Nano), msg))...)
			api = append(api, fmt.Sprintf("%d %s", now.Unix(), strings.SplitN(msg, " by user", 2)[0]))
		case 200:
			for range 2 { // log-shuttle retries with the same X-Request-Id
				if st := postShuttle(t, r.w1, r.shop, body, map[string]string{"X-Request-Id": "5d2f6f0e-3b1c-4c55-9d7a-0c6d1a1e2f3a",
					"Logshuttle-Drops": "5", "Logshuttle-Lost": "2"}); st != 200 {
					t.Errorf("log-shuttle batch: %d", st)
				}
			}
			continue
		}
		r.c.sendTo(rng, r.shop, fmt.Sprintf("SHOP%028X", i), body)
	}
	tick.Stop()
	return api, gen
}

// waitPosted waits until both drains' lanes have posted their last minute.
func (r *routesRun) waitPosted(t *testing.T, totals *loadgen.Totals) {
	t.Helper()
	var last int64
	for k := range totals.RouteCounts {
		last = max(last, k.Minute)
	}
	eventually(t, 3*time.Minute, "both drains' lanes posted their last minute", func() bool {
		o, _, _ := laneRow(t, r.dsn, "shop", "otlp")
		l, _, _ := laneRow(t, r.dsn, "shop", "librato")
		s, _, _ := laneRow(t, r.dsn, "scan", "otlp")
		return o >= last && l >= last && s >= r.scanMinute.Unix()
	})
}

// checkDeployMarkers checks an annotation per release and rollback at the
// fake Librato (api, in order), without the user, and their series.
func (r *routesRun) checkDeployMarkers(t *testing.T, api []string) {
	t.Helper()
	var got []string
	for _, a := range r.c.fake.Annotations() {
		if a.Stream != "heroku.deploys" || a.User != "me@example.com" || strings.Contains(a.Title, "@") {
			t.Errorf("annotation %+v", a)
		}
		got = append(got, fmt.Sprintf("%d %s", a.StartTime, a.Title))
	}
	if !slices.Equal(got, api) {
		t.Errorf("annotations %q, want %q", got, api)
	}
	var version, rollbacks float64
	for _, m := range r.c.fake.Measurements() {
		switch m.Name {
		case "heroku.release.version":
			version = *m.Value
		case "heroku.rollbacks":
			rollbacks += *m.Value
		}
	}
	if version != 74 || rollbacks != 1 {
		t.Errorf("heroku.release.version %v, heroku.rollbacks %v", version, rollbacks)
	}
}

// checkPathScan checks the path scan: every request counted, the routes
// within the cap, the overflow exact on /status.json, shop's log-shuttle
// counts, the webs' RSS bounded. It sets r.scanOverflow, the overflow the
// drain summaries must add up to.
func (r *routesRun) checkPathScan(t *testing.T) {
	t.Helper()
	const scanLines = routesScanLines
	requests, routes := 0.0, 0
	var other float64
	for _, p := range r.delta.Points() {
		if p.Metric != "router.requests" || p.Attrs["route"] == "" || p.Time != uint64(r.scanMinute.Unix()+60)*1e9 {
			continue // the route series only (not the dynos' and web's)
		}
		requests += p.Value
		routes++
		if p.Attrs["route"] == parse.RouteOther {
			other = p.Value
		}
	}
	admitted := routes - 1 // all but other; each admitted path was requested once
	t.Logf("%d lines on distinct paths: %d route series of router.requests (%d admitted, other %v)", scanLines, routes, admitted, other)
	if requests != scanLines || admitted > 2*200 || admitted < 200 || other != float64(scanLines-admitted) {
		t.Errorf("requests %v in %d routes (other %v), want %d in at most 401", requests, routes, other, scanLines)
	}
	want := uint64(3 * (scanLines - admitted)) // router.service, .requests, .status.Nxx of each request past the cap
	r.scanOverflow = want
	var snap status.Snapshot
	eventually(t, 30*time.Second, "the overflow on /status.json", func() bool {
		code, body := get(t, r.w2.url+"/status.json", "admin", routesAdmin)
		snap = status.Snapshot{}
		return code == 200 && json.Unmarshal([]byte(body), &snap) == nil && drainOf(&snap, r.scan[0]).Overflow == want
	})
	if d := drainOf(&snap, r.shop[0]); d.Overflow != 0 || d.LogplexDropped != 5 || d.LogplexLost != 2 || d.Duplicates != 1 {
		t.Errorf("shop: overflow %d, logplex_dropped %d, logplex_lost %d, duplicates %d; want 0 5 2 1", d.Overflow, d.LogplexDropped, d.LogplexLost, d.Duplicates)
	}
	for url, x := range r.rss {
		t.Logf("web %s: RSS %d KiB before the scan, %d KiB after", url, x[0], x[1])
		if x[1]-x[0] > 32<<10 { // a series per raw path would take hundreds of MiB
			t.Errorf("web %s: RSS grew by %d KiB during the scan", url, x[1]-x[0])
		}
	}
}

func drainOf(s *status.Snapshot, id string) status.Report {
	for _, d := range s.Drains {
		if d.ID == id {
			return d
		}
	}
	return status.Report{}
}

// vmRSS returns a web process's resident set, in KiB.
func vmRSS(t *testing.T, s *server) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Logf("no RSS: %v", err)
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// postShuttle posts a batch as log-shuttle does: X-Request-Id, no Frame-Id.
func postShuttle(t *testing.T, s *server, drain [2]string, body []byte, hdr map[string]string) int {
	req, _ := http.NewRequest(http.MethodPost, s.url+"/logs", bytes.NewReader(body))
	req.SetBasicAuth(drain[0], drain[1])
	req.Header.Set("Content-Type", "application/logplex-1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := loadClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkRoutesOTLP compares the route series a cumulative OTLP receiver
// holds with the load: running totals exact, each minute's p95 and p99
// within 1 % of the exact nearest rank.
func checkRoutesOTLP(t *testing.T, fake *fakeotlp.Server, totals *loadgen.Totals) {
	fail := firstErrors(t, 20)
	var minutes []int64
	for k := range totals.RouteCounts {
		if !slices.Contains(minutes, k.Minute) {
			minutes = append(minutes, k.Minute)
		}
	}
	slices.Sort(minutes)
	type id struct{ name, route string }
	counts, n, sums := map[id]float64{}, map[id]float64{}, map[id]float64{}
	checked := 0
	for _, m := range minutes {
		at := uint64(m+60) * 1e9
		pointAt := func(name, route string) *fakeotlp.Point {
			var found []fakeotlp.Point
			for _, p := range fake.Series(name, map[string]string{"drainmeter.rollup": "route", "route": route}) {
				if p.Time == at {
					found = append(found, p)
				}
			}
			if len(found) != 1 {
				fail("otlp %s route=%q at %d: %d points", name, route, m, len(found))
				return nil
			}
			return &found[0]
		}
		for k, v := range totals.RouteCounts {
			if k.Minute == m {
				counts[id{k.Name, k.Route}] += v
			}
		}
		for k, vs := range totals.RouteMeasures {
			if k.Minute == m {
				n[id{k.Name, k.Route}] += float64(len(vs))
				for _, v := range vs {
					sums[id{k.Name, k.Route}] += v
				}
			}
		}
		for k := range totals.RouteCounts {
			if k.Minute != m {
				continue
			}
			if p := pointAt(k.Name, k.Route); p != nil && (p.Type != fakeotlp.Sum || p.Value != counts[id{k.Name, k.Route}]) {
				fail("otlp %s route=%q at %d: %v, want %v", k.Name, k.Route, m, p.Value, counts[id{k.Name, k.Route}])
			}
			checked++
		}
		for k, vs := range totals.RouteMeasures {
			if k.Minute != m {
				continue
			}
			p := pointAt(k.Name, k.Route)
			if p == nil {
				continue
			}
			s, want := p.Summary, id{k.Name, k.Route}
			if s == nil || float64(s.Count) != n[want] || !near(s.Sum, sums[want], 1e-9) {
				fail("otlp %s route=%q at %d: %+v, want count %v sum %v", k.Name, k.Route, m, s, n[want], sums[want])
				continue
			}
			sorted := slices.Sorted(slices.Values(vs))
			for _, q := range s.QuantileValues {
				if want := exactNearestRank(sorted, q.Quantile); !near(q.Value, want, 0.01) {
					fail("otlp %s route=%q at %d: q%v = %v, want %v ± 1 %%", k.Name, k.Route, m, q.Quantile, q.Value, want)
				}
			}
			checked++
		}
	}
	t.Logf("%d route series-minutes checked over %d minutes", checked, len(minutes))
	if checked < 20 {
		t.Errorf("only %d route series-minutes", checked)
	}
}

// checkRoutesLibrato compares the Librato gauges of the route series with
// the load: each minute's counts and sums exact, p95 within 1 %.
func checkRoutesLibrato(t *testing.T, fake *fakelibrato.Server, totals *loadgen.Totals) {
	got := map[string]fakelibrato.Measurement{}
	for _, m := range fake.Measurements() {
		k := fmt.Sprintf("%s %s %d", m.Name, m.Source, m.MeasureTime)
		if _, dup := got[k]; dup {
			t.Errorf("%s posted twice", k)
		}
		got[k] = m
	}
	dims := func(route string) string { return string(parse.AppendDim(nil, parse.RouteDim, route)) }
	fail := firstErrors(t, 20)
	for k, v := range totals.RouteCounts {
		name := librato.Sanitize(librato.SeriesName(k.Name, dims(k.Route)))
		if m, ok := got[fmt.Sprintf("%s  %d", name, k.Minute)]; !ok || m.Value == nil || *m.Value != v {
			fail("librato %s at %d: %+v, want %v", name, k.Minute, m, v)
		}
	}
	for k, vs := range totals.RouteMeasures {
		name := librato.Sanitize(librato.SeriesName(k.Name, dims(k.Route)))
		var sum float64
		for _, v := range vs {
			sum += v
		}
		m, ok := got[fmt.Sprintf("%s  %d", name, k.Minute)]
		if !ok || m.Count == nil || *m.Count != int64(len(vs)) || !near(*m.Sum, sum, 1e-9) {
			fail("librato %s at %d: %+v, want count %d sum %v", name, k.Minute, m, len(vs), sum)
		}
		p95, ok := got[fmt.Sprintf("%s.perc95  %d", name, k.Minute)]
		if want := exactNearestRank(slices.Sorted(slices.Values(vs)), 0.95); !ok || !near(*p95.Value, want, 0.01) {
			fail("librato %s.perc95 at %d: %+v, want %v ± 1 %%", name, k.Minute, p95, want)
		}
		if !strings.HasPrefix(name, "router.route.") {
			fail("librato name %s", name)
		}
	}
}

// TestParseCommandRoutes: drainmeter parse shows per-route series (with
// --routes and --route-metrics), the Platform API's series and events.
func TestParseCommandRoutes(t *testing.T) {
	in := `<158>1 2024-05-01T12:34:56.5Z host heroku router - at=info method=GET path="/users/42?x=1" dyno=web.1 connect=1ms service=18ms status=200 bytes=13` + "\n" +
		`<158>1 2024-05-01T12:34:57Z host heroku router - at=info method=POST path="/orders/8f14e45f-ceea-467f-a0e6-1e2c8a3b4d5e/" dyno=web.2 connect=1ms service=40ms status=503 bytes=13` + "\n" +
		"<134>1 2024-05-01T12:34:58Z host app api - Release v74 created by user ned@example.com\n"
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"parse", "--routes", "/users/:id"}, "" +
			"kind=measure name=router.connect value=1 unit=ms source=web.1 time=2024-05-01T12:34:56.5Z\n" +
			"kind=measure name=router.service value=18 unit=ms source=web.1 time=2024-05-01T12:34:56.5Z\n" +
			"kind=measure name=router.bytes value=13 unit=bytes source=web.1 time=2024-05-01T12:34:56.5Z\n" +
			"kind=count name=router.requests value=1 source=web.1 time=2024-05-01T12:34:56.5Z\n" +
			"kind=count name=router.status.2xx value=1 source=web.1 time=2024-05-01T12:34:56.5Z\n" +
			"kind=measure name=router.service value=18 unit=ms route=\"GET /users/:id\" time=2024-05-01T12:34:56.5Z\n" +
			"kind=count name=router.requests value=1 route=\"GET /users/:id\" time=2024-05-01T12:34:56.5Z\n" +
			"kind=count name=router.status.2xx value=1 route=\"GET /users/:id\" time=2024-05-01T12:34:56.5Z\n" +
			"kind=measure name=router.connect value=1 unit=ms source=web.2 time=2024-05-01T12:34:57Z\n" +
			"kind=measure name=router.service value=40 unit=ms source=web.2 time=2024-05-01T12:34:57Z\n" +
			"kind=measure name=router.bytes value=13 unit=bytes source=web.2 time=2024-05-01T12:34:57Z\n" +
			"kind=count name=router.requests value=1 source=web.2 time=2024-05-01T12:34:57Z\n" +
			"kind=count name=router.status.5xx value=1 source=web.2 time=2024-05-01T12:34:57Z\n" +
			"kind=measure name=router.service value=40 unit=ms route=other time=2024-05-01T12:34:57Z\n" +
			"kind=count name=router.requests value=1 route=other time=2024-05-01T12:34:57Z\n" +
			"kind=count name=router.status.5xx value=1 route=other time=2024-05-01T12:34:57Z\n" +
			"kind=count name=heroku.releases value=1 time=2024-05-01T12:34:58Z\n" +
			"kind=sample name=heroku.release.version value=74 time=2024-05-01T12:34:58Z\n" +
			"kind=event name=heroku.deploys value=1 title=\"Release v74 created\" time=2024-05-01T12:34:58Z\n"},
		// Series in drainmeter's order (name, then source: a route series,
		// which has none, first), as Librato names them.
		{[]string{"parse", "--rollup", "--format", "librato", "--route-metrics", "auto", "--process-types=false", "--percentiles", "95"}, "" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=sample name=heroku.release.version value=74\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=heroku.releases value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.bytes source=web.1 unit=bytes count=1 sum=13 min=13 max=13 sum_squares=169\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.bytes.perc95 source=web.1 unit=bytes value=13\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.bytes source=web.2 unit=bytes count=1 sum=13 min=13 max=13 sum_squares=169\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.bytes.perc95 source=web.2 unit=bytes value=13\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.connect source=web.1 unit=ms count=1 sum=1 min=1 max=1 sum_squares=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.connect.perc95 source=web.1 unit=ms value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.connect source=web.2 unit=ms count=1 sum=1 min=1 max=1 sum_squares=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.connect.perc95 source=web.2 unit=ms value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.route.GET.users._id.requests value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.route.POST.orders._id.requests value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.requests source=web.1 value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.requests source=web.2 value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.route.GET.users._id.service unit=ms count=1 sum=18 min=18 max=18 sum_squares=324\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.route.GET.users._id.service.perc95 unit=ms value=18\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.route.POST.orders._id.service unit=ms count=1 sum=40 min=40 max=40 sum_squares=1600\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.route.POST.orders._id.service.perc95 unit=ms value=40\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.service source=web.1 unit=ms count=1 sum=18 min=18 max=18 sum_squares=324\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.service.perc95 source=web.1 unit=ms value=18\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.service source=web.2 unit=ms count=1 sum=40 min=40 max=40 sum_squares=1600\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=router.service.perc95 source=web.2 unit=ms value=40\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.route.GET.users._id.status.2xx value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.status.2xx source=web.1 value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.route.POST.orders._id.status.5xx value=1\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=router.status.5xx source=web.2 value=1\n" +
			"at=event drain=local minute=2024-05-01T12:34:00Z name=heroku.deploys time=2024-05-01T12:34:58Z title=\"Release v74 created\"\n"},
	} {
		cmd := exec.Command(binPath, tc.args...)
		cmd.Stdin = strings.NewReader(in)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, stderr.String())
		}
		if stdout.String() != tc.out {
			t.Errorf("%v:\n%s\nwant:\n%s", tc.args, stdout.String(), tc.out)
		}
		if strings.Contains(stdout.String(), "example.com") {
			t.Errorf("%v: an e-mail in the output", tc.args)
		}
	}
}

// TestDrainsRoutesCLI: drains add|set --routes --route-metrics, as the
// drains list shows them; bad templates and modes are refused, naming the
// flag.
func TestDrainsRoutesCLI(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=https://my-drainmeter.herokuapp.com"}
	out := mustCLI(t, env, "drains", "add", "--name", "shop", "--routes", "/users/:id, /api/*")
	if !strings.Contains(out, "\nroutes: templates /users/:id,/api/*\n") {
		t.Errorf("add: %s", out)
	}
	routesOf := func() string {
		t.Helper()
		for _, l := range strings.Split(mustCLI(t, env, "drains", "list"), "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[1] == "shop" {
				return strings.Join(f[6:len(f)-2], " ")
			}
		}
		return ""
	}
	if got := routesOf(); got != "templates /users/:id,/api/*" {
		t.Errorf("list: %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--route-metrics", "auto"}, "auto /users/:id,/api/*"},
		{[]string{"--routes", ""}, "auto"},
		{[]string{"--route-metrics", "off"}, "off"},
		{[]string{"--routes", "/orders/:id"}, "templates /orders/:id"}, // routes alone turn an off drain to templates
	} {
		mustCLI(t, env, append([]string{"drains", "set", "shop"}, tc.args...)...)
		if got := routesOf(); got != tc.want {
			t.Errorf("set %q: %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--routes", "users/:id"}, `drainmeter: --routes: route template "users/:id": starts with /`},
		{[]string{"--route-metrics", "on"}, `drainmeter: --route-metrics: route metrics "on": off, templates or auto`},
		{[]string{"--routes", "", "--route-metrics", "templates"}, "drainmeter: route metrics templates needs --routes (or --route-metrics auto)"},
	} {
		_, e, err := cli(t, env, append([]string{"drains", "set", "shop"}, tc.args...)...)
		if err == nil || strings.TrimSpace(e) != tc.want {
			t.Errorf("set %q: %v %q, want %q", tc.args, err, e, tc.want)
		}
	}
}
