package outlet_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/librato"
	"github.com/drainmeter/drainmeter/outlet/otlp"
	"github.com/drainmeter/drainmeter/outlet/remotewrite"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// These tests hold the failure policy (README, "How each outlet treats
// answers"): for every class of answer and every backend, what the lane
// does — post on, retry, wait long (no answer: it may have arrived), pause
// keeping its minutes, or drop — through the real backends and client, to
// real HTTP servers on loopback answering as receivers and the proxies in
// front of them do.

// testTimeout is the outlet's request timeout in these tests: long enough that a
// loopback answer under the race detector on a loaded machine never misses it.
const testTimeout = 2 * time.Second

func policyConfig() outlet.Config {
	c := outlet.DefaultConfig
	c.UserAgent, c.Timeout = "drainmeter/test", testTimeout
	return c
}

// filled is cfg with the core's defaults filled in.
func filled(cfg outlet.Config) outlet.Config {
	return outlet.NewSender(cfg, nil, nil, nil, nil).Config()
}

func backendsFor(c *outlet.Client) map[outlet.Kind]outlet.Backend {
	return map[outlet.Kind]outlet.Backend{
		outlet.OTLP:        otlp.New(c, otlp.Config{Version: "test"}),
		outlet.RemoteWrite: remotewrite.New(c, remotewrite.Config{}),
		outlet.Librato:     librato.New(c, nil),
	}
}

func outletAt(kind outlet.Kind, base string) outlet.Outlet {
	switch kind {
	case outlet.OTLP:
		return outlet.Outlet{Kind: kind, URL: base + "/v1/metrics", Temporality: outlet.Delta}
	case outlet.RemoteWrite:
		return outlet.Outlet{Kind: kind, URL: base + "/api/v1/write"}
	}
	return outlet.Outlet{Kind: kind, URL: base, User: "me@example.com", Token: "tok"}
}

// testMinute is a minute of n count series.
func testMinute(t *testing.T, n int) *rollup.Minute {
	t.Helper()
	at := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	var ms []parse.Measurement
	for i := range n {
		ms = append(ms, outlettest.Meas(parse.Count, fmt.Sprintf("jobs.n%d", i), "web.1", float64(i+1), at))
	}
	return outlettest.MinuteOf(t, "d1", at, ms)
}

// answer is how a test receiver answers every request.
type answer struct {
	status int
	ctype  string
	body   string
	header map[string]string
	delay  time.Duration // before answering (it has stored the request by then)
}

// receiver answers as told and counts the requests it got in full.
type receiver struct {
	ans  answer
	got  atomic.Int64
	srv  *httptest.Server
	done chan struct{}
}

func newReceiver(t *testing.T, ans answer) *receiver {
	r := &receiver{ans: ans, done: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		r.got.Add(1)
		if r.ans.delay > 0 {
			select {
			case <-time.After(r.ans.delay):
			case <-r.done:
			}
		}
		for k, v := range r.ans.header {
			w.Header().Set(k, v)
		}
		if r.ans.ctype != "" {
			w.Header().Set("Content-Type", r.ans.ctype)
		}
		if r.ans.status >= 300 && r.ans.status < 400 {
			w.Header().Set("Location", "https://elsewhere.example.com/v1/metrics")
		}
		w.WriteHeader(r.ans.status)
		_, _ = io.WriteString(w, r.ans.body)
	}))
	t.Cleanup(func() { close(r.done); r.srv.Close() })
	return r
}

type expect struct {
	state  outlet.State
	reason string        // pause reason
	action outlet.Action // of the first step
	wait   [2]time.Duration
	posted bool // the points were counted as posted
	reject bool // ... as refused for good
}

const htmlPage = `<!DOCTYPE html>
<html><head><title>Welcome to nginx!</title></head><body>It works</body></html>`

