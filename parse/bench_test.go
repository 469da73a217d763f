package parse

import (
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

func TestParseAllocs(t *testing.T) {
	p := NewParser(Options{Prefix: "x", SourcePrefix: "y", ProcessTypes: true})
	recv := time.Now()
	emit := func(m *Measurement) {}
	for _, f := range MixedFrames { // warm the scratch space
		p.Frame(f, recv, emit)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range MixedFrames {
			p.Frame(f, recv, emit)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}
