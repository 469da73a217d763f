package drain

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
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
	if !r.Mark("d", "a", t0) || r.Mark("d", "a", t0) {
		t.Fatal("second claim of the same id succeeded")
	}
	if !r.Mark("other", "a", t0) {
		t.Fatal("ids are per drain")
	}
	r.Forget("d", "a")
	if !r.Mark("d", "a", t0) {
		t.Fatal("a released id is new again")
	}
	if r.Mark("d", "a", t0.Add(40*time.Minute)) { // rotated once: still remembered
		t.Fatal("forgotten after 40 minutes")
	}
	r.Mark("d", "b", t0.Add(80*time.Minute)) // rotates again
	if !r.Mark("d", "a", t0.Add(81*time.Minute)) {
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
	for _, sinkName := range []string{"discard", "rollup", "rollup+budget"} {
		b.Run(sinkName, func(b *testing.B) {
			var sink Sink = &countSink{}
			cfg := Config{MaxBodyBytes: 1 << 20}
			switch sinkName {
			case "rollup":
				sink = rollup.NewStore(rollup.Config{Grace: time.Hour})
			case "rollup+budget": // the shares of a 384 MB budget
				mem := budget.New(384 << 20)
				sink = rollup.NewStore(rollup.Config{Grace: time.Hour, Series: mem.Series, MaxBytesPerDrain: mem.SeriesPerDrain()})
				cfg.Bodies, cfg.MaxDrainBytes = mem.Bodies, mem.BodiesPerDrain()
			}
			at := time.Now()
			h := NewHandler(cfg, NewSecretAuth(Drain{ID: "d", ProcessTypes: true}, "pw"), sink, nil,
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

// cutReader returns the first n bytes of b, then err: a connection that
// broke mid-body.
type cutReader struct {
	b   []byte
	n   int
	err error
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, c.err
	}
	k := copy(p, c.b[:min(c.n, len(c.b))])
	c.b, c.n = c.b[k:], c.n-k
	return k, nil
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// TestCutBodyCountsNothing: a body that breaks off (plain with a length,
// chunked, or gzip) counts nothing, so that its retry — same Frame-Id,
// whole body — counts once.
func TestCutBodyCountsNothing(t *testing.T) {
	at := time.Now()
	gen := loadgen.New(3, 2)
	plain := bytes.Clone(gen.Batch(200, at))
	for _, tc := range []struct {
		name   string
		body   []byte
		gz     bool
		length bool
	}{
		{"content-length", plain, false, true},
		{"chunked", plain, false, false},
		{"gzip", gzipped(plain), true, true},
		{"gzip chunked", gzipped(plain), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &countSink{}
			reg := stats.NewRegistry()
			h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Drain{ID: "d"}, "pw"), sink, NewRecentIDs(time.Hour, 100),
				reg, slog.New(slog.DiscardHandler), func() time.Time { return at })
			send := func(body io.Reader) int {
				req := httptest.NewRequest(http.MethodPost, "/logs", body)
				req.SetBasicAuth("app", "pw")
				req.Header.Set("Logplex-Frame-Id", "0123456789ABCDEF0123456789ABCDEF")
				if tc.gz {
					req.Header.Set("Content-Encoding", "gzip")
				}
				req.ContentLength = -1
				if tc.length {
					req.ContentLength = int64(len(tc.body))
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec.Code
			}
			for _, cut := range []int{len(tc.body) / 3, len(tc.body) * 2 / 3, len(tc.body) - 5} {
				send(&cutReader{b: tc.body, n: cut, err: io.ErrUnexpectedEOF})
				if sink.n != 0 || reg.Drain("d").Get(stats.FramesAccepted) != 0 {
					t.Fatalf("a body cut at %d of %d bytes counted %d measurements", cut, len(tc.body), sink.n)
				}
			}
			if code := send(bytes.NewReader(tc.body)); code != 200 {
				t.Fatalf("the whole body: %d", code)
			}
			whole := sink.n
			if whole == 0 || reg.Drain("d").Get(stats.FramesAccepted) != 200 {
				t.Fatalf("the retry counted %d measurements, %d frames", whole, reg.Drain("d").Get(stats.FramesAccepted))
			}
			send(bytes.NewReader(tc.body))
			if sink.n != whole || reg.Drain("d").Get(stats.Duplicates) != 1 {
				t.Fatal("a second retry counted again")
			}
		})
	}
}

// TestHostileHeaders: a Frame-Id too long to be one is ignored and counted;
// GZIP and x-gzip are gzip; an unknown encoding is refused with 415; an
// absurd Logplex-Msg-Count does not inflate the rejected frames.
func TestHostileHeaders(t *testing.T) {
	at := time.Now()
	msg := "<190>1 " + at.UTC().Format(time.RFC3339) + " host app web.1 - count#a=1\n"
	frame := []byte(strconv.Itoa(len(msg)) + " " + msg)
	sink := &countSink{}
	reg := stats.NewRegistry()
	h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Drain{ID: "d"}, "pw"), sink, NewRecentIDs(time.Hour, 100),
		reg, slog.New(slog.DiscardHandler), func() time.Time { return at })
	send := func(body []byte, hdr map[string]string) int {
		req := httptest.NewRequest(http.MethodPost, "/logs", bytes.NewReader(body))
		req.SetBasicAuth("app", "pw")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	long := strings.Repeat("A", 3000)
	for range 2 {
		if code := send(frame, map[string]string{"Logplex-Frame-Id": long}); code != 200 {
			t.Fatal(code)
		}
	}
	if sink.n != 2 || reg.Drain("d").Get(stats.IDsIgnored) != 2 {
		t.Fatalf("long ids: %d measurements, %d ignored", sink.n, reg.Drain("d").Get(stats.IDsIgnored))
	}
	for _, enc := range []string{"GZIP", "x-gzip", "gzip"} {
		if code := send(gzipped(frame), map[string]string{"Content-Encoding": enc}); code != 200 {
			t.Fatalf("%s: %d", enc, code)
		}
	}
	if sink.n != 5 {
		t.Fatalf("gzip spellings: %d measurements, want 5", sink.n)
	}
	if code := send(frame, map[string]string{"Content-Encoding": "br"}); code != http.StatusUnsupportedMediaType {
		t.Fatalf("br: %d", code)
	}
	bad := append(bytes.Clone(frame), "12 <190>1 cut"...) // a bad last frame
	if code := send(bad, map[string]string{"Logplex-Msg-Count": "4294967295"}); code != 200 {
		t.Fatal(code)
	}
	if got := reg.Drain("d").Get(stats.FramesRejected); got != 1 {
		t.Fatalf("frames_rejected %d, want 1", got)
	}
}
