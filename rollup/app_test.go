package rollup

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// TestAppRollup: with Config.AppRollup, every count, measure and unique
// of a drain — dynos', sourceless — is also in one series per name and app
// (marked RollupApp, no source), with merged percentiles; route series
// (which repeat router lines) and samples are not rolled in; two apps are
// two rollups.
func TestAppRollup(t *testing.T) {
	d := stats.NewRegistry().Drain("d1")
	s := NewStore(Config{Grace: 90 * time.Second, AppRollup: true})
	rng := rand.New(rand.NewPCG(1, 2))
	withApp := func(x parse.Measurement, app string) parse.Measurement {
		if len(x.Dims) > 0 {
			x.Dims = append(AppendDim(nil, parse.AppDim, app), append([]byte{parse.DimSep}, x.Dims...)...)
		} else {
			x.Dims = AppendDim(nil, parse.AppDim, app)
		}
		return x
	}
	var batch []parse.Measurement
	var all []float64
	var requests float64
	for i := range 3000 {
		src := []string{"web.1", "web.2", ""}[i%3]
		v := math.Exp(rng.Float64() * 8)
		lat := m(parse.Measure, "router.service", src, v, time.Duration(i)*time.Millisecond)
		req := m(parse.Count, "router.requests", src, 1, time.Duration(i)*time.Millisecond)
		if src != "" {
			lat.TypeSource, req.TypeSource = []byte("web"), []byte("web")
		}
		routed := m(parse.Count, "router.requests", "", 1, time.Duration(i)*time.Millisecond)
		routed.Dims = AppendDim(nil, parse.RouteDim, "GET /users/:id")
		batch = append(batch, withApp(lat, "alpha"), withApp(req, "alpha"), withApp(routed, "alpha"),
			withApp(m(parse.Sample, "mem", "web.1", v, 0), "alpha"))
		all = append(all, v)
		requests++
	}
	batch = append(batch, withApp(m(parse.Count, "router.requests", "web.1", 5, 0), "beta"))
	s.Add(t0.Add(10*time.Second), d, batch)
	minutes := s.FlushAll()
	if len(minutes) != 1 {
		t.Fatalf("%d minutes", len(minutes))
	}
	var apps []string
	for _, se := range minutes[0].Series {
		if Marker(se.Source, se.Dims, se.ProcessType) != RollupApp {
			continue
		}
		apps = append(apps, App(se.Dims)+" "+se.Name)
		if se.Source != "" {
			t.Errorf("app rollup %q has source %q", se.Name, se.Source)
		}
		switch {
		case App(se.Dims) == "beta":
			if se.Sum != 5 {
				t.Errorf("beta's requests: %v", se.Sum)
			}
		case se.Name == "router.requests":
			if se.Sum != requests {
				t.Errorf("alpha's requests: %v, want %v (route series not counted again)", se.Sum, requests)
			}
		case se.Name == "router.service":
			slices.Sort(all)
			want := all[int(math.Ceil(0.95*float64(len(all))))-1]
			if got := se.Quantile(0.95); math.Abs(got-want) > 0.01*want || se.Count != int64(len(all)) {
				t.Errorf("alpha's p95 %v (count %d), want %v (count %d)", got, se.Count, want, len(all))
			}
		}
	}
	slices.Sort(apps)
	if want := []string{"alpha router.requests", "alpha router.service", "beta router.requests"}; !slices.Equal(apps, want) {
		t.Errorf("app rollups %v, want %v (no sample)", apps, want)
	}
	// Without it, none.
	s = NewStore(Config{Grace: 90 * time.Second})
	s.Add(t0.Add(10*time.Second), d, batch)
	for _, se := range s.FlushAll()[0].Series {
		if Marker(se.Source, se.Dims, se.ProcessType) == RollupApp {
			t.Fatalf("an app rollup without AppRollup: %s", se.Name)
		}
	}
}

// TestMarker: the rollup marker of each kind of series.
func TestMarker(t *testing.T) {
	app := string(AppendDim(nil, parse.AppDim, "a"))
	route := string(AppendDim(AppendDim(nil, parse.AppDim, "a"), parse.RouteDim, "GET /"))
	for _, c := range []struct {
		source, dims string
		pt           bool
		want         string
	}{
		{"web.1", "", false, RollupDyno},
		{"DATABASE", app, false, RollupDyno},
		{"web", app, true, RollupProcessType},
		{"", route, false, RollupRoute},
		{"staging", route, false, RollupRoute}, // a source prefix
		{"", string(appRollupDims(nil, []byte(route))), false, RollupApp},
		{"", app, false, RollupNone},
		{"", "", false, RollupNone},
	} {
		if got := Marker(c.source, c.dims, c.pt); got != c.want {
			t.Errorf("Marker(%q, %q, %v) = %s, want %s", c.source, c.dims, c.pt, got, c.want)
		}
	}
	if got, want := string(appRollupDims(nil, []byte(route))), string(AppendDim(AppendDim(nil, parse.AppDim, "a"), parse.RollupDim, RollupApp)); got != want {
		t.Errorf("appRollupDims = %q, want %q", got, want)
	}
	if got := LabelDims(route); got != string(AppendDim(nil, parse.RouteDim, "GET /")) {
		t.Errorf("LabelDims = %q", got)
	}
}
