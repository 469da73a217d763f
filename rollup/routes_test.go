package rollup

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// routeReq is one router line's route series, as the parser emits them.
func routeReq(route string, service float64, at time.Duration) []parse.Measurement {
	dims := AppendDim(nil, parse.RouteDim, route)
	t := t0.Add(at)
	return []parse.Measurement{
		{Kind: parse.Measure, Name: []byte("router.service"), Value: service, Unit: []byte("ms"), Dims: dims, Time: t},
		{Kind: parse.Count, Name: []byte("router.requests"), Value: 1, Dims: dims, Time: t},
		{Kind: parse.Count, Name: []byte("router.status.2xx"), Value: 1, Dims: dims, Time: t},
	}
}

// routesOf renders each route of a minute: requests and service count and sum.
func routesOf(mn *Minute) []string {
	type acc struct{ requests, n, sum float64 }
	by := map[string]*acc{}
	for _, s := range mn.Series {
		r, ok := parse.DimValue(s.Dims, parse.RouteDim)
		if !ok {
			continue
		}
		if by[r] == nil {
			by[r] = &acc{}
		}
		switch s.Name {
		case "router.requests":
			by[r].requests += s.Sum
		case "router.service":
			by[r].n += float64(s.Count)
			by[r].sum += s.Sum
		}
	}
	var out []string
	for r, a := range by {
		out = append(out, fmt.Sprintf("%s requests=%g service.count=%g service.sum=%g", r, a.requests, a.n, a.sum))
	}
	slices.Sort(out)
	return out
}

// TestRoutesCap: at most MaxRoutesPerDrain routes per drain and minute;
// the requests of further routes count into route "other", exactly, and as
// overflow; the cap holds across the durable mode's swaps (TakeOpen) and
// starts again each minute.
func TestRoutesCap(t *testing.T) {
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: time.Hour, MaxRoutesPerDrain: 2})
	var batch []parse.Measurement
	for _, r := range []struct {
		route   string
		service float64
	}{{"GET /a", 1}, {"GET /b", 2}, {"GET /a", 3}, {"GET /c", 4}, {"other", 5}, {"GET /d", 6}} {
		batch = append(batch, routeReq(r.route, r.service, time.Second)...)
	}
	s.Add(t0, d, batch)
	partial := s.TakeOpen()
	s.Add(t0, d, append(routeReq("GET /e", 7, 2*time.Second), routeReq("GET /b", 8, 2*time.Second)...))
	s.Add(t0, d, routeReq("GET /e", 9, 61*time.Second)) // the next minute: a route of its own
	closed := s.FlushAll()
	if len(partial) != 1 || len(closed) != 2 {
		t.Fatalf("%d partials, %d minutes", len(partial), len(closed))
	}
	whole := partial[0]
	if _, err := whole.Merge(closed[0]); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /a requests=2 service.count=2 service.sum=4",
		"GET /b requests=2 service.count=2 service.sum=10",
		"other requests=4 service.count=4 service.sum=22", // /c, other, /d, /e
	}
	if got := routesOf(whole); !slices.Equal(got, want) {
		t.Errorf("first minute:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := routesOf(closed[1]); !slices.Equal(got, []string{"GET /e requests=1 service.count=1 service.sum=9"}) {
		t.Errorf("next minute: %q", got)
	}
	if got := d.Get(stats.Overflow); got != 3*3 { // three requests of three measurements each
		t.Errorf("overflow %d, want 9", got)
	}
}

// TestPathScan: 100 000 distinct random paths in a minute (normalized
// paths that are all different) keep the drain's series and memory
// bounded, and every request is counted.
func TestPathScan(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are measured without the race detector")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: time.Hour})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const requests = 100_000
	batch := make([]parse.Measurement, 0, 3*100)
	for i := range requests {
		route := fmt.Sprintf("GET /%s/wp-%x.php", []string{"admin", "x", "cgi-bin"}[i%3], rng.Uint64())
		batch = append(batch, routeReq(route, float64(i%500), time.Duration(i%60)*time.Second)...)
		if len(batch) == cap(batch) {
			s.Add(t0, d, batch)
			batch = batch[:0]
		}
	}
	s.Add(t0, d, batch)
	runtime.GC()
	runtime.ReadMemStats(&after)
	open := s.OpenSeries()
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d requests on distinct paths: %d series open, heap +%d KiB, overflow %d", requests, open, grew>>10, d.Get(stats.Overflow))
	if max := 3 * (DefaultConfig.MaxRoutesPerDrain + 1); open > max {
		t.Errorf("%d series open, want at most %d", open, max)
	}
	if grew > 8<<20 {
		t.Errorf("heap grew %d bytes", grew)
	}
	if got, want := d.Get(stats.Overflow), uint64(3*(requests-DefaultConfig.MaxRoutesPerDrain)); got != want {
		t.Errorf("overflow %d, want %d", got, want)
	}
	var total float64
	for _, se := range s.FlushAll()[0].Series {
		if se.Name == "router.requests" {
			total += se.Sum
		}
	}
	if total != requests {
		t.Errorf("%g requests counted, want %d", total, requests)
	}
}