func TestAnswerPolicy(t *testing.T) {
	cfg := filled(policyConfig())
	probe := [2]time.Duration{cfg.AuthProbe, cfg.AuthProbe}
	backoff := [2]time.Duration{cfg.MinBackoff / 2, cfg.MinBackoff}
	uncertain := [2]time.Duration{4 * testTimeout * 4 / 5, 4 * testTimeout}
	ok := expect{state: outlet.StateOK, action: outlet.Finished, posted: true}
	retry := expect{state: outlet.StateRetrying, action: outlet.Wait, wait: backoff}
	drop := expect{state: outlet.StateGivingUp, action: outlet.Finished, reject: true}
	pause := func(reason string) expect {
		return expect{state: outlet.StatePaused, reason: reason, action: outlet.Wait, wait: probe}
	}
	same := func(e expect) map[outlet.Kind]expect {
		return map[outlet.Kind]expect{outlet.OTLP: e, outlet.RemoteWrite: e, outlet.Librato: e}
	}
	for _, tc := range []struct {
		name string
		ans  answer
		want map[outlet.Kind]expect
	}{
		{"accepted", answer{status: 200}, same(ok)},
		{"accepted, 204", answer{status: 204}, same(ok)},
		// A web site, a login page or a proxy's default page at a wrong
		// URL: nothing was stored, whatever the status.
		{"200 HTML page", answer{status: 200, ctype: "text/html; charset=utf-8", body: htmlPage}, same(pause(outlet.PauseNotAPI))},
		{"200 HTML, no type", answer{status: 200, body: "\n  " + htmlPage}, same(pause(outlet.PauseNotAPI))},
		{"400 HTML (nginx: HTTP to an HTTPS port)", answer{status: 400, ctype: "text/html", body: htmlPage}, same(pause(outlet.PauseNotAPI))},
		{"301 redirect", answer{status: 301}, same(pause(outlet.PauseRedirect))},
		{"308 redirect", answer{status: 308}, same(pause(outlet.PauseRedirect))},
		{"401", answer{status: 401, body: "invalid token"}, same(pause(outlet.PauseCredentials))},
		{"403", answer{status: 403, body: "forbidden"}, same(pause(outlet.PauseCredentials))},
		{"407 proxy", answer{status: 407}, same(pause(outlet.PauseCredentials))},
		{"404 (Mimir's path on a Prometheus)", answer{status: 404, ctype: "text/plain", body: "404 page not found"}, same(pause(outlet.PauseWrongURL))},
		{"405", answer{status: 405, body: "method not allowed"}, same(pause(outlet.PauseWrongURL))},
		{"410", answer{status: 410}, same(pause(outlet.PauseWrongURL))},
		{"400 unsupported path (VictoriaMetrics)", answer{status: 400, body: `remoteAddr: "127.0.0.1:1"; requestURI: /api/v1/push; unsupported path requested: "/api/v1/push"`},
			same(pause(outlet.PauseWrongURL))},
		// Prometheus without --enable-feature=native-histograms answers
		// 500 to a native histogram: a setting, not a passing failure.
		{"500 native histograms are disabled (Prometheus 2.42)", answer{status: 500, ctype: "text/plain", body: "native histograms are disabled"},
			same(pause(outlet.PauseReceiver))},
		// A small request refused as too large: the limit is wrong, no
		// split can help.
		{"413 for a small request", answer{status: 413, body: "too large"}, same(pause(outlet.PauseTooLarge))},
		{"400 from the API", answer{status: 400, ctype: "application/json", body: `{"code":3,"message":"bad sample"}`},
			map[outlet.Kind]expect{outlet.OTLP: drop, outlet.RemoteWrite: drop,
				// Librato: split to find the one gauge it refuses.
				outlet.Librato: {action: outlet.Continue}}},
		{"422", answer{status: 422, body: "unprocessable"}, same(drop)},
		{"429", answer{status: 429}, same(retry)},
		{"429 Retry-After 7", answer{status: 429, header: map[string]string{"Retry-After": "7"}},
			same(expect{state: outlet.StateRetrying, action: outlet.Wait, wait: [2]time.Duration{7 * time.Second, 7 * time.Second}})},
		{"503 Retry-After ten years, capped", answer{status: 503, header: map[string]string{"Retry-After": "315360000"}},
			same(expect{state: outlet.StateRetrying, action: outlet.Wait, wait: [2]time.Duration{cfg.MaxRetryAfter, cfg.MaxRetryAfter}})},
		// A proxy's error page: the status says "try again".
		{"503 HTML error page", answer{status: 503, ctype: "text/html", body: htmlPage}, same(retry)},
		{"502", answer{status: 502}, same(retry)},
		// OTLP's spec retries only 429, 502, 503, 504; Prometheus 3 answers
		// a delta it refuses with 500.
		{"500", answer{status: 500, body: "internal"},
			map[outlet.Kind]expect{outlet.OTLP: drop, outlet.RemoteWrite: retry, outlet.Librato: retry}},
		// A gateway that gave up on its upstream: that may have stored it.
		{"504", answer{status: 504}, same(expect{state: outlet.StateUncertain, action: outlet.Wait, wait: uncertain})},
		{"no answer within the timeout", answer{status: 200, delay: 3 * testTimeout},
			same(expect{state: outlet.StateUncertain, action: outlet.Wait, wait: uncertain})},
	} {
		for _, kind := range []outlet.Kind{outlet.OTLP, outlet.RemoteWrite, outlet.Librato} {
			t.Run(tc.name+"/"+string(kind), func(t *testing.T) {
				t.Parallel()
				want := tc.want[kind]
				rcv := newReceiver(t, tc.ans)
				reg := stats.NewRegistry()
				logs := &logtest.Buffer{}
				s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg,
					slog.New(slog.NewTextHandler(logs, nil)), time.Now)
				o := outletAt(kind, rcv.srv.URL)
				d := &outlet.Destination{ID: "d1", Name: "app", Outlets: []outlet.Outlet{o}}
				job, err := s.Build(d, &o, testMinute(t, 3), nil)
				if err != nil {
					t.Fatal(err)
				}
				var st outlet.Status
				start := time.Now()
				step := s.Step(context.Background(), d, &o, job, &st, 0)
				if step.Action != want.action || st.State != want.state || st.PauseReason != want.reason {
					t.Fatalf("action %v state %q reason %q (%s), want %v %q %q", step.Action, st.State, st.PauseReason, st.LastError,
						want.action, want.state, want.reason)
				}
				if step.Action == outlet.Wait {
					if step.Wait < want.wait[0] || step.Wait > want.wait[1] {
						t.Errorf("wait %v, want %v to %v", step.Wait, want.wait[0], want.wait[1])
					}
					// The next attempt is the wait from the answer (or the
					// timeout), which came between start and now.
					if next := st.NextAttempt.Sub(start); next < step.Wait-time.Second || next > time.Since(start)+step.Wait+time.Second {
						t.Errorf("next attempt in %v, wait %v", next, step.Wait)
					}
				}
				dr := reg.Drain("d1")
				if got := dr.Get(stats.Posted) > 0; got != want.posted {
					t.Errorf("posted %d", dr.Get(stats.Posted))
				}
				if got := dr.Get(stats.PostRejected) > 0; got != want.reject {
					t.Errorf("rejected %d", dr.Get(stats.PostRejected))
				}
				if dr.Get(stats.PostDropped) != 0 {
					t.Errorf("dropped %d", dr.Get(stats.PostDropped))
				}
				switch st.State {
				case outlet.StatePaused:
					// The minute is kept: the same request goes out at the probe.
					if job.Done() || job.Next != 0 || !strings.Contains(st.LastError, outlet.PauseFix(want.reason)) {
						t.Errorf("paused: job at %d/%d, last error %q", job.Next, len(job.Reqs), st.LastError)
					}
					if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "fix=") {
						t.Errorf("%d error lines, want 1 saying what to fix:\n%s", n, logs)
					}
					if tc.ans.ctype == "text/html" || strings.Contains(tc.ans.body, "<html>") {
						if !strings.Contains(st.LastError, `"Welcome to nginx!"`) {
							t.Errorf("last error %q does not name the page", st.LastError)
						}
					}
				case outlet.StateUncertain:
					if got := dr.Get(stats.PostUncertain); got == 0 || got != st.Uncertain || rcv.got.Load() != 1 {
						t.Errorf("post_uncertain %d (lane %d), requests %d", got, st.Uncertain, rcv.got.Load())
					}
					if !strings.Contains(st.LastError, "may have arrived") {
						t.Errorf("last error %q", st.LastError)
					}
				}
				if strings.Contains(tc.name, "capped") && !strings.Contains(st.LastError, "capped at 5m0s") {
					t.Errorf("last error %q does not say the Retry-After was capped", st.LastError)
				}
			})
		}
	}
}

