package librato

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

var update = flag.Bool("update", false, "rewrite golden files")

func minuteOf(t testing.TB, drain string, start time.Time, ms []parse.Measurement) *rollup.Minute {
	t.Helper()
	return outlettest.MinuteOf(t, drain, start, ms)
}

func meas(kind parse.Kind, name, src, unit string, v float64, at time.Time) parse.Measurement {
	return parse.Measurement{Kind: kind, Name: []byte(name), Source: []byte(src), Unit: []byte(unit), Value: v, Time: at}
}

func fixedMinute(t *testing.T, start time.Time) *rollup.Minute {
	var ms []parse.Measurement
	for i := 1; i <= 10; i++ {
		ms = append(ms, meas(parse.Measure, "db.latency", "web.1", "ms", float64(i*i), start.Add(time.Duration(i)*time.Second)))
	}
	u := meas(parse.Unique, "users", "web.1", "", 1, start)
	for _, m := range []string{"a", "b", "c"} {
		u.Member = []byte(m)
		ms = append(ms, u)
	}
	ms = append(ms,
		meas(parse.Count, "jobs.done", "worker.1", "", 3, start),
		meas(parse.Count, "jobs.done", "worker.1", "", 4, start),
		meas(parse.Sample, "memory_rss", "web.1", "MB", 21.22, start.Add(20*time.Second)),
		meas(parse.Sample, "queue depth", "all", "", 7, start), // sanitized name, reserved source
		meas(parse.Measure, "huge", "", "", 1e200, start),      // sum of squares overflows Librato: left out
		meas(parse.Count, "db_size", "DATABASE", "bytes", 1e6, start),
	)
	return minuteOf(t, "d1", start, ms)
}

type harness struct {
	fake  *fakelibrato.Server
	srv   *httptest.Server
	o     *outlet.Engine
	dests *outlettest.Dests
	reg   *stats.Registry
	logs  *logtest.Buffer
}

func newHarness(t *testing.T, cfg outlet.Config) *harness {
	t.Helper()
	fake := fakelibrato.New(map[string]string{"u1@example.com": "tok1", "u2@example.com": "tok2"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "drainmeter/test"
	}
	lib := func(user, token string) []outlet.Outlet {
		return []outlet.Outlet{{Kind: outlet.Librato, URL: srv.URL, User: user, Token: token}}
	}
	h := &harness{fake: fake, srv: srv, reg: stats.NewRegistry(), logs: &logtest.Buffer{},
		dests: outlettest.NewDests(
			&outlet.Destination{ID: "d1", Outlets: lib("u1@example.com", "tok1")},
			&outlet.Destination{ID: "d2", Outlets: lib("u2@example.com", "tok2")},
			&outlet.Destination{ID: "bad", Outlets: lib("nobody", "x")},
		)}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	client := outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)
	backends := map[outlet.Kind]outlet.Backend{outlet.Librato: New(client, []float64{50, 95, 99})}
	h.o = outlet.NewEngine(outlet.NewSender(cfg, backends, h.reg, log, time.Now), h.dests, h.reg, log, time.Now)
	h.o.Start()
	t.Cleanup(func() { _ = h.o.Shutdown(t.Context()) })
	return h
}

func testConfig() outlet.Config {
	c := outlet.DefaultConfig
	c.UserAgent = ""
	c.MinBackoff, c.MaxBackoff, c.Timeout, c.AuthProbe = 20*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	c.MaxUncertain = 10 // a 300 ms timeout under -race and load: slow answers are sent again until taken (the bound is outlet's test)
	return c
}

func laneState(h *harness, drain string) outlet.State {
	for _, st := range h.o.Lanes() {
		if st.Drain == drain {
			return st.State
		}
	}
	return ""
}

// TestGoldenPayload posts a fixed minute and compares the request body with
// testdata/payload.golden.json.
func TestGoldenPayload(t *testing.T) {
	h := newHarness(t, testConfig())
	start := time.Now().Truncate(time.Minute).Add(-time.Minute)
	h.o.Closed([]*rollup.Minute{fixedMinute(t, start)})
	outlettest.WaitFor(t, "a post", func() bool { return len(h.fake.Requests()) == 1 })
	req := h.fake.Requests()[0]
	if req.Status != 200 {
		t.Fatalf("fake answered %d: %s", req.Status, req.Body)
	}
	if req.UserAgent != "drainmeter/test" || req.User != "u1@example.com" || req.ContentType != "application/json" {
		t.Errorf("request %+v", req)
	}
	// measure_time varies with the clock: normalize it.
	body := strings.ReplaceAll(string(req.Body), fmt.Sprint(start.Unix()), `"MINUTE"`)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(body), "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	const path = "testdata/payload.golden.json"
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pretty.String() != string(want) {
		t.Errorf("payload differs from %s:\n%s", path, pretty.String())
	}
	// The fake stores a request before it answers: the outlet counts it
	// once the answer is read.
	outlettest.WaitFor(t, "the post counted", func() bool { return h.reg.Drain("d1").Get(stats.Posted) != 0 })
	if got := h.reg.Drain("d1").Get(stats.Posted); got != uint64(len(h.fake.Measurements())) {
		t.Errorf("posted %d, fake stored %d", got, len(h.fake.Measurements()))
	}
	if h.reg.Drain("d1").Get(stats.PostRejected) != 1 {
		t.Errorf("the out-of-range series was not counted")
	}
}

