package librato

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

func TestSeriesName(t *testing.T) {
	route := func(r string) string { return string(rollup.AppendDim(nil, parse.RouteDim, r)) }
	for _, tc := range []struct{ name, dims, want string }{
		{"router.service", "", "router.service"},
		{"router.service", route("GET /users/:id"), "router.route.GET.users._id.service"},
		{"router.requests", route("POST /orders/:id/items"), "router.route.POST.orders._id.items.requests"},
		{"router.status.5xx", route("GET /api/*"), "router.route.GET.api._.status.5xx"},
		{"shop.router.service", route("GET /"), "shop.router.route.GET._root.service"},
		{"router.service", route("other"), "router.route.other.service"},
		{"router.service", route("GET /robots.txt"), "router.route.GET.robots.txt.service"},
		{"app.latency", route("GET /x"), "app.latency.route.GET.x"},
	} {
		if got := SeriesName(tc.name, tc.dims); got != tc.want {
			t.Errorf("SeriesName(%q, %q) = %q, want %q", tc.name, tc.dims, got, tc.want)
		}
	}
}

// TestRouteGauges: route series become gauges named with their route,
// sanitized, without a source.
func TestRouteGauges(t *testing.T) {
	start := time.Date(2024, 5, 1, 12, 34, 0, 0, time.UTC)
	p := parse.NewParser(parse.Options{RouteMetrics: parse.RoutesAuto, Routes: []string{"/users/:id"}})
	var ms []parse.Measurement
	for _, path := range []string{"/users/42", "/users/43", "/search/café \"x\""} {
		line := fmt.Sprintf(`<158>1 2024-05-01T12:34:56Z host heroku router - at=info method=GET path=%q dyno=web.1 connect=1ms service=20ms status=200 bytes=13`, path)
		p.Frame([]byte(line), start, func(m *parse.Measurement) {
			if len(m.Dims) > 0 {
				c := *m
				c.Name, c.Dims, c.Unit = slices.Clone(m.Name), slices.Clone(m.Dims), slices.Clone(m.Unit)
				ms = append(ms, c)
			}
		})
	}
	gauges, skipped, _ := Gauges(start.Unix(), minuteOf(t, "d1", start, ms).Summaries([]float64{95}), []float64{95})
	var got []string
	for _, g := range gauges {
		s := g.Name
		if g.Source != "" {
			s += " source=" + g.Source
		}
		if g.Count != nil {
			s += fmt.Sprintf(" count=%d sum=%g", *g.Count, *g.Sum)
		} else {
			s += fmt.Sprintf(" value=%g", *g.Value)
		}
		got = append(got, s)
	}
	want := []string{
		"router.route.GET.search.caf_._x_.requests value=1",
		"router.route.GET.search.caf_._x_.service count=1 sum=20",
		"router.route.GET.search.caf_._x_.service.perc95 value=20",
		"router.route.GET.search.caf_._x_.status.2xx value=1",
		"router.route.GET.users._id.requests value=2",
		"router.route.GET.users._id.service count=2 sum=40",
		"router.route.GET.users._id.service.perc95 value=20",
		"router.route.GET.users._id.status.2xx value=2",
	}
	slices.Sort(got)
	if skipped != 0 || !slices.Equal(got, want) {
		t.Errorf("gauges (%d skipped):\n%s\nwant:\n%s", skipped, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAnnotations: the API lines of a minute reach the fake Librato through
// the Engine: the minute's gauges, then one annotation per release, deploy
// and rollback, titled without the user, at the line's time, each once
// though the minute's first request was retried; an annotation Librato
// refuses is dropped, not split.
func TestAnnotations(t *testing.T) {
	h := newHarness(t, testConfig())
	start := time.Now().Truncate(time.Minute).Add(-time.Minute)
	p := parse.NewParser(parse.Options{})
	var ms []parse.Measurement
	for i, msg := range []string{"Deploy d706b4a by user ned@example.com", "Release v74 created by user ned@example.com",
		"Rollback to v73 by user kate@example.com", "Set maintenance mode on by user kate@example.com"} {
		at := start.Add(time.Duration(2+13*i) * time.Second)
		p.Frame([]byte("<134>1 "+at.Format(time.RFC3339Nano)+" host app api - "+msg), start, func(m *parse.Measurement) {
			c := *m
			c.Name, c.Member = slices.Clone(m.Name), slices.Clone(m.Member)
			ms = append(ms, c)
		})
	}
	mn := minuteOf(t, "d1", start, ms)
	if len(mn.Events) != 3 {
		t.Fatalf("%d events", len(mn.Events))
	}
	h.fake.FailNext(2, fakelibrato.Maintenance) // the gauges' request, twice
	h.o.Closed([]*rollup.Minute{mn})
	outlettest.WaitFor(t, "three annotations", func() bool { return len(h.fake.Annotations()) == 3 })
	time.Sleep(50 * time.Millisecond)
	var got []string
	for _, a := range h.fake.Annotations() {
		got = append(got, fmt.Sprintf("%s %s +%ds %q", a.User, a.Stream, a.StartTime-start.Unix(), a.Title))
	}
	want := []string{`u1@example.com heroku.deploys +2s "Deploy d706b4a"`, `u1@example.com heroku.deploys +15s "Release v74 created"`,
		`u1@example.com heroku.deploys +28s "Rollback to v73"`}
	if !slices.Equal(got, want) {
		t.Errorf("annotations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	names := map[string]float64{}
	for _, m := range h.fake.Measurements() {
		names[m.Name] = *m.Value
	}
	if names["heroku.deploys"] != 1 || names["heroku.releases"] != 1 || names["heroku.rollbacks"] != 1 ||
		names["heroku.release.version"] != 74 || names["heroku.maintenance"] != 1 {
		t.Errorf("gauges %v", names)
	}
	if got := h.reg.Drain("d1").Get(stats.Posted); got != uint64(len(h.fake.Measurements())+3) {
		t.Errorf("posted %d", got)
	}
	for _, r := range h.fake.Requests() {
		if strings.HasPrefix(r.Path, "/v1/annotations/") {
			var body map[string]any
			if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 2 || strings.Contains(string(r.Body), "@") {
				t.Errorf("annotation body %s", r.Body)
			}
		}
	}

	// An annotation Librato refuses (400) is dropped, not split or retried.
	h2 := newHarness(t, testConfig())
	bad := &rollup.Minute{Drain: "d1", Start: start.Unix(), Series: map[string]*rollup.Series{},
		Events: []rollup.Event{{Name: "heroku.deploys", Title: strings.Repeat("x", 300), Time: start.UnixNano()}}}
	h2.o.Closed([]*rollup.Minute{bad})
	outlettest.WaitFor(t, "the refused annotation dropped", func() bool { return h2.reg.Drain("d1").Get(stats.PostRejected) == 1 })
	if n := len(h2.fake.Requests()); n != 1 {
		t.Errorf("%d requests for a refused annotation", n)
	}
}