// TestConnectionRefusedIsNotUncertain: a request that never left (nothing
// listens) is retried with the short backoff; it cannot have arrived.
func TestConnectionRefusedIsNotUncertain(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filled(policyConfig())
	reg := stats.NewRegistry()
	s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg, slog.New(slog.DiscardHandler), time.Now)
	o := outletAt(outlet.OTLP, "http://"+addr)
	d := &outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{o}}
	job, _ := s.Build(d, &o, testMinute(t, 2), nil)
	var st outlet.Status
	step := s.Step(context.Background(), d, &o, job, &st, 0)
	if st.State != outlet.StateRetrying || step.Wait > cfg.MinBackoff || reg.Drain("d1").Get(stats.PostUncertain) != 0 {
		t.Fatalf("state %s wait %v uncertain %d", st.State, step.Wait, reg.Drain("d1").Get(stats.PostUncertain))
	}
}

// TestUncertainBound: a receiver that stores every request and answers
// after the timeout gets one request at most MaxUncertain+1 times, however
// often the lane is worked; then the request is given up (not dropped:
// it may have arrived) and the lane goes on.
func TestUncertainBound(t *testing.T) {
	cfg := filled(policyConfig())
	rcv := newReceiver(t, answer{status: 200, delay: 2 * testTimeout})
	reg := stats.NewRegistry()
	logs := &logtest.Buffer{}
	s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg,
		slog.New(slog.NewTextHandler(logs, nil)), time.Now)
	o := outletAt(outlet.RemoteWrite, rcv.srv.URL)
	d := &outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{o}}
	job, _ := s.Build(d, &o, testMinute(t, 4), nil)
	points := job.Points()
	var st outlet.Status
	var waits []time.Duration
	for range 10 { // the scheduler honours no wait here: the bound must hold anyway
		step := s.Step(context.Background(), d, &o, job, &st, st.Attempts)
		if step.Action != outlet.Wait {
			break
		}
		waits = append(waits, step.Wait)
	}
	if got := rcv.got.Load(); got != int64(cfg.MaxUncertain+1) || !job.Done() {
		t.Fatalf("the receiver got the request %d times (bound %d); job done %v", got, cfg.MaxUncertain+1, job.Done())
	}
	for i, w := range waits {
		if lo := (4 * testTimeout << i) * 4 / 5; w < lo || w > 4*testTimeout<<i {
			t.Errorf("wait %d: %v, want %v to %v", i+1, w, lo, 4*testTimeout<<i)
		}
		if w <= cfg.MinBackoff<<i { // much longer than after a refusal
			t.Errorf("wait %d: %v, not longer than the backoff after a refusal", i+1, w)
		}
	}
	dr := reg.Drain("d1")
	if dr.Get(stats.PostUncertain) != uint64(3*points) || st.Uncertain != uint64(3*points) || dr.Get(stats.PostDropped) != 0 || dr.Get(stats.Posted) != 0 {
		t.Errorf("uncertain %d (lane %d) dropped %d posted %d; want uncertain %d", dr.Get(stats.PostUncertain), st.Uncertain,
			dr.Get(stats.PostDropped), dr.Get(stats.Posted), 3*points)
	}
	if !strings.Contains(logs.String(), "not sent again (it may have arrived)") || strings.Contains(logs.String(), "dropped") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestShutdownDoesNotResendUncertain: at shutdown a request that got no
