package drain

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

type countSink struct{ n int }

func (c *countSink) Add(_ time.Time, _ *stats.Drain, ms []parse.Measurement) { c.n += len(ms) }

func TestRecentIDs(t *testing.T) {
	r := NewRecentIDs(time.Hour, 1000)
	t0 := time.Now()
	if !r.Claim("d", "a", t0) || r.Claim("d", "a", t0) {
		t.Fatal("second claim of the same id succeeded")
	}
	if !r.Claim("other", "a", t0) {
		t.Fatal("ids are per drain")
	}
	r.Release("d", "a")
	if !r.Claim("d", "a", t0) {
		t.Fatal("a released id is new again")
	}
	if r.Claim("d", "a", t0.Add(40*time.Minute)) { // rotated once: still remembered
		t.Fatal("forgotten after 40 minutes")
	}
	r.Claim("d", "b", t0.Add(80*time.Minute)) // rotates again
	if !r.Claim("d", "a", t0.Add(81*time.Minute)) {
		t.Fatal("remembered after 81 minutes")
	}
}

func TestQueryPrefixes(t *testing.T) {
	sink := &recordSink{}
	h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Drain{ID: "d", Prefix: "cfg"}, "pw"), sink, nil,
		stats.NewRegistry(), slog.New(slog.DiscardHandler), time.Now)
	msg := "<190>1 2024-05-01T12:34:01Z host app web.1 - count#a\n"
	body := strconv.Itoa(len(msg)) + " " + msg
	req := httptest.NewRequest(http.MethodPost, "/logs?prefix=q&source-prefix=sp", bytes.NewBufferString(body))
	req.SetBasicAuth("app", "pw")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || len(sink.names) != 1 || sink.names[0] != "q.a sp.web.1" {
		t.Fatalf("%d %v", rec.Code, sink.names)
	}
}

type recordSink struct{ names []string }

func (r *recordSink) Add(_ time.Time, _ *stats.Drain, ms []parse.Measurement) {
	for _, m := range ms {
		r.names = append(r.names, string(m.Name)+" "+string(m.Source))
	}
}

// BenchmarkDrain measures the whole request path on one goroutine: auth,
// frame reading, parsing and the rollup, for realistic 100-frame batches
// (router, runtime metrics and app lines).
func BenchmarkDrain(b *testing.B) {
	for _, sinkName := range []string{"discard", "rollup"} {
		b.Run(sinkName, func(b *testing.B) {
			var sink Sink = &countSink{}
			if sinkName == "rollup" {
				sink = rollup.NewStore(rollup.Config{Grace: time.Hour})
			}
			at := time.Now()
			h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Drain{ID: "d", ProcessTypes: true}, "pw"), sink, nil,
				stats.NewRegistry(), slog.New(slog.DiscardHandler), func() time.Time { return at })
			gen := loadgen.New(1, 4)
			const frames = 100
			body := bytes.Clone(gen.Batch(frames, at))
			req := httptest.NewRequest(http.MethodPost, "/logs", nil)
			req.SetBasicAuth("app", "pw")
			req.Header.Set("Content-Type", "application/logplex-1")
			req.Header.Set("Logplex-Msg-Count", strconv.Itoa(frames))
			rd := bytes.NewReader(body)
			w := &nullWriter{h: http.Header{}}
			b.SetBytes(int64(len(body)) / frames)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += frames {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				h.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}