func event(title string, at time.Duration) parse.Measurement {
	return parse.Measurement{Kind: parse.Event, Name: []byte("heroku.deploys"), Value: 1, Member: []byte(title), Time: t0.Add(at)}
}

// TestEvents: events stay with their minute (not series), once each, at
// most MaxEventsPerMinute; they go through the partial encoding (version 3,
// version 2 without events) and merge.
func TestEvents(t *testing.T) {
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: time.Hour})
	s.Add(t0, d, []parse.Measurement{event("Release v74 created", 2*time.Second), event("Deploy d706b4a", time.Second),
		event("Release v74 created", 2*time.Second), m(parse.Count, "heroku.releases", "", 1, 2*time.Second)})
	part := s.TakeOpen()
	s.Add(t0, d, []parse.Measurement{event("Rollback to v73", 50*time.Second)})
	rest := s.FlushAll()
	if len(part) != 1 || len(rest) != 1 || len(part[0].Series) != 1 {
		t.Fatalf("partials %v, rest %v", part, rest)
	}
	enc := part[0].AppendBinary(nil)
	if enc[0] != 3 {
		t.Errorf("a minute with events encoded as version %d", enc[0])
	}
	merged, err := DecodeMinute("d", t0.Unix(), enc)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := DecodeMinute("d", t0.Unix(), enc) // the same partial twice: events once
	for _, o := range []*Minute{rest[0], again} {
		if _, err := merged.Merge(o); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DecodeMinute("d", t0.Unix(), merged.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, e := range sortedEvents(got.Events) {
		titles = append(titles, fmt.Sprintf("%s %s %s", time.Unix(0, e.Time).UTC().Format(time.TimeOnly), e.Name, e.Title))
	}
	want := []string{"12:34:01 heroku.deploys Deploy d706b4a", "12:34:02 heroku.deploys Release v74 created", "12:34:50 heroku.deploys Rollback to v73"}
	if !slices.Equal(titles, want) {
		t.Errorf("events %q, want %q", titles, want)
	}
	if c := got.Series["heroku.releases\x00"]; c == nil || c.Sum != 2 {
		t.Errorf("releases: %+v", c)
	}

	// A minute without events encodes as version 2, as before.
	s.Add(t0, d, []parse.Measurement{m(parse.Count, "x", "", 1, 0)})
	if enc := s.FlushAll(); len(enc) != 0 {
		t.Fatalf("a closed minute reopened: %v", enc)
	}
	s2 := NewStore(Config{Grace: time.Hour})
	s2.Add(t0, d, []parse.Measurement{m(parse.Count, "x", "", 1, 0)})
	if enc := s2.FlushAll()[0].AppendBinary(nil); enc[0] != 2 {
		t.Errorf("a minute without events encoded as version %d", enc[0])
	}

	// At most MaxEventsPerMinute a minute; the rest is overflow.
	s3 := NewStore(Config{Grace: time.Hour})
	d3 := stats.NewRegistry().Drain("d3")
	var many []parse.Measurement
	for i := range MaxEventsPerMinute + 5 {
		many = append(many, event(fmt.Sprintf("Deploy %d", i), time.Second))
	}
	s3.Add(t0, d3, many)
	if got := s3.FlushAll()[0]; len(got.Events) != MaxEventsPerMinute || d3.Get(stats.Overflow) != 5 {
		t.Errorf("%d events kept, overflow %d", len(got.Events), d3.Get(stats.Overflow))
	}
}

// TestDecodeEventsTruncated: every cut of an encoding with events fails.
func TestDecodeEventsTruncated(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour})
	s.Add(t0, stats.NewRegistry().Drain("d"), append(randomBatch(rand.New(rand.NewPCG(1, 1)), 8), event("Deploy 1", 0), event("Deploy 2", 0)))
	b := s.FlushAll()[0].AppendBinary(nil)
	if _, err := DecodeMinute("d", 0, b); err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		if _, err := DecodeMinute("d", 0, b[:n]); err == nil {
			t.Fatalf("a cut at %d of %d bytes decoded", n, len(b))
		}
	}
}

// TestLogfmtRoutesAndEvents: the log outlet's lines show a series' route
// and the minute's events.
func TestLogfmtRoutesAndEvents(t *testing.T) {
	s := Summary{Kind: parse.Count, Name: "router.requests", Dims: string(AppendDim(nil, parse.RouteDim, "GET /users/:id")), Value: 2}
	got := string(AppendLogfmt(nil, "d", t0.Unix(), &s, nil))
	if want := `at=rollup drain=d minute=2024-05-01T12:34:00Z kind=count name=router.requests route="GET /users/:id" value=2` + "\n"; got != want {
		t.Errorf("got  %swant %s", got, want)
	}
	e := Event{Name: "heroku.deploys", Title: "Release v74 created", Time: t0.Add(7500 * time.Millisecond).UnixNano()}
	got = string(AppendEventLogfmt(nil, "d", t0.Unix(), &e))
	if want := `at=event drain=d minute=2024-05-01T12:34:00Z name=heroku.deploys time=2024-05-01T12:34:07.5Z title="Release v74 created"` + "\n"; got != want {
		t.Errorf("got  %swant %s", got, want)
	}
}
