package status

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/browsertest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// explorerLoad is what the explorer tests send, through the real parser
// and rollup store: measures, counts, samples and uniques from three dynos
// of two process types, and router lines with routes on.
type explorerLoad struct {
	latencies []float64 // every db.latency value, all dynos
	jobs      float64   // the jobs.done total
	lastQueue float64   // the last queue sample by time
	requests  int
}

// closedMinutes runs the load for the minute starting at start through a
// parser and a rollup store, and returns the minute closed.
func closedMinutes(t testing.TB, drainID string, start time.Time, seed uint64) ([]*rollup.Minute, explorerLoad) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	store := rollup.NewStore(rollup.DefaultConfig)
	ds := stats.NewRegistry().Drain(drainID)
	p := parse.NewParser(parse.Options{ProcessTypes: true, RouteMetrics: parse.RoutesAuto, Routes: []string{"/users/:id"}})
	var load explorerLoad
	dynos := []string{"web.1", "web.2", "worker.1"}
	line := func(sec int, procid, msg string) {
		ts := start.Add(time.Duration(sec) * time.Second).Format(time.RFC3339)
		app := "app"
		if procid == "router" {
			app = "heroku"
		}
		frame := []byte(fmt.Sprintf("<190>1 %s host %s %s - %s", ts, app, procid, msg))
		p.Frame(frame, start.Add(30*time.Second), func(m *parse.Measurement) {
			store.Add(start.Add(30*time.Second), ds, []parse.Measurement{*m})
		})
	}
	for i := range 600 {
		v := math.Round(rng.ExpFloat64()*400*100) / 100
		sec := i % 60
		load.latencies = append(load.latencies, v)
		load.jobs += 2
		load.lastQueue = float64(i % 60)
		line(sec, dynos[i%3], fmt.Sprintf("measure#db.latency=%gms count#jobs.done=2 sample#queue=%d unique#users=u%d", v, sec, i%37))
	}
	for i := range 90 {
		path := []string{"/users/42", "/orders/9f1c2d3e4a5b6c7d", "/"}[i%3]
		line(i%60, "router", fmt.Sprintf(`at=info method=GET path="%s" host=x.herokuapp.com request_id=r%d fwd="1.2.3.4" dyno=web.%d connect=1ms service=%dms status=200 bytes=100 protocol=https`,
			path, i, 1+i%2, 5+i))
		load.requests++
	}
	return store.Flush(start.Add(3 * time.Minute)), load
}