// answer is not sent again and again until the deadline, nor logged as
// dropped: the receiver gets it once, and it is counted as uncertain.
func TestShutdownDoesNotResendUncertain(t *testing.T) {
	cfg := policyConfig()
	rcv := newReceiver(t, answer{status: 200, delay: 2 * testTimeout})
	reg := stats.NewRegistry()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	o := outletAt(outlet.OTLP, rcv.srv.URL)
	dests := outlettest.NewDests(&outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{o}})
	s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg, log, time.Now)
	e := outlet.NewEngine(s, dests, reg, log, time.Now)
	e.Start()
	e.Closed([]*rollup.Minute{testMinute(t, 5)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("shutdown waited for the deadline")
	}
	dr := reg.Drain("d1")
	if rcv.got.Load() != 1 || dr.Get(stats.PostUncertain) != 5 || dr.Get(stats.PostDropped) != 0 {
		t.Errorf("received %d times; uncertain %d dropped %d", rcv.got.Load(), dr.Get(stats.PostUncertain), dr.Get(stats.PostDropped))
	}
	if !strings.Contains(logs.String(), "it may have arrived") || strings.Contains(logs.String(), "dropped") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestTooLargeFloor: a receiver that answers 413 to everything makes the
// lane split a minute of 500 series only down to SplitFloor, then pause
// with one error line — not 999 requests and 500 error lines.
func TestTooLargeFloor(t *testing.T) {
	cfg := policyConfig()
	rcv := newReceiver(t, answer{status: 413, body: "request entity too large"})
	reg := stats.NewRegistry()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	o := outletAt(outlet.OTLP, rcv.srv.URL)
	o.Temporality = outlet.Cumulative
	dests := outlettest.NewDests(&outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{o}})
	s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg, log, time.Now)
	e := outlet.NewEngine(s, dests, reg, log, time.Now)
	e.Start()
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	// 500 measures of random values: a request over the floor, split
	// before the floor stops it.
	at := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	var ms []parse.Measurement
	for i := range 500 {
		for range 10 {
			ms = append(ms, outlettest.Meas(parse.Measure, fmt.Sprintf("db.latency.q%d", i), "web.1", rng.Float64()*1000, at))
		}
	}
	e.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", at, ms)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ls := e.Lanes(); len(ls) == 1 && ls[0].State == outlet.StatePaused {
			if ls[0].PauseReason != outlet.PauseTooLarge || ls[0].Waiting != 1 {
				t.Fatalf("lane %+v", ls[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not paused: %+v", e.Lanes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := rcv.got.Load(); n < 2 || n > 16 {
		t.Errorf("%d requests for one minute of 500 series: want it split down to the floor, no further", n)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines:\n%s", n, logs)
	}
	dr := reg.Drain("d1")
	if dr.Get(stats.PostRejected)+dr.Get(stats.PostDropped) != 0 {
		t.Errorf("rejected %d dropped %d while paused", dr.Get(stats.PostRejected), dr.Get(stats.PostDropped))
	}
	t.Logf("500 series, always 413: %d requests, then paused", rcv.got.Load())
}

// TestWrongURLPausesUntilFixed: a 404 pauses the lane with its minutes;
// the outlet's new URL resumes it at once and every minute arrives once.
func TestWrongURLPausesUntilFixed(t *testing.T) {
	cfg := policyConfig()
	var hits sync.Map // path → count
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/write", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n, _ := hits.LoadOrStore(string(b), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		w.WriteHeader(204)
	})
	srv := httptest.NewServer(mux) // anything else: 404 page not found
	t.Cleanup(srv.Close)
	reg := stats.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	o := outlet.Outlet{Kind: outlet.RemoteWrite, URL: srv.URL + "/api/v1/push"} // Mimir's path
	dests := outlettest.NewDests(&outlet.Destination{ID: "d1", Outlets: []outlet.Outlet{o}})
	s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg, log, time.Now)
	e := outlet.NewEngine(s, dests, reg, log, time.Now)
	e.Start()
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	at := time.Now().Truncate(time.Minute).Add(-4 * time.Minute)
	for i := range 3 {
		m := at.Add(time.Duration(i) * time.Minute)
		e.Closed([]*rollup.Minute{outlettest.MinuteOf(t, "d1", m, []parse.Measurement{outlettest.Meas(parse.Count, "c", "web.1", 1, m)})})
	}
	wait := func(what string, cond func(outlet.Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if ls := e.Lanes(); len(ls) == 1 && cond(ls[0]) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, e.Lanes())
			}
		}
	}
	wait("paused on the 404", func(st outlet.Status) bool {
		return st.State == outlet.StatePaused && st.PauseReason == outlet.PauseWrongURL && st.Waiting == 3 &&
			strings.Contains(st.LastError, "HTTP 404")
	})
	dests.Update("d1", func(d *outlet.Destination) { d.Outlets[0].URL = srv.URL + "/api/v1/write"; d.Outlets[0].Version++ })
	wait("resumed", func(st outlet.Status) bool { return st.State == outlet.StateOK && st.Waiting == 0 })
	n := 0
	hits.Range(func(_, v any) bool {
		n++
		if c := v.(*atomic.Int64).Load(); c != 1 {
			t.Errorf("a request arrived %d times", c)
		}
		return true
	})
	if n != 3 || reg.Drain("d1").Get(stats.PostDropped) != 0 {
		t.Errorf("%d distinct requests arrived, want 3; dropped %d", n, reg.Drain("d1").Get(stats.PostDropped))
	}
}

