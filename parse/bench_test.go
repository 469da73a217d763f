package parse

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MixedFrames is a typical batch: router lines, runtime metrics and app lines.
var MixedFrames = [][]byte{
	[]byte(`<158>1 2024-05-01T12:34:56.789012+00:00 host heroku router - at=info method=GET path="/" host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https` + "\n"),
	[]byte(`<158>1 2024-05-01T12:34:56.889012+00:00 host heroku router - at=info method=POST path="/api/v1/items" host=myapp.herokuapp.com request_id=1601b555-6a83-4c12-8269-97c8e32cdb22 fwd="10.1.1.1" dyno=web.2 connect=0ms service=43ms status=201 bytes=512 protocol=https` + "\n"),
	[]byte(`<45>1 2024-05-01T12:34:20.123456+00:00 host heroku web.1 - source=web.1 dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99` + "\n"),
	[]byte(`<45>1 2024-05-01T12:34:20.123789+00:00 host heroku web.1 - source=web.1 dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages` + "\n"),
	[]byte(`<190>1 2024-05-01T12:34:01.000001+00:00 host app web.1 - measure#db.latency=4ms count#jobs.done sample#queue=12 unique#users=u42` + "\n"),
	[]byte(`<190>1 2024-05-01T12:34:02.000001+00:00 host app worker.3 - at=info msg="job finished" measure#job.duration=1.25s count#jobs.done=3` + "\n"),
	[]byte(`<190>1 2024-05-01T12:34:03.000001+00:00 host app web.2 - Completed 200 OK in 12ms (Views: 3.1ms | ActiveRecord: 2.2ms)` + "\n"),
	[]byte(`<158>1 2024-05-01T12:34:57.000001+00:00 host heroku router - at=error code=H12 desc="Request timeout" method=GET path="/slow" host=myapp.herokuapp.com fwd="1.2.3.4" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0` + "\n"),
}

func BenchmarkParseMixed(b *testing.B) {
	p := NewParser(Options{ProcessTypes: true})
	recv := time.Now()
	n := 0
	emit := func(m *Measurement) { n++ }
	var size int
	for _, f := range MixedFrames {
		size += len(f)
	}
	b.SetBytes(int64(size / len(MixedFrames)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Frame(MixedFrames[i%len(MixedFrames)], recv, emit)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// RouterFrames are router lines of an API with ids in its paths, quoted and
// not, with query strings and trailing slashes.
var RouterFrames = func() [][]byte {
	paths := []string{`"/users/42"`, `"/users/8f14e45f-ceea-467f-a0e6-1e2c8a3b4d5e/orders"`, `/orders/1234/items/`, `"/api/v1/things/9?expand=all"`,
		`"/search?q=caf\"e&page=2"`, `"/"`, `"/products/8f14e45fceea167a5a36dedd4bea2543"`, `"/blog/how-to-cook-pasta/"`}
	var out [][]byte
	for i, p := range paths {
		out = append(out, []byte(`<158>1 2024-05-01T12:34:56.789012+00:00 host heroku router - at=info method=GET path=`+p+
			` host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.`+strconv.Itoa(1+i%4)+
			` connect=1ms service=`+strconv.Itoa(5+7*i)+`ms status=200 bytes=1`+strconv.Itoa(i)+` protocol=https`+"\n"))
	}
	return out
}()

// BenchRoutes are the templates of the route benchmarks: an app's dozen.
var BenchRoutes = []string{"/users/:id", "/users/:id/orders", "/orders/:id/items", "/orders/:id", "/api/v1/things/:id",
	"/api/*", "/search", "/login", "/logout", "/admin/*", "/products/:id", "/"}

func benchRouter(b *testing.B, opts Options) {
	p := NewParser(opts)
	recv := time.Now()
	n := 0
	emit := func(m *Measurement) { n++ }
	var size int
	for _, f := range RouterFrames {
		size += len(f)
	}
	b.SetBytes(int64(size / len(RouterFrames)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Frame(RouterFrames[i%len(RouterFrames)], recv, emit)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	// On a shared machine the wall clock also counts others' time: lines
	// per second of this process's CPU time is the figure for one core.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseRouter: router lines without routes, the baseline.
func BenchmarkParseRouter(b *testing.B) { benchRouter(b, Options{ProcessTypes: true}) }

// BenchmarkParseRouterRoutes: router lines with templates and automatic
// normalization (the worst case: every unmatched path is normalized).
func BenchmarkParseRouterRoutes(b *testing.B) {
	benchRouter(b, Options{ProcessTypes: true, RouteMetrics: RoutesAuto, Routes: BenchRoutes})
}

func TestParseAllocs(t *testing.T) {
	api := [][]byte{
		[]byte("<134>1 2024-05-01T14:02:07.5+00:00 host app api - Release v74 created by user ned@example.com"),
		[]byte("<134>1 2024-05-01T14:02:07.5+00:00 host app api - Scaled to mailer@3:Performance-L web@5:Standard-2X by user someuser@gmail.com"),
	}
	for _, opts := range []Options{
		{Prefix: "x", SourcePrefix: "y", ProcessTypes: true},
		{Prefix: "x", SourcePrefix: "y", ProcessTypes: true, RouteMetrics: RoutesAuto, Routes: BenchRoutes},
	} {
		p := NewParser(opts)
		recv := time.Now()
		emit := func(m *Measurement) {}
		frames := append(append(append([][]byte{}, MixedFrames...), RouterFrames...), api...)
		for _, f := range frames { // warm the scratch space
			p.Frame(f, recv, emit)
		}
		allocs := testing.AllocsPerRun(100, func() {
			for _, f := range frames {
				p.Frame(f, recv, emit)
			}
			p.Reset(opts) // the same templates: not compiled again
		})
		if allocs != 0 {
			t.Fatalf("%+v: %.1f allocations per batch, want 0", opts, allocs)
		}
	}
}