// bigMinute has n count series.
func bigMinute(t *testing.T, drain string, start time.Time, n int) *rollup.Minute {
	var ms []parse.Measurement
	for i := range n {
		ms = append(ms, meas(parse.Count, fmt.Sprintf("c%04d", i), "web.1", "", float64(i), start))
	}
	return minuteOf(t, drain, start, ms)
}

func TestBatchingAndRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fakelibrato.Fault
		n     int
	}{
		{"no fault", fakelibrato.Fault{}, 0},
		{"503 maintenance", fakelibrato.Maintenance, 3},
		{"500 empty", fakelibrato.Empty500, 2},
		{"429 with Retry-After", func() fakelibrato.Fault { f := fakelibrato.RateLimit429; f.RetryAfter = "1"; return f }(), 1},
		{"403 rate limit", fakelibrato.RateLimit403, 2},
		{"slow answers time out", fakelibrato.Fault{Delay: time.Second}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			if tc.n > 0 {
				h.fake.FailNext(tc.n, tc.fault)
			}
			start := time.Now().Truncate(time.Minute).Add(-time.Minute)
			h.o.Closed([]*rollup.Minute{bigMinute(t, "d1", start, 700)})
			outlettest.WaitFor(t, "everything posted", func() bool { return h.reg.Drain("d1").Get(stats.Posted) == 700 })
			if got := len(h.fake.Measurements()); got != 700 {
				t.Fatalf("fake stored %d", got)
			}
			if d := h.fake.Duplicates(); len(d) != 0 {
				t.Fatalf("%d duplicates", len(d))
			}
			for _, r := range h.fake.Requests() {
				var body struct{ Gauges []json.RawMessage }
				_ = json.Unmarshal(r.Body, &body)
				if len(body.Gauges) > 300 {
					t.Fatalf("a request carried %d measurements", len(body.Gauges))
				}
			}
			if tc.name == "429 with Retry-After" {
				reqs := h.fake.Requests()
				if gap := reqs[len(reqs)-1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
					t.Errorf("Retry-After 1 s not honoured: retried after %v", gap)
				}
			}
		})
	}
}

func TestBadRequestDropsOnlyTheRefusedName(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fake.RejectName("c0042")
	start := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	h.o.Closed([]*rollup.Minute{bigMinute(t, "d1", start, 100)})
	outlettest.WaitFor(t, "99 posted", func() bool { return h.reg.Drain("d1").Get(stats.Posted) == 99 })
	if h.reg.Drain("d1").Get(stats.PostRejected) != 1 {
		t.Fatalf("rejected %d", h.reg.Drain("d1").Get(stats.PostRejected))
	}
	before := len(h.fake.Requests())
	h.o.Closed([]*rollup.Minute{bigMinute(t, "d1", start.Add(time.Minute), 100)})
	outlettest.WaitFor(t, "the next minute", func() bool { return h.reg.Drain("d1").Get(stats.Posted) == 198 })
	if reqs := h.fake.Requests()[before:]; len(reqs) != 1 || reqs[0].Status != 200 {
		t.Fatalf("the refused name was sent again: %d requests", len(reqs))
	}
	if !strings.Contains(h.logs.String(), "c0042") {
		t.Errorf("the refused name was not logged:\n%s", h.logs)
	}
}

func TestUnauthorizedPausesOnlyThatDrain(t *testing.T) {
	h := newHarness(t, testConfig())
	start := time.Now().Truncate(time.Minute).Add(-time.Minute)
	h.o.Closed([]*rollup.Minute{bigMinute(t, "bad", start, 10), bigMinute(t, "d2", start, 10)})
	outlettest.WaitFor(t, "d2 posted", func() bool { return h.reg.Drain("d2").Get(stats.Posted) == 10 })
	outlettest.WaitFor(t, "bad paused", func() bool { return laneState(h, "bad") == outlet.StatePaused })
	h.fake.AddUser("nobody", "x") // the user fixes the token at Librato
	outlettest.WaitFor(t, "bad recovers on a probe", func() bool { return h.reg.Drain("bad").Get(stats.Posted) == 10 })
	if s := laneState(h, "bad"); s != outlet.StateOK {
		t.Errorf("state still %q", s)
	}
}

