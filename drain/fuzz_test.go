package drain

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/stats"
)

// FuzzGzipFrames sends a body through the whole drain endpoint plain, then
// gzipped, then gzipped and cut, then as if it were a gzip stream itself,
// and checks: no panic; an answer logplex understands; the gzipped body
// counts exactly what the plain one does; a cut body counts nothing; the
// memory accounted for a request is all given back. Seeded from the frame
// reader's table and the handler's batches.
func FuzzGzipFrames(f *testing.F) {
	at := time.Date(2024, 5, 1, 12, 34, 30, 0, time.UTC)
	line := func(msg string) string {
		m := "<190>1 2024-05-01T12:34:01Z host app web.1 - " + msg + "\n"
		return itoa(len(m)) + " " + m
	}
	for _, s := range []string{
		"", "3 abc2 de", "4 abc\n5 <1>1\n", "3 abc\n\r\n2 de\n", "003 abc", "3 abc5 de", "3 abc12", "3 abcx de",
		"0 3 abc", "12345678901 x", "3 abc6 1234562 ok", "3 abc99 1234",
		line("count#a=1 measure#b=2ms sample#c=3 unique#d=u1"),
		line("count#a") + line("measure#x=1e300") + "12 <190>1 cut",
		line("source=" + string(bytes.Repeat([]byte("s"), 300)) + " count#a"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		bodies := budget.NewShare("bodies", 1<<20)
		sink := &countSink{}
		reg := stats.NewRegistry()
		h := NewHandler(Config{MaxBodyBytes: 64 << 10, MaxFrameBytes: 512, Bodies: bodies}, NewSecretAuth(Caller{ID: "d"}, "pw"),
			sink, nil, reg, slog.New(slog.DiscardHandler), func() time.Time { return at })
		send := func(b []byte, gz bool) (status, measurements int) {
			req := httptest.NewRequest(http.MethodPost, "/logs", bytes.NewReader(b))
			req.SetBasicAuth("app", "pw")
			if gz {
				req.Header.Set("Content-Encoding", "gzip")
			}
			rec := httptest.NewRecorder()
			before := sink.n
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
			default:
				t.Fatalf("status %d", rec.Code)
			}
			if rec.Code != http.StatusOK && sink.n != before {
				t.Fatalf("status %d, yet %d measurements counted", rec.Code, sink.n-before)
			}
			if used := bodies.Used(); used != 0 {
				t.Fatalf("%d bytes still accounted after the answer", used)
			}
			return rec.Code, sink.n - before
		}
		plainStatus, plain := send(body, false)
		z := gzipped(body)
		if status, n := send(z, true); len(z) <= 64<<10 && (status != plainStatus || n != plain) {
			t.Fatalf("gzipped: %d with %d measurements; plain: %d with %d", status, n, plainStatus, plain)
		}
		if status, n := send(z[:len(z)/2], true); status != http.StatusBadRequest || n != 0 {
			t.Fatalf("a cut gzip body: %d with %d measurements", status, n)
		}
		send(body, true) // the fuzzer's bytes as a gzip stream
	})
}