// exactRank is the nearest-rank percentile of vs.
func exactRank(vs []float64, q float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	k := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func within(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// TestSummarize: one name per row, every measurement once (the process-type
// rollups and routes left out of the totals), percentiles over every dyno
// within 1 % of the exact nearest-rank value, sources and routes kept, and
// the busiest names first under the cap.
func TestSummarize(t *testing.T) {
	start := time.Date(2026, 3, 14, 15, 8, 0, 0, time.UTC)
	minutes, load := closedMinutes(t, activeID, start, 1)
	if len(minutes) != 1 {
		t.Fatalf("%d minutes closed, want 1", len(minutes))
	}
	s := Summarize(minutes[0], 0)
	if s.Omitted != 0 {
		t.Errorf("omitted %d", s.Omitted)
	}
	byName := map[string]NameMinute{}
	for _, nm := range s.Names {
		byName[nm.Name] = nm
	}
	lat := byName["db.latency"]
	if lat.Kind != "measure" || lat.Unit != "ms" || lat.Count != int64(len(load.latencies)) {
		t.Fatalf("db.latency: %+v", lat)
	}
	for _, c := range []struct {
		q   float64
		got float64
	}{{.50, lat.P50}, {.95, lat.P95}, {.99, lat.P99}} {
		if want := exactRank(load.latencies, c.q); !within(c.got, want, .01) {
			t.Errorf("db.latency p%g = %g, exact %g: more than 1 %% off", c.q*100, c.got, want)
		}
	}
	// web.1, web.2, worker.1 and the rollups web and worker.
	if lat.Sources != 5 || len(lat.BySource) != 5 {
		t.Errorf("db.latency sources %d, by source %d, want 5", lat.Sources, len(lat.BySource))
	}
	if jobs := byName["jobs.done"]; jobs.Value != load.jobs || jobs.Count != 600 {
		t.Errorf("jobs.done = %g over %d, want %g over 600", jobs.Value, jobs.Count, load.jobs)
	}
	if q := byName["queue"]; q.Kind != "sample" || q.Value != load.lastQueue {
		t.Errorf("queue = %+v, want last %g", q, load.lastQueue)
	}
	if u := byName["users"]; u.Kind != "unique" || !within(u.Value, 37, .02) {
		t.Errorf("users = %g distinct, want 37", u.Value)
	}
	svc := byName["router.service"]
	if svc.Count != int64(load.requests) {
		t.Errorf("router.service counted %d, want %d (the routes' series left out)", svc.Count, load.requests)
	}
	var routed int64
	for _, r := range svc.Routes {
		routed += r.Count
	}
	if len(svc.Routes) != 3 || routed != int64(load.requests) {
		t.Errorf("routes %+v", svc.Routes)
	}
	if s.Names[0].Count < s.Names[len(s.Names)-1].Count {
		t.Errorf("names not busiest first")
	}

	capped := Summarize(minutes[0], 2)
	if len(capped.Names) != 2 || capped.Omitted != len(s.Names)-2 {
		t.Errorf("capped at 2: %d names, %d omitted (of %d)", len(capped.Names), capped.Omitted, len(s.Names))
	}
	if capped.Names[0].Count < s.Names[2].Count || capped.Names[1].Count < s.Names[2].Count {
		t.Errorf("the cap kept %s and %s, not the busiest", capped.Names[0].Name, capped.Names[1].Name)
	}
}

// TestPostedNames: the names shown are the outlets' own.
func TestPostedNames(t *testing.T) {
	for _, c := range []struct {
		kind, name string
		rw         []string
		otlp       string
	}{
		{"count", "shop.jobs.done", []string{"shop_jobs_done_total"}, "shop.jobs.done"},
		{"measure", "db.latency", []string{"db_latency", "db_latency_sum", "db_latency_count"}, "db.latency"},
		{"sample", "memory-rss", []string{"memory_rss"}, "memory-rss"},
		{"unique", "9users", []string{"_9users"}, "9users"},
	} {
		got := Posted(c.kind, c.name, false)
		if !slices.Equal(got.RemoteWrite, c.rw) || got.OTLP != c.otlp {
			t.Errorf("%s %s: posted as %+v, want %v and %s", c.kind, c.name, got, c.rw, c.otlp)
		}
	}
}

// explorerEnv is a handler over the fixture's snapshot and an explorer fed
// with the load's closed minutes.
func explorerEnv(t testing.TB, cfg Config) (*ExplorerStore, explorerLoad) {
	t.Helper()
	store := NewExplorerStore(nil, 0, func() time.Time { return testNow })
	var load explorerLoad
	for i, start := range []time.Time{testNow.Add(-5 * time.Minute).Truncate(time.Minute), testNow.Add(-2 * time.Minute).Truncate(time.Minute)} {
		ms, l := closedMinutes(t, activeID, start, uint64(i+1))
		store.Closed(ms)
		load = l
	}
	store.Refused(activeID, testNow.Add(-90*time.Second), []drain.Refusal{
		{Reason: "bad_value", Token: "measure#db.latency=abc", Name: "db.latency"},
		{Reason: "bad_value", Token: "count#signups=twelve", Name: "signups"},
	})
	store.Overflow(testNow.Add(-time.Minute), map[string][]string{activeID: {"cart.items.sku_123"}})
	store.Late(map[string]map[string]uint64{activeID: {"queue": 3}})
	return store, load
}

// TestExplorerPages checks the pages and the JSON over HTTP: who may see
// them, the figures, the filter and the sort.
func TestExplorerPages(t *testing.T) {
	cfg := adminConfig()
	x, load := explorerEnv(t, cfg)
	cfg.Explorer = x
	e := newTestEnv(t, cfg)

	if r := e.get(t, "/drains/"+activeID+"/metrics", "", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed out: %d", r.StatusCode)
	}
	if r := e.get(t, "/drains/default/metrics.json", activeID, ownerSecret); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("another drain's owner: %d, want 401", r.StatusCode)
	}
	r := e.get(t, "/drains/"+activeID+"/metrics.json", activeID, ownerSecret)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("owner: %d %s", r.StatusCode, r.body)
	}
	var got Explore
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	var lat *NameView
	for i := range got.Names {
		if got.Names[i].Name == "db.latency" {
			lat = &got.Names[i]
		}
	}
	if lat == nil || lat.Last.Count != int64(len(load.latencies)) || lat.Volume != 2*int64(len(load.latencies)) || len(lat.History) != 60 {
		t.Fatalf("db.latency: %+v", lat)
	}
	if !within(lat.Last.P99, exactRank(load.latencies, .99), .01) {
		t.Errorf("p99 %g, exact %g", lat.Last.P99, exactRank(load.latencies, .99))
	}
	r = e.get(t, "/drains/"+activeID+"/metrics.json?name=db.latency", "admin", testAdmin)
	var one struct {
		NameView
		BySource map[string][]Spark `json:"by_source_history"`
	}
	if err := json.Unmarshal([]byte(r.body), &one); err != nil || one.Name != "db.latency" || len(one.BySource["web"]) != 60 ||
		one.BySource["web"][59].Count != 400 || one.BySource["web"][56].Count != 400 || one.BySource["web"][57].Count != 0 {
		t.Errorf("db.latency by source: %v %+v", err, one.BySource)
	}
	for _, n := range got.Names {
		if (n.Name == "queue") != (n.Late == 3) {
			t.Errorf("%s: late %d", n.Name, n.Late)
		}
	}
	if r := e.get(t, "/drains/"+activeID+"/metrics?name=queue", "admin", testAdmin); !strings.Contains(r.body, `data-counter="name-late"><dt>late (after its minute closed)</dt><dd>3</dd>`) {
		t.Errorf("queue's page does not show its 3 late measurements")
	}
	if lat.Refused["bad_value"] != 1 {
		t.Errorf("db.latency refused %v", lat.Refused)
	}
	if len(got.Refused) != 2 || !slices.ContainsFunc(got.Refused, func(r Refused) bool { return r.Token == "measure#db.latency=abc" && r.Reason == "bad_value" }) ||
		len(got.Overflowed) != 1 {
		t.Errorf("refused %+v, overflowed %+v", got.Refused, got.Overflowed)
	}
	if r := e.get(t, "/drains/"+activeID+"/metrics.json?name=nope", "admin", testAdmin); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown name: %d", r.StatusCode)
	}
	r = e.get(t, "/drains/"+activeID+"/metrics?q=DB.&sort=volume", "admin", testAdmin)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `data-name="db.latency"`) || strings.Contains(r.body, `data-name="queue"`) {
		t.Errorf("filter db.: %d\n%s", r.StatusCode, r.body)
	}
	// The status page links to the explorer.
	if r := e.get(t, "/", "admin", testAdmin); !strings.Contains(r.body, `href="drains/`+activeID+`/metrics"`) {
		t.Errorf("no explorer link on the status page")
	}
}

