package drain

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// drainsAuth knows drains by user name, password "pw".
type drainsAuth struct{}

func (drainsAuth) Authenticate(_ context.Context, user, pass string) (Caller, bool, error) {
	return Caller{ID: user}, pass == "pw", nil
}

// heldSink records the most bytes the bodies share held while a batch was
// added (the request still holds them then).
type heldSink struct {
	share *budget.Share
	n     int
	held  int64
}

func (s *heldSink) Add(_ time.Time, _ *stats.Counters, ms []parse.Measurement) {
	s.n += len(ms)
	s.held = max(s.held, s.share.Used())
}

// shortPairs is a body of frames full of "count#a " pairs: one measurement
// for 8 bytes.
func shortPairs(at time.Time, size int) []byte {
	msg := "<190>1 " + at.UTC().Format(time.RFC3339) + " host app web.1 - " + strings.Repeat("count#a ", 7000) + "\n"
	f := strconv.Itoa(len(msg)) + " " + msg
	return bytes.Repeat([]byte(f), max(1, size/len(f)))
}

// TestBodiesBudget: what a request holds is accounted while it is read and
// parsed, and given back; a request that alone exceeds its drain's share
// gets 413, one that does not fit beside others 503 with Retry-After; one
// drain's full share leaves another's requests alone.
func TestBodiesBudget(t *testing.T) {
	at := time.Now()
	bodies := budget.NewShare("bodies", 16<<20)
	sink := &heldSink{share: bodies}
	reg := stats.NewRegistry()
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, Bodies: bodies}, drainsAuth{}, sink, nil, reg, slog.New(slog.DiscardHandler),
		func() time.Time { return at })
	send := func(drain string, body []byte, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/logs", bytes.NewReader(body))
		req.SetBasicAuth(drain, "pw")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	// A batch that fits: its measurements were accounted while it was added.
	small := shortPairs(at, 200<<10)
	if rec := send("a", small); rec.Code != 200 {
		t.Fatalf("small batch: %d", rec.Code)
	}
	if min := int64(sink.n * measurementBytes); sink.held < min {
		t.Errorf("%d measurements held while added, %d bytes accounted (at least %d)", sink.n, sink.held, min)
	}
	if bodies.Used() != 0 {
		t.Fatalf("%d bytes still held after the answer", bodies.Used())
	}

	// 1 MiB of short pairs: 130 000 measurements, over the drain's 8 MiB.
	n := sink.n
	if rec := send("a", shortPairs(at, 1<<20)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MiB of short pairs: %d, want 413", rec.Code)
	}
	// The same inflated from a small gzip body.
	if rec := send("a", gzipped(shortPairs(at, 8<<20)), "Content-Encoding", "gzip"); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb: %d, want 413", rec.Code)
	}
	if sink.n != n || bodies.Used() != 0 || reg.Drain("a").Get(stats.TooLarge) != 2 {
		t.Fatalf("refused requests: %d measurements counted, %d bytes held, too_large %d",
			sink.n-n, bodies.Used(), reg.Drain("a").Get(stats.TooLarge))
	}

	// Drain a's share is full (its other requests hold it): a's next
	// request waits for a retry, b's goes through.
	if !h.share("a").TryAcquire(8<<20 - 100<<10) {
		t.Fatal("cannot fill a's share")
	}
	rec := send("a", small)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a, its share full: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := send("b", small); rec.Code != 200 {
		t.Fatalf("b beside a full a: %d", rec.Code)
	}
	// The process's share is full: every drain waits.
	if !h.share("c").TryAcquire(8<<20 - 100<<10) {
		t.Fatal("cannot fill c's share")
	}
	if rec := send("b", small); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("b, the process full: %d", rec.Code)
	}
	if reg.Drain("a").Get(stats.Busy) != 1 || reg.Drain("b").Get(stats.Busy) != 1 {
		t.Fatalf("busy: a %d, b %d", reg.Drain("a").Get(stats.Busy), reg.Drain("b").Get(stats.Busy))
	}
	h.share("a").Release(8<<20 - 100<<10)
	h.share("c").Release(8<<20 - 100<<10)
	if rec := send("a", small); rec.Code != 200 || bodies.Used() != 0 {
		t.Fatalf("after the others are done: %d, %d bytes held", rec.Code, bodies.Used())
	}
}

// TestRefusalsSampled: a flood of refused credentials writes one line a
// second, with the count, and a user name cut to 64 bytes.
func TestRefusalsSampled(t *testing.T) {
	var logs bytes.Buffer
	at := time.Now()
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, RefusalDelay: -1}, NewSecretAuth(Caller{ID: "d"}, "pw"), &countSink{}, nil, stats.NewRegistry(),
		slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return at })
	user := strings.Repeat("é", 20000) + "\nlevel=ERROR msg=forged"
	for i := range 1000 {
		at = at.Add(5 * time.Millisecond)
		req := httptest.NewRequest(http.MethodPost, "/logs", strings.NewReader("x"))
		req.SetBasicAuth(user+strconv.Itoa(i), "wrong")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines for 1000 refusals over 5 s:\n%s", len(lines), logs.String())
	}
	if !strings.Contains(lines[0], "count=1 ") || !strings.Contains(lines[1], "count=200 ") {
		t.Errorf("counts:\n%s\n%s", lines[0], lines[1])
	}
	for _, l := range lines {
		if len(l) > 300 || strings.Contains(l, "forged") {
			t.Errorf("line of %d bytes: %.300s", len(l), l)
		}
	}
}

// TestLongAppNamesKeyShortIDs: the built-in drain keys batch ids by app;
// a long app name is hashed, so that ids stay short, and apps stay apart.
func TestLongAppNamesKeyShortIDs(t *testing.T) {
	long := strings.Repeat("a", 45<<10)
	if k := appKey(long); len(k) > 64 || k == appKey(long+"b") || appKey("myapp") != "myapp" {
		t.Fatalf("appKey: %q %q", k, appKey("myapp"))
	}
}

// TestRecentIDsBytes: ids are bounded in bytes, whatever their length (the
// built-in drain keys them with the sending app's name, which the sender
// chooses); idBytes is at least what the heap holds.
func TestRecentIDsBytes(t *testing.T) {
	at := time.Now()
	r := NewRecentIDs(time.Hour, 1<<30).WithMaxBytes(1 << 20)
	long := strings.Repeat("u", 40<<10)
	for i := range 1000 {
		r.Mark("default", long+":"+strconv.Itoa(i), at)
	}
	r.mu.Lock()
	n, held := len(r.cur)+len(r.prev), r.curBytes
	r.mu.Unlock()
	if n > 2*(512<<10)/(40<<10) || held > 512<<10 {
		t.Fatalf("%d ids of 40 KB remembered (%d bytes in the current generation) for 1 MiB", n, held)
	}
	if !r.Seen("default", long+":999") {
		t.Fatal("the latest id is forgotten")
	}

	if raceEnabled {
		return
	}
	for _, size := range []int{20, 200} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewRecentIDs(time.Hour, 1<<30)
		const ids = 100_000
		pad := strings.Repeat("x", size)
		for i := range ids {
			r.Mark("d0123456789abcdef", pad+strconv.Itoa(i), at)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc-before.HeapAlloc) / ids
		est := float64(idBytes(key("d0123456789abcdef", pad+"12345")))
		t.Logf("%d-byte ids: %.0f bytes each in the heap, %.0f accounted", size, heap, est)
		if est < heap {
			t.Errorf("%d-byte ids: %.0f bytes accounted, %.0f in the heap", size, est, heap)
		}
		runtime.KeepAlive(r)
	}
}
