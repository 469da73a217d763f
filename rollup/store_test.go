package rollup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

var t0 = time.Date(2024, 5, 1, 12, 34, 0, 0, time.UTC)

func m(kind parse.Kind, name, source string, v float64, at time.Duration) parse.Measurement {
	return parse.Measurement{Kind: kind, Name: []byte(name), Source: []byte(source), Value: v, Time: t0.Add(at)}
}

func render(minutes []*Minute) string {
	var b []byte
	pcts := []float64{50, 95, 99}
	for _, mn := range minutes {
		for _, s := range mn.Summaries(pcts) {
			b = AppendLogfmt(b, mn.Drain, mn.Start, &s, pcts)
		}
	}
	return string(b)
}

func TestStoreMinutes(t *testing.T) {
	reg := stats.NewRegistry()
	d := reg.Drain("d1")
	s := NewStore(Config{Grace: 90 * time.Second, MaxSeriesPerDrain: 6})
	now := t0.Add(30 * time.Second)

	unique := m(parse.Unique, "users", "web.1", 1, 0)
	batch := []parse.Measurement{
		m(parse.Measure, "lat", "web.1", 4, 1*time.Second),
		m(parse.Measure, "lat", "web.1", 2, 2*time.Second),
		m(parse.Measure, "lat", "web.1", 9, 3*time.Second),
		m(parse.Count, "jobs", "web.1", 2, 4*time.Second),
		m(parse.Count, "jobs", "web.1", 3, 5*time.Second),
		m(parse.Sample, "mem", "web.1", 7, 20*time.Second),
		m(parse.Sample, "mem", "web.1", 5, 10*time.Second),  // earlier timestamp: not the last
		m(parse.Sample, "mem", "web.1", 8, 20*time.Second),  // tie: the later arrival wins
		m(parse.Count, "lat", "web.1", 1, 6*time.Second),    // kind conflict
		m(parse.Count, "next", "", 1, 65*time.Second),       // the next minute
		m(parse.Count, "jobs", "web.1", 1, -61*time.Second), // a minute already past its grace
		m(parse.Count, "jobs", "web.1", 1, 6*time.Minute),   // more than 5 minutes ahead
	}
	batch[0].Unit = []byte("ms")
	for _, u := range []string{"a", "b", "a", "c"} {
		unique.Member = []byte(u)
		batch = append(batch, unique)
	}
	typed := m(parse.Measure, "lat", "web.2", 100, 7*time.Second)
	typed.TypeSource = []byte("web")
	batch = append(batch, typed)
	for i := range 3 { // overflow: the minute already holds 6 series
		batch = append(batch, m(parse.Count, fmt.Sprintf("x%d", i), "", 1, 8*time.Second))
	}
	s.Add(now, d, batch)

	if got := s.Flush(t0.Add(60*time.Second + 89*time.Second)); len(got) != 0 {
		t.Fatalf("flushed %d minutes before the grace period ended", len(got))
	}
	got := render(s.Flush(t0.Add(150 * time.Second)))
	want := strings.Join([]string{
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=count name=jobs source=web.1 value=5",
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=measure name=lat source=web count=1 sum=100 min=100 max=100 sum_squares=10000 p50=100 p95=100 p99=100",
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=measure name=lat source=web.1 unit=ms count=3 sum=15 min=2 max=9 sum_squares=101 p50=3.9783393623363965 p95=8.96337059566417 p99=8.96337059566417",
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=measure name=lat source=web.2 count=1 sum=100 min=100 max=100 sum_squares=10000 p50=100 p95=100 p99=100",
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=sample name=mem source=web.1 value=8",
		"at=rollup drain=d1 minute=2024-05-01T12:34:00Z kind=unique name=users source=web.1 value=3",
		"",
	}, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	snap := d.Snapshot()
	for c, want := range map[stats.Counter]uint64{stats.Late: 1, stats.Future: 1, stats.Overflow: 3, stats.KindConflict: 1} {
		if snap[c] != want {
			t.Errorf("%s = %d, want %d", c, snap[c], want)
		}
	}
	// A line for the closed minute is late and never reopens it.
	s.Add(t0.Add(150*time.Second), d, []parse.Measurement{m(parse.Count, "jobs", "web.1", 1, 59*time.Second)})
	if d.Get(stats.Late) != 2 {
		t.Errorf("late = %d, want 2", d.Get(stats.Late))
	}
	rest := render(s.FlushAll())
	if rest != "at=rollup drain=d1 minute=2024-05-01T12:35:00Z kind=count name=next value=1\n" {
		t.Errorf("FlushAll: %q", rest)
	}
}

// exactNearestRank is the ceil(q·n)-th smallest value.
func exactNearestRank(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func TestPercentileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100_000
	for _, dist := range []struct {
		name string
		gen  func() float64
	}{
		{"lognormal", func() float64 { return math.Exp(3 + 1.5*rng.NormFloat64()) }},
		{"pareto", func() float64 { return 1 / math.Pow(rng.Float64(), 1/1.2) }},
		{"mixed sign", func() float64 { return 100 * rng.NormFloat64() }},
	} {
		t.Run(dist.name, func(t *testing.T) {
			values := make([]float64, n)
			whole := newSeries(parse.Measure, "x\x00", 1, 0)
			parts := make([]*Series, 10)
			for i := range parts {
				parts[i] = newSeries(parse.Measure, "x\x00", 1, 0)
			}
			for i := range values {
				v := dist.gen()
				values[i] = v
				me := parse.Measurement{Kind: parse.Measure, Value: v, Time: t0}
				whole.observe(&me)
				parts[i%10].observe(&me)
			}
			merged := newSeries(parse.Measure, "x\x00", 1, 0)
			for _, p := range parts {
				if err := merged.Merge(p); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(values)
			pcts := []float64{1, 25, 50, 90, 95, 99, 99.9}
			for _, s := range []*Series{whole, merged} {
				sum := s.Summarize(pcts)
				if sum.Count != n || sum.Min != values[0] || sum.Max != values[n-1] {
					t.Fatalf("count/min/max %d %v %v", sum.Count, sum.Min, sum.Max)
				}
				for i, p := range pcts {
					exact := exactNearestRank(values, p/100)
					if rel := math.Abs(sum.Percentiles[i]-exact) / math.Abs(exact); rel > 0.01 {
						t.Errorf("p%v = %v, exact %v: %.3f%% off", p, sum.Percentiles[i], exact, 100*rel)
					}
				}
			}
		})
	}
}

func TestUniqueAccuracy(t *testing.T) {
	for _, n := range []int{1, 10, 1000, 50_000} {
		s := newSeries(parse.Unique, "u\x00", 1, 0)
		for i := range n {
			for range 2 { // every member twice
				me := parse.Measurement{Kind: parse.Unique, Member: fmt.Appendf(nil, "user-%d", i), Time: t0}
				s.observe(&me)
			}
		}
		got := s.Summarize(nil).Value
		if rel := math.Abs(got-float64(n)) / float64(n); rel > 0.02 {
			t.Errorf("%d members: estimate %v (%.2f%% off)", n, got, 100*rel)
		}
	}
}

// TestNearestRankSmall: with few values the rank definition matters. For
// 10, 20 … 100 the nearest-rank p95 is 100 (the 10th value); DDSketch's own
// rank q·(n-1) would give 90.
func TestNearestRankSmall(t *testing.T) {
	s := newSeries(parse.Measure, "x\x00", 1, 0)
	for i := 1; i <= 10; i++ {
		me := parse.Measurement{Kind: parse.Measure, Value: float64(10 * i), Time: t0}
		s.observe(&me)
	}
	pcts := []float64{10, 50, 90, 95, 99}
	want := []float64{10, 50, 90, 100, 100}
	got := s.Summarize(pcts).Percentiles
	for i := range pcts {
		if math.Abs(got[i]-want[i]) > 0.01*want[i] {
			t.Errorf("p%v = %v, want %v (nearest rank)", pcts[i], got[i], want[i])
		}
	}
}

// TestClosedEarlyStaysClosed: FlushAll (SIGTERM) closes minutes before their
// grace ends; a line for such a minute is late and never reopens it.
func TestClosedEarlyStaysClosed(t *testing.T) {
	d := stats.NewRegistry().Drain("d")
	s := NewStore(Config{Grace: 90 * time.Second})
	s.Add(t0.Add(10*time.Second), d, []parse.Measurement{m(parse.Count, "c", "", 1, time.Second)})
	if n := len(s.FlushAll()); n != 1 {
		t.Fatalf("%d minutes", n)
	}
	s.Add(t0.Add(20*time.Second), d, []parse.Measurement{m(parse.Count, "c", "", 1, 2*time.Second)})
	if d.Get(stats.Late) != 1 || len(s.FlushAll()) != 0 {
		t.Fatalf("late %d: the closed minute reopened", d.Get(stats.Late))
	}
}

// TestOpenSeriesCountsTaken: the open series of a minute include those
// TakeOpen handed out (the durable mode's partial writes), once each.
func TestOpenSeriesCountsTaken(t *testing.T) {
	s := NewStore(Config{Grace: time.Hour})
	d := stats.NewRegistry().Drain("d")
	add := func(names ...string) {
		var ms []parse.Measurement
		for _, n := range names {
			ms = append(ms, parse.Measurement{Kind: parse.Count, Name: []byte(n), Value: 1, Time: t0})
		}
		s.Add(t0, d, ms)
	}
	add("a", "b")
	s.TakeOpen()
	add("b", "c")
	if got := s.OpenSeriesByDrain()["d"]; got != 3 {
		t.Fatalf("open series %d, want 3 (a and b handed out, b and c open)", got)
	}
}