// TestExplorerBrowser loads the explorer in a real headless Chromium: the
// list, a metric's chart, the refused pairs; at a desktop and a phone width.
func TestExplorerBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	b := browsertest.New(t)
	cfg := adminConfig()
	x, load := explorerEnv(t, cfg)
	cfg.Explorer = x
	srv := httptest.NewServer(NewHandler(cfg, &fakeSource{snap: testSnapshot()}, testOwners(), discardLog()))
	defer srv.Close()

	if st := b.Open(srv.URL+"/drains/"+activeID+"/metrics", activeID, ownerSecret); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	names := b.Attrs("#names tbody tr", "data-name")
	for _, want := range []string{"db.latency", "jobs.done", "queue", "users", "router.service", "router.requests"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not listed: %v", want, names)
		}
	}
	if got, _ := b.TextOf(`tr[data-name="jobs.done"] [data-figure="value"]`); got != "total "+num(load.jobs) {
		t.Errorf("jobs.done reads %q", got)
	}
	if got, _ := b.TextOf(`tr[data-name="db.latency"] [data-figure="count"]`); got != "count "+count(uint64(len(load.latencies))) {
		t.Errorf("db.latency count reads %q", got)
	}
	if got, _ := b.TextOf(`tr[data-name="db.latency"] [data-posted="remote_write"]`); got != "db_latency, db_latency_sum, db_latency_count" {
		t.Errorf("posted as %q", got)
	}
	if got := strings.Join(b.Texts(`#refused li`), "\n"); !strings.Contains(got, "measure#db.latency=abc → not a number") {
		t.Errorf("refused pair reads %q", got)
	}
	if b.Count(`svg.spark polyline`) != len(names) {
		t.Errorf("sparklines: %d for %d names", b.Count(`svg.spark polyline`), len(names))
	}
	if w := b.ScrollWidth(); w > browsertest.DesktopWidth {
		t.Errorf("the page is %d px wide", w)
	}
	b.Screenshots("explorer-list")
	b.SetWidth(browsertest.PhoneWidth)
	if w := b.ScrollWidth(); w > browsertest.PhoneWidth {
		t.Errorf("on a phone the page is %d px wide", w)
	}
	b.ResetWidth()

	if st := b.Open(srv.URL+"/drains/"+activeID+"/metrics?name=db.latency", "admin", testAdmin); st != http.StatusOK {
		t.Fatalf("metric page: %d", st)
	}
	if n := b.Count(`#metric-chart path.line`); n != 3 {
		t.Errorf("%d lines on the chart, want p50, p95, p99", n)
	}
	if n := b.Count(`#metric-chart rect.bar`); n != 60 {
		t.Errorf("%d bars", n)
	}
	if got := b.Attrs(`#sources tr`, "data-source"); !slices.Equal(got, []string{"web", "worker"}) {
		t.Errorf("sources by process type: %v", got)
	}
	if got := b.Attrs(`#source-chart path`, "data-source-line"); !slices.Equal(got, []string{"web", "worker"}) {
		t.Errorf("the chart by process type has lines %v", got)
	}
	b.Screenshots("explorer-metric")
	if st := b.Open(srv.URL+"/drains/"+activeID+"/metrics?name=router.service&by=dyno", "admin", testAdmin); st != http.StatusOK {
		t.Fatalf("metric page: %d", st)
	}
	if n := b.Count(`#routes tr`); n != 3 {
		t.Errorf("%d routes", n)
	}
	if n := b.Count(`#sources tr[data-source-kind="dyno"]`); n != 2 {
		t.Errorf("%d dynos with by=dyno", n)
	}
	b.Screenshots("explorer-route-metric")
}

