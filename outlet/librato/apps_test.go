package librato

import (
	"slices"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// TestAppsInTheSource: Librato has no job: on the built-in drain a series'
// app is the first part of its source (the app alone for a series without
// one), as ?source-prefix=APP makes it; the app rollup, which Librato's own
// source summaries replace, is not sent; a route stays in the name.
func TestAppsInTheSource(t *testing.T) {
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	app := func(m parse.Measurement, a string, dims ...string) parse.Measurement {
		d := rollup.AppendDim(nil, parse.AppDim, a)
		for i := 0; i < len(dims); i += 2 {
			d = rollup.AppendDim(d, dims[i], dims[i+1])
		}
		m.Dims = d
		return m
	}
	mn := minuteOf(t, "default", start, []parse.Measurement{
		app(meas(parse.Count, "jobs", "web.1", "", 2, start), "alpha"),
		app(meas(parse.Count, "jobs", "web.1", "", 3, start), "beta"),
		app(meas(parse.Count, "heroku.releases", "", "", 1, start), "alpha"),
		app(meas(parse.Count, "router.requests", "", "", 1, start), "alpha", parse.RouteDim, "GET /users/:id"),
	})
	rollup.AddAppRollups(mn)
	sums, collided := Summaries(mn, nil)
	var got []string
	for _, s := range sums {
		got = append(got, s.Name+"|"+s.Source)
	}
	want := []string{"heroku.releases|alpha", "jobs|alpha.web.1", "jobs|beta.web.1", "router.requests|alpha"}
	if collided != 0 || !slices.Equal(got, want) {
		t.Errorf("series %q (%d collided), want %q", got, collided, want)
	}
	gauges, _, _ := Gauges(mn.Start, sums, nil)
	var names []string
	for _, g := range gauges {
		names = append(names, g.Name+"|"+g.Source)
	}
	if !slices.Contains(names, "router.route.GET.users._id.requests|alpha") {
		t.Errorf("gauges %q lack the route's", names)
	}
}
