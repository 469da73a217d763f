package otlp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// postMinutes encodes minutes in order as a lane does and posts them to the
// fake receiver, failing on any refusal.
func postMinutes(t *testing.T, b *Backend, d *outlet.Destination, temp outlet.Temporality, minutes []*rollup.Minute) *fakeotlp.Server {
	t.Helper()
	fake := fakeotlp.New(fakeotlp.Strict)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	o := otlpOutlet(srv.URL+"/v1/metrics", temp)
	var prev *outlet.Totals
	for _, m := range minutes {
		enc, err := b.Encode(d, o, m, prev)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range enc.Reqs {
			if res := b.Send(t.Context(), o, r); res.Outcome != outlet.Accepted || res.Status != http.StatusOK || res.Rejected != 0 {
				t.Fatalf("minute %v: %+v", time.Unix(m.Start, 0).UTC(), res)
			}
		}
		prev = enc.Totals
	}
	return fake
}

// TestCounterHoldOTLP: with Hold, a cumulative count keeps being sent with
// its running total and its start time, and a Summary with its running
// count and sum, Hold after their last change; delta points are not held.
func TestCounterHoldOTLP(t *testing.T) {
	first := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var minutes []*rollup.Minute
	for i := range 8 {
		start := first.Add(time.Duration(i) * time.Minute)
		ms := []parse.Measurement{meas(parse.Sample, "heartbeat", "web.1", 1, start)}
		if i == 0 {
			ms = append(ms, meas(parse.Count, "sparse.errors", "web.1", 1, start), meas(parse.Measure, "rare.latency", "web.1", 40, start))
		}
		minutes = append(minutes, minuteOf(t, "d1", start, ms))
	}
	b := newBackend(Config{Hold: 3 * time.Minute})
	for _, temp := range []outlet.Temporality{outlet.Cumulative, outlet.Delta} {
		fake := postMinutes(t, b, testDrain, temp, minutes)
		var got []string
		for _, p := range fake.Points() {
			if p.Metric == "heartbeat" {
				continue
			}
			v := p.Value
			if p.Summary != nil {
				v = p.Summary.Sum
				if len(p.Summary.QuantileValues) == 0 {
					v = -v // held: no quantiles
				}
			}
			got = append(got, fmt.Sprintf("%s:%d-%d=%g", p.Metric, (p.Start-uint64(first.UnixNano()))/1e9/60, (p.Time-uint64(first.UnixNano()))/1e9/60, v))
		}
		slices.Sort(got)
		want := "rare.latency:0-1=40 rare.latency:0-2=-40 rare.latency:0-3=-40 rare.latency:0-4=-40 " +
			"sparse.errors:0-1=1 sparse.errors:0-2=1 sparse.errors:0-3=1 sparse.errors:0-4=1"
		if temp == outlet.Delta {
			want = "rare.latency:0-1=0 sparse.errors:0-1=1" // a histogram (value 0 here), and the delta sum
		}
		if s := strings.Join(got, " "); s != want {
			t.Errorf("%s: points\n%s\nwant\n%s", temp, s, want)
		}
	}
}

// TestAppsAreResources: on the built-in drain, each sending app's series
// go out under a resource of their own (service.name = the app), the
// drain's own series under the drain's name; the app rollup is marked
// drainmeter.rollup=app and route series route.
func TestAppsAreResources(t *testing.T) {
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	store := rollup.NewStore(rollup.Config{Grace: time.Minute, AppRollup: true})
	d := stats.NewRegistry().Drain("default")
	for _, app := range []string{"beta-app", "alpha-app"} {
		p := parse.NewParser(parse.Options{ProcessTypes: true, App: app, RouteMetrics: parse.RoutesAuto})
		var ms []parse.Measurement
		collect := func(m *parse.Measurement) {
			c := *m
			c.Name, c.Source, c.TypeSource, c.Dims, c.Unit, c.Member = clone(m.Name), clone(m.Source), clone(m.TypeSource), clone(m.Dims), clone(m.Unit), clone(m.Member)
			ms = append(ms, c)
		}
		for _, line := range []string{
			"<190>1 2025-03-01T10:00:05+00:00 host app web.1 - count#jobs.done=2",
			"<158>1 2025-03-01T10:00:06+00:00 host heroku router - at=info method=GET path=/users/42 host=x dyno=web.1 connect=1ms service=18ms status=200 bytes=13",
		} {
			p.Frame([]byte(line), start.Add(10*time.Second), collect)
		}
		store.Add(start.Add(10*time.Second), d, ms)
	}
	store.Add(start.Add(10*time.Second), d, []parse.Measurement{meas(parse.Count, "drainmeter.frames", "", 4, start)})
	minutes := store.FlushAll()
	if len(minutes) != 1 {
		t.Fatalf("%d minutes", len(minutes))
	}
	fake := postMinutes(t, newBackend(Config{}), &outlet.Destination{ID: "default", Name: "drainmeter"}, outlet.Cumulative, minutes)
	var got []string
	for _, p := range fake.Points() {
		if p.Metric != "jobs.done" && p.Metric != "router.requests" && p.Metric != "drainmeter.frames" {
			continue
		}
		got = append(got, fmt.Sprintf("%s %s source=%s rollup=%s route=%s app=%s =%g", p.Resource["service.name"], p.Metric,
			p.Attrs["source"], p.Attrs["drainmeter.rollup"], p.Attrs["route"], p.Attrs["app"], p.Value))
	}
	slices.Sort(got)
	want := []string{
		"alpha-app jobs.done source= rollup=app route= app= =2",
		"alpha-app jobs.done source=web rollup=process_type route= app= =2",
		"alpha-app jobs.done source=web.1 rollup=dyno route= app= =2",
		"alpha-app router.requests source= rollup=app route= app= =1",
		"alpha-app router.requests source= rollup=route route=GET /users/:id app= =1",
		"alpha-app router.requests source=web rollup=process_type route= app= =1",
		"alpha-app router.requests source=web.1 rollup=dyno route= app= =1",
		"beta-app jobs.done source= rollup=app route= app= =2",
		"beta-app jobs.done source=web rollup=process_type route= app= =2",
		"beta-app jobs.done source=web.1 rollup=dyno route= app= =2",
		"beta-app router.requests source= rollup=app route= app= =1",
		"beta-app router.requests source= rollup=route route=GET /users/:id app= =1",
		"beta-app router.requests source=web rollup=process_type route= app= =1",
		"beta-app router.requests source=web.1 rollup=dyno route= app= =1",
		"drainmeter drainmeter.frames source= rollup=app route= app= =4",
		"drainmeter drainmeter.frames source= rollup=none route= app= =4",
	}
	if !slices.Equal(got, want) {
		t.Errorf("points:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