// TestBreakable: names wrap after their dots, escaped.
func TestBreakable(t *testing.T) {
	if got := string(breakable(`a.b_c<script>/d`)); got != `a.<wbr>b_<wbr>c&lt;script&gt;/<wbr>d` {
		t.Errorf("breakable = %s", got)
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{1200: "1,200", 235902.85: "235,902.85", -1234.5: "-1,234.50", 2.723: "2.723", 0.0001234: "0.0001234", 1694.38: "1,694.38"} {
		if got := num(v); got != want {
			t.Errorf("num(%g) = %q, want %q", v, got, want)
		}
	}
}

// TestPostedNamesNative: a drain whose remote-write outlet sends native
// histograms shows a measure's names as that outlet posts them.
func TestPostedNamesNative(t *testing.T) {
	native := &outlet.Outlet{Kind: outlet.RemoteWrite, Histograms: outlet.NativeHistograms}
	d := &Report{Outlets: []Outlet{{Kind: "remotewrite", Native: native.Native()}}}
	if !nativeHistograms(d) || nativeHistograms(&Report{Outlets: []Outlet{{Kind: "remotewrite", Native: (&outlet.Outlet{Kind: outlet.RemoteWrite}).Native()}}}) {
		t.Fatalf("native histograms not told from the outlet %+v", d.Outlets[0])
	}
	if got := Posted("measure", "db.latency", true).RemoteWrite; !slices.Equal(got, []string{"db_latency", "db_latency_min", "db_latency_max"}) {
		t.Errorf("native: %v", got)
	}
}

// TestSummarizeRoles: the sending app's series count once each (shown with
// their app), a rollup of the others (the whole-app rollup, marked
// drainmeter.rollup) is left out.
func TestSummarizeRoles(t *testing.T) {
	start := time.Date(2026, 3, 14, 15, 8, 0, 0, time.UTC)
	s := rollup.NewStore(rollup.Config{Grace: time.Hour})
	d := stats.NewRegistry().Drain("d")
	var batch []parse.Measurement
	for i, app := range []string{"shop", "blog"} {
		for j := range 3 {
			batch = append(batch, parse.Measurement{Kind: parse.Count, Name: []byte("jobs"), Value: float64(1 + i), Source: []byte("web.1"),
				TypeSource: []byte("web"), Dims: rollup.AppendDim(nil, parse.AppDim, app), Time: start.Add(time.Duration(j) * time.Second)})
		}
	}
	batch = append(batch, parse.Measurement{Kind: parse.Count, Name: []byte("jobs"), Value: 100, Dims: rollup.AppendDim(nil, parse.RollupDim, parse.RollupApp), Time: start})
	s.Add(start, d, batch)
	nm := Summarize(s.FlushAll()[0], 0).Names[0]
	if nm.Count != 6 || nm.Value != 9 || nm.Sources != 4 || len(nm.Routes) != 0 {
		t.Errorf("jobs: %+v", nm)
	}
	var labels []string
	for _, p := range nm.BySource {
		labels = append(labels, pointLabel(p))
	}
	slices.Sort(labels)
	if want := []string{"web · blog", "web · shop", "web.1 · blog", "web.1 · shop"}; !slices.Equal(labels, want) {
		t.Errorf("sources %v, want %v", labels, want)
	}
}