// TestRealReceiversWrongPlace: the mistakes users make with real
// receivers pause the lane with the reason, keeping the minute: Mimir's
// path on a Prometheus, OTLP to a Prometheus 2.42 (OTLP came in 2.47), a
// VictoriaMetrics or Prometheus base URL without the API's path; and the
// right URL takes the request.
func TestRealReceiversWrongPlace(t *testing.T) {
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	vm := promtest.StartVictoriaMetrics(t)
	for _, tc := range []struct {
		name   string
		o      outlet.Outlet
		reason string // "": taken
	}{
		{"prometheus, Mimir's path", outlet.Outlet{Kind: outlet.RemoteWrite, URL: prom.URL + "/api/v1/push"}, outlet.PauseWrongURL},
		{"prometheus, base URL", outlet.Outlet{Kind: outlet.RemoteWrite, URL: prom.URL}, outlet.PauseWrongURL}, // 405
		{"prometheus 2.42, OTLP", outlet.Outlet{Kind: outlet.OTLP, URL: prom.URL + "/api/v1/otlp/v1/metrics", Temporality: outlet.Cumulative}, outlet.PauseWrongURL},
		{"prometheus", outlet.Outlet{Kind: outlet.RemoteWrite, URL: prom.WriteURL()}, ""},
		// VictoriaMetrics answers a path it does not serve with 400
		// "unsupported path requested".
		{"victoriametrics, base URL", outlet.Outlet{Kind: outlet.RemoteWrite, URL: vm.URL}, outlet.PauseWrongURL},
		{"victoriametrics, Mimir's path", outlet.Outlet{Kind: outlet.RemoteWrite, URL: vm.URL + "/api/v1/push"}, outlet.PauseWrongURL},
		{"victoriametrics, OTLP at /v1/metrics", outlet.Outlet{Kind: outlet.OTLP, URL: vm.URL + "/v1/metrics", Temporality: outlet.Cumulative}, outlet.PauseWrongURL},
		{"victoriametrics", outlet.Outlet{Kind: outlet.RemoteWrite, URL: vm.WriteURL()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filled(policyConfig())
			cfg.Timeout = 5 * time.Second
			reg := stats.NewRegistry()
			s := outlet.NewSender(cfg, backendsFor(outlet.NewClient(cfg.UserAgent, cfg.Timeout, time.Now)), reg, slog.New(slog.DiscardHandler), time.Now)
			d := &outlet.Destination{ID: "d1", Name: "app", Outlets: []outlet.Outlet{tc.o}}
			job, err := s.Build(d, &tc.o, testMinute(t, 3), nil)
			if err != nil {
				t.Fatal(err)
			}
			var st outlet.Status
			step := s.Step(context.Background(), d, &tc.o, job, &st, 0)
			t.Logf("%s: action %v state %s reason %q: %s", tc.o.URL, step.Action, st.State, st.PauseReason, st.LastError)
			if tc.reason == "" {
				if st.State != outlet.StateOK || reg.Drain("d1").Get(stats.Posted) == 0 {
					t.Errorf("not taken: state %s, %s", st.State, st.LastError)
				}
				return
			}
			if st.State != outlet.StatePaused || st.PauseReason != tc.reason || job.Next != 0 {
				t.Errorf("state %s reason %q (%s), want paused on %s", st.State, st.PauseReason, st.LastError, tc.reason)
			}
		})
	}
}
