package drain

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// ghostAuth knows drains by user name, password "pw", except "ghost",
// which names no drain.
type ghostAuth struct{}

func (ghostAuth) Authenticate(_ context.Context, user, pass string) (Caller, bool, error) {
	if user == "ghost" {
		return Caller{}, false, nil
	}
	return Caller{ID: user}, pass == "pw", nil
}

// rawServer serves h on loopback over a real connection, as net/http does
// in production.
func rawServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawRequest sends head (and nothing more) and reads the answer; it
// returns the answer, the time it took and the status line's text.
func rawRequest(t *testing.T, addr, head string) (*http.Response, string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), time.Since(start)
}

func basicHead(addr, user, pass string, length int, extra string) string {
	r, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
	r.SetBasicAuth(user, pass)
	return fmt.Sprintf("POST /logs HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n%s\r\n",
		addr, r.Header.Get("Authorization"), length, extra)
}

// TestRefusedAtOnce: refused credentials, an unreadable Content-Type and a
// body over the limit are answered without their bodies — none is sent
// here — with Connection: close and one line saying why; the credentials
// after the refusal delay, the same for a drain that exists and an id that
// names none; each counted on its drain, or on UnknownDrain.
func TestRefusedAtOnce(t *testing.T) {
	reg := stats.NewRegistry()
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, RefusalDelay: 300 * time.Millisecond}, ghostAuth{}, &countSink{}, nil, reg,
		slog.New(slog.DiscardHandler), time.Now)
	addr := rawServer(t, h)
	for _, c := range []struct {
		name, user, pass, extra string
		length                  int
		status                  int
		says                    string
		drain                   string
		counter                 stats.Counter
		slow                    bool
	}{
		{"wrong secret", "d1", "nope", "", 1 << 20, 401, "wrong drain id or secret", "d1", stats.Unauthorized, true},
		{"no such drain", "ghost", "nope", "", 1 << 20, 401, "wrong drain id or secret", UnknownDrain, stats.Unauthorized, true},
		{"form type", "d2", "pw", "Content-Type: application/x-www-form-urlencoded\r\n", 1000, 415, "Content-Type", "d2", stats.Unsupported, false},
		{"brotli", "d4", "pw", "Content-Encoding: br\r\n", 1000, 415, "Content-Encoding", "d4", stats.Unsupported, false},
		{"too large", "d3", "pw", "", 2 << 20, 413, "MAX_BODY_BYTES", "d3", stats.TooLarge, false},
	} {
		resp, body, took := rawRequest(t, addr, basicHead(addr, c.user, c.pass, c.length, c.extra))
		if resp.StatusCode != c.status || !resp.Close || !strings.Contains(body, c.says) || strings.Count(body, "\n") != 1 ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d close=%v %q", c.name, resp.StatusCode, resp.Close, body)
		}
		if c.slow && (took < 300*time.Millisecond || took > 800*time.Millisecond) || !c.slow && took > 200*time.Millisecond {
			t.Errorf("%s: answered after %s", c.name, took)
		}
		if d, ok := reg.Lookup(c.drain); !ok || d.Get(c.counter) != 1 || d.LastRefused().IsZero() {
			t.Errorf("%s: not counted on %s as %s", c.name, c.drain, c.counter)
		}
	}
	// No credentials at all: at once.
	_, body, took := rawRequest(t, addr, fmt.Sprintf("POST /logs HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n", addr))
	if !strings.Contains(body, "no credentials") || took > 200*time.Millisecond {
		t.Errorf("no credentials: %q after %s", body, took)
	}
	if d, _ := reg.Lookup(UnknownDrain); d.Get(stats.Unauthorized) != 2 {
		t.Errorf("unknown drain: %d refusals, want 2", d.Get(stats.Unauthorized))
	}
}