// TestNewCredentialsResumeAtOnce: a lane paused on refused credentials
// tries new ones as soon as the drain's configuration has them, long
// before its next probe, and its queued minutes arrive.
func TestNewCredentialsResumeAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.AuthProbe = time.Hour
	h := newHarness(t, cfg)
	start := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	h.o.Closed([]*rollup.Minute{bigMinute(t, "bad", start, 10)})
	outlettest.WaitFor(t, "bad paused", func() bool { return laneState(h, "bad") == outlet.StatePaused })
	h.o.Closed([]*rollup.Minute{bigMinute(t, "bad", start.Add(time.Minute), 10)})
	h.dests.Update("bad", func(d *outlet.Destination) { d.Outlets[0].User, d.Outlets[0].Token = "u2@example.com", "tok2" })
	outlettest.WaitFor(t, "both minutes posted", func() bool { return h.reg.Drain("bad").Get(stats.Posted) == 20 })
	if s := laneState(h, "bad"); s != outlet.StateOK {
		t.Errorf("state %q", s)
	}
}

func TestTooOldIsDropped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAge = 2 * time.Minute
	h := newHarness(t, cfg)
	h.fake.FailUntil(time.Now().Add(time.Hour), fakelibrato.Maintenance)
	start := time.Now().Truncate(time.Minute).Add(-3 * time.Minute)
	h.o.Closed([]*rollup.Minute{bigMinute(t, "d1", start, 5)})
	outlettest.WaitFor(t, "dropped", func() bool { return h.reg.Drain("d1").Get(stats.PostDropped) == 5 })
}

func TestShutdownPostsPending(t *testing.T) {
	h := newHarness(t, testConfig())
	h.fake.FailNext(3, fakelibrato.Maintenance)
	start := time.Now().Truncate(time.Minute).Add(-time.Minute)
	h.o.Closed([]*rollup.Minute{bigMinute(t, "d1", start, 50)})
	if err := h.o.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(h.fake.Measurements()); got != 50 {
		t.Fatalf("stored %d", got)
	}
}

// TestTailIsTheSplitPart: a lane that resumes inside a split request
// (another dyno took it over) rebuilds exactly the part not yet accepted.
func TestTailIsTheSplitPart(t *testing.T) {
	b := New(outlet.NewClient("drainmeter/test", time.Second, time.Now), []float64{50, 95, 99})
	d := &outlet.Destination{ID: "d1"}
	o := &outlet.Outlet{Kind: outlet.Librato}
	enc, err := b.Encode(d, o, bigMinute(t, "d1", time.Now().Truncate(time.Minute), 200), nil)
	if err != nil || len(enc.Reqs) != 1 {
		t.Fatal(err, len(enc.Reqs))
	}
	r := enc.Reqs[0]
	parts := b.Split(r)
	if len(parts) != 2 || b.Items(parts[0])+b.Items(parts[1]) != b.Items(r) || b.Items(r) != 200 {
		t.Fatalf("split into %d parts", len(parts))
	}
	tail := b.Tail(r, b.Items(parts[0]))
	if tail == nil || !bytes.Equal(tail.Body, parts[1].Body) || tail.Points != parts[1].Points {
		t.Fatal("Tail is not the second part")
	}
	if b.Tail(r, 200) != nil || b.Tail(r, -1) != nil {
		t.Fatal("Tail past the end")
	}
}

// TestNetworkErrorHidesTheURL: a network error's message (logged, stored,
// shown) has no part of the URL, whose user name or query may be secret.
func TestNetworkErrorHidesTheURL(t *testing.T) {
	srv := httptest.NewServer(nil)
	u := strings.Replace(srv.URL, "http://", "http://user-secret@", 1) + "/?key=query-secret"
	srv.Close()
	b := New(outlet.NewClient("drainmeter/test", time.Second, time.Now), []float64{50})
	enc, err := b.Encode(&outlet.Destination{ID: "d1"}, &outlet.Outlet{Kind: outlet.Librato}, bigMinute(t, "d1", time.Now().Truncate(time.Minute), 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := b.Send(t.Context(), &outlet.Outlet{Kind: outlet.Librato, URL: u, User: "me", Token: "tok"}, enc.Reqs[0])
	if res.Outcome != outlet.Retry || strings.Contains(res.Message, "secret") || !strings.HasPrefix(res.Message, "post: ") {
		t.Fatalf("got %+v", res)
	}
}
