package loadgen

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
)

// TestAPIRoutesAreWhatTheParserMakes: the routes PathAPI records are the
// ones the parser gives its lines under APIRoutes and APIRouteMetrics, to
// the request and the millisecond.
func TestAPIRoutesAreWhatTheParserMakes(t *testing.T) {
	g := New(1, 2)
	g.SetPaths(PathAPI)
	at := time.Date(2024, 5, 1, 12, 34, 0, 0, time.UTC)
	body := bytes.Clone(g.Batch(3000, at))
	mode, _ := parse.ParseRouteMode(APIRouteMetrics)
	p := parse.NewParser(parse.Options{RouteMetrics: mode, Routes: APIRoutes})
	counts := map[RouteKey]float64{}
	measures := map[RouteKey][]float64{}
	for len(body) > 0 {
		sp := bytes.IndexByte(body, ' ')
		n, _ := strconv.Atoi(string(body[:sp]))
		frame := body[sp+1 : sp+1+n]
		body = body[sp+1+n:]
		p.Frame(frame, at, func(m *parse.Measurement) {
			route, ok := parse.DimValue(string(m.Dims), parse.RouteDim)
			if !ok {
				return
			}
			k := RouteKey{string(m.Name), route, at.Unix()}
			if m.Kind == parse.Measure {
				measures[k] = append(measures[k], m.Value)
			} else {
				counts[k] += m.Value
			}
		})
	}
	tot := g.Totals()
	if len(counts) != len(tot.RouteCounts) || len(measures) != len(tot.RouteMeasures) || len(tot.RouteMeasures) < len(apiRoutes)-2 {
		t.Fatalf("%d/%d count series, %d/%d measure series", len(counts), len(tot.RouteCounts), len(measures), len(tot.RouteMeasures))
	}
	for k, v := range tot.RouteCounts {
		if counts[k] != v {
			t.Errorf("%+v: parsed %g, want %g", k, counts[k], v)
		}
	}
	for k, vs := range tot.RouteMeasures {
		if got := measures[k]; len(got) != len(vs) {
			t.Errorf("%+v: parsed %d values, want %d", k, len(got), len(vs))
		}
	}
}