// TestSlowBodyCut: a body below the minimum rate is cut once its deadline
// (BodyGrace + Content-Length at MinBodyRate) passes, answered 503 with
// Retry-After and counted as slow_body; until its first byte arrives it
// holds nothing of the bodies budget; a body at a real sender's pace
// passes.
func TestSlowBodyCut(t *testing.T) {
	reg := stats.NewRegistry()
	bodies := budget.NewShare("bodies", 64<<20)
	sink := &countSink{}
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, Bodies: bodies, MinBodyRate: 100 << 10, BodyGrace: 500 * time.Millisecond},
		drainsAuth{}, sink, nil, reg, slog.New(slog.DiscardHandler), time.Now)
	addr := rawServer(t, h)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = io.WriteString(c, basicHead(addr, "slow", "pw", 50<<10, "")) // deadline: 0.5 s + 0.5 s
	time.Sleep(200 * time.Millisecond)
	if n := bodies.Used(); n != 0 {
		t.Errorf("a request whose body has not begun holds %d bytes of the budget", n)
	}
	go func() {
		for i := 0; i < 50; i++ {
			if _, err := io.WriteString(c, "x"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !resp.Close || !strings.Contains(string(b), "too slow") {
		t.Errorf("slow body: %d %q", resp.StatusCode, b)
	}
	if took < 900*time.Millisecond || took > 2*time.Second {
		t.Errorf("slow body cut after %s, want about 1 s", took)
	}
	if d, _ := reg.Lookup("slow"); d.Get(stats.SlowBody) != 1 || sink.n != 0 {
		t.Errorf("slow_body %d, measurements %d", d.Get(stats.SlowBody), sink.n)
	}
	if n := bodies.Used(); n != 0 {
		t.Errorf("%d bytes still held after the answer", n)
	}

	// 100 KiB in 10 KiB pieces every 50 ms (200 KiB/s): accepted.
	msg := "<190>1 " + time.Now().UTC().Format(time.RFC3339) + " host app web.1 - count#ok=1\n"
	frame := fmt.Sprintf("%d %s", len(msg), msg)
	body := strings.Repeat(frame, (100<<10)/len(frame))
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, _ = io.WriteString(c2, basicHead(addr, "steady", "pw", len(body), ""))
	for i := 0; i < len(body); i += 10 << 10 {
		_, _ = io.WriteString(c2, body[i:min(i+10<<10, len(body))])
		time.Sleep(50 * time.Millisecond)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a body at 200 KiB/s: %v %v", resp, err)
	}
}

// TestSlowBodiesChargedToTheirDrain is issue 19's finding 4: two drains'
// 125 slow bodies each, begun and then stalled, on a 400 MiB budget's
// bodies share (60 MiB), leave a third drain's batches alone — each slow
// body holds what arrived and its request's scratch space, not 256 KiB
// reserved ahead.
func TestSlowBodiesChargedToTheirDrain(t *testing.T) {
	mem := budget.New(400 << 20)
	reg := stats.NewRegistry()
	sink := &lockedSink{}
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, Bodies: mem.Bodies, MaxDrainBytes: mem.BodiesPerDrain()},
		drainsAuth{}, sink, nil, reg, slog.New(slog.DiscardHandler), time.Now)
	addr := rawServer(t, h)
	msg := "<190>1 " + time.Now().UTC().Format(time.RFC3339) + " host app web.1 - count#slow=1\n"
	frame := fmt.Sprintf("%d %s", len(msg), msg)
	for _, drain := range []string{"slow-a", "slow-b"} {
		for range 125 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			_, _ = io.WriteString(c, basicHead(addr, drain, "pw", 1<<20, "")+frame) // then nothing
		}
	}
	time.Sleep(300 * time.Millisecond)
	t.Logf("250 stalled bodies hold %d KiB of the %d MiB bodies share", mem.Bodies.Used()>>10, mem.Bodies.Limit()>>20)
	if used := mem.Bodies.Used(); used > mem.Bodies.Limit()/2 {
		t.Errorf("250 stalled bodies hold %d MiB of %d", used>>20, mem.Bodies.Limit()>>20)
	}
	body := strings.Repeat(frame, (100<<10)/len(frame))
	for i := range 20 {
		resp, _, _ := rawRequest(t, addr, basicHead(addr, "third", "pw", len(body), "")+body)
		if resp.StatusCode != 200 {
			t.Fatalf("the third drain's batch %d: %d", i, resp.StatusCode)
		}
	}
	if d, _ := reg.Lookup("third"); d.Get(stats.Busy) != 0 {
		t.Errorf("the third drain got %d 503s", d.Get(stats.Busy))
	}
}

type lockedSink struct {
	mu sync.Mutex
	n  int
}

func (s *lockedSink) Add(_ time.Time, _ *stats.Counters, ms []parse.Measurement) {
	s.mu.Lock()
	s.n += len(ms)
	s.mu.Unlock()
}
