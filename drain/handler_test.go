package drain

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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

func (c *countSink) Add(_ time.Time, _ *stats.Counters, ms []parse.Measurement) { c.n += len(ms) }

func TestRecentIDs(t *testing.T) {
	r := NewRecentIDs(time.Hour, 1000)
	t0 := time.Now()
	if !r.Mark("d", "a", t0) || r.Mark("d", "a", t0) {
		t.Fatal("second claim of the same id succeeded")
	}
	if !r.Mark("other", "a", t0) {
		t.Fatal("ids are per drain")
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
	h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Caller{ID: "d", Prefix: "cfg"}, "pw"), sink, nil,
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

func (r *recordSink) Add(_ time.Time, _ *stats.Counters, ms []parse.Measurement) {
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
			h := NewHandler(cfg, NewSecretAuth(Caller{ID: "d", ProcessTypes: true}, "pw"), sink, nil,
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
			h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Caller{ID: "d"}, "pw"), sink, NewRecentIDs(time.Hour, 100),
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
	h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Caller{ID: "d"}, "pw"), sink, NewRecentIDs(time.Hour, 100),
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
	// A user name (the sending app, shown and stored in Postgres) with a NUL
	// and bytes that are not UTF-8: recorded printable.
	req := httptest.NewRequest(http.MethodPost, "/logs", bytes.NewReader(frame))
	req.SetBasicAuth("x\x00y\xff", "pw")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if apps := reg.Drain("d").Apps(); !slices.Contains(apps, "x?y?") {
		t.Fatalf("apps %q", apps)
	}
}

type valueSink struct{ got []string }

func (v *valueSink) Add(_ time.Time, _ *stats.Counters, ms []parse.Measurement) {
	for _, m := range ms {
		s := fmt.Sprintf("%s %s=%g", m.Kind, m.Name, m.Value)
		if len(m.Dims) > 0 {
			s += " " + strings.ReplaceAll(strings.ReplaceAll(string(m.Dims), "\x1f", "="), "\x1e", ",")
		}
		v.got = append(v.got, s)
	}
}

// TestLogShuttle: log-shuttle as a sender — X-Request-Id dedups a retried
// batch; Logshuttle-Drops/-Lost (and Logplex-Drop-Count/-Lost-Count) count
// as logplex.dropped/lost exactly as its L12/L13 lines, once when the batch
// carries both; bad values are ignored; gzip bodies are read.
func TestLogShuttle(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 34, 30, 0, time.UTC)
	line := func(msg string) string {
		m := "<190>1 2024-05-01T12:34:29Z host token shuttle - " + msg + "\n"
		return strconv.Itoa(len(m)) + " " + m
	}
	l12 := func(n int) string {
		m := fmt.Sprintf("<172>1 2024-05-01T12:34:29Z host app log-shuttle - Error L12: %d messages dropped since 2024-05-01T12:34:20Z.\n", n)
		return strconv.Itoa(len(m)) + " " + m
	}
	for _, tc := range []struct {
		name    string
		body    string
		hdr     map[string]string
		gz      bool
		want    []string
		dropped uint64
		lost    uint64
	}{
		{"headers alone", line("count#a=1"), map[string]string{"Logshuttle-Drops": "7", "Logshuttle-Lost": "3"}, false,
			[]string{"count p.a=1", "count p.logplex.dropped=7", "count p.logplex.lost=3"}, 7, 3},
		{"the header and its L12 line: once", l12(222) + line("count#a=1"), map[string]string{"Logshuttle-Drops": "222"}, true,
			[]string{"count p.logplex.dropped=222", "count p.a=1"}, 222, 0},
		{"logplex spellings", line("count#a=1"), map[string]string{"Logplex-Drop-Count": "5", "Logplex-Lost-Count": "2"}, false,
			[]string{"count p.a=1", "count p.logplex.dropped=5", "count p.logplex.lost=2"}, 5, 2},
		{"zero and bad values", line("count#a=1"), map[string]string{"Logshuttle-Drops": "0", "Logshuttle-Lost": "-4",
			"Logplex-Drop-Count": "99999999999"}, false, []string{"count p.a=1"}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &valueSink{}
			reg := stats.NewRegistry()
			h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Caller{ID: "d", Prefix: "p"}, "pw"), sink, NewRecentIDs(time.Hour, 100),
				reg, slog.New(slog.DiscardHandler), func() time.Time { return at })
			for range 2 { // log-shuttle retries with the same X-Request-Id
				body := []byte(tc.body)
				req := httptest.NewRequest(http.MethodPost, "/logs", nil)
				if tc.gz {
					body = gzipped(body)
					req.Header.Set("Content-Encoding", "gzip")
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				req.ContentLength = int64(len(body))
				req.SetBasicAuth("token", "pw")
				req.Header.Set("Content-Type", "application/logplex-1")
				req.Header.Set("X-Request-Id", "6b1f8c3e-6a1d-4d7e-9a0b-2b9f1f0a7c11")
				for k, v := range tc.hdr {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					t.Fatalf("status %d", rec.Code)
				}
			}
			ds := reg.Drain("d")
			if strings.Join(sink.got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("measurements:\n%s\nwant:\n%s", strings.Join(sink.got, "\n"), strings.Join(tc.want, "\n"))
			}
			if ds.Get(stats.LogplexDropped) != tc.dropped || ds.Get(stats.LogplexLost) != tc.lost || ds.Get(stats.Duplicates) != 1 {
				t.Errorf("logplex_dropped %d lost %d duplicates %d; want %d %d 1", ds.Get(stats.LogplexDropped), ds.Get(stats.LogplexLost),
					ds.Get(stats.Duplicates), tc.dropped, tc.lost)
			}
		})
	}
}

// TestRoutesThroughTheHandler: a drain's route options reach the parser,
// and the route dimension survives the copy into the batch.
func TestRoutesThroughTheHandler(t *testing.T) {
	sink := &valueSink{}
	h := NewHandler(Config{MaxBodyBytes: 1 << 20}, NewSecretAuth(Caller{ID: "d", RouteMetrics: parse.RoutesTemplates, Routes: []string{"/users/:id"}}, "pw"),
		sink, nil, stats.NewRegistry(), slog.New(slog.DiscardHandler), time.Now)
	var body string
	for _, p := range []string{"/users/42", "/other/1"} {
		m := `<158>1 2024-05-01T12:34:56Z host heroku router - at=info method=GET path="` + p + `" dyno=web.1 connect=1ms service=18ms status=200 bytes=13` + "\n"
		body += strconv.Itoa(len(m)) + " " + m
	}
	req := httptest.NewRequest(http.MethodPost, "/logs", strings.NewReader(body))
	req.SetBasicAuth("app", "pw")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var routes []string
	for _, g := range sink.got {
		if strings.Contains(g, "route=") {
			routes = append(routes, g)
		}
	}
	want := []string{"measure router.service=18 route=GET /users/:id", "count router.requests=1 route=GET /users/:id", "count router.status.2xx=1 route=GET /users/:id",
		"measure router.service=18 route=other", "count router.requests=1 route=other", "count router.status.2xx=1 route=other"}
	if strings.Join(routes, "\n") != strings.Join(want, "\n") {
		t.Errorf("route series:\n%s\nwant:\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}
}
