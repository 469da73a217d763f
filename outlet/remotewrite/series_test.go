package remotewrite

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// TestAppsAndAttributes: a series' app (the built-in drain's sending app)
// is its job; the drain's own series keep the drain's name; the drain's
// attributes are labels of every series; the app rollup is marked app.
func TestAppsAndAttributes(t *testing.T) {
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	withApp := func(m parse.Measurement, app string) parse.Measurement {
		m.Dims = rollup.AppendDim(nil, parse.AppDim, app)
		return m
	}
	mn := minuteOf(t, "default", start, []parse.Measurement{
		withApp(meas(parse.Count, "jobs", "web.1", 2, start), "alpha"),
		withApp(meas(parse.Count, "jobs", "web.1", 3, start), "beta"),
		meas(parse.Count, "drainmeter.frames", "", 4, start),
	})
	rollup.AddAppRollups(mn)
	d := &outlet.Destination{ID: "default", Name: "drainmeter", Attributes: []outlet.Attribute{{Key: "deployment.environment.name", Value: "production"}}}
	enc, err := newBackend(Config{}).Encode(d, nil, mn, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range enc.Reqs {
		for _, x := range decodeRequest(t, r) {
			got = append(got, x.id())
		}
	}
	slices.Sort(got)
	want := []string{
		`drainmeter_frames_total{deployment_environment_name="production",drainmeter_rollup="app",job="drainmeter"}`,
		`drainmeter_frames_total{deployment_environment_name="production",drainmeter_rollup="none",job="drainmeter"}`,
		`jobs_total{deployment_environment_name="production",drainmeter_rollup="app",job="alpha"}`,
		`jobs_total{deployment_environment_name="production",drainmeter_rollup="app",job="beta"}`,
		`jobs_total{deployment_environment_name="production",drainmeter_rollup="dyno",job="alpha",source="web.1"}`,
		`jobs_total{deployment_environment_name="production",drainmeter_rollup="dyno",job="beta",source="web.1"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("series\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
