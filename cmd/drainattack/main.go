// Command drainattack replays hostile input against a running drainmeter
// web, as an attacker holding one drain URL (or a buggy sender) would: the
// findings of issues 11 and 19, one phase each. Every phase is bounded in requests
// and in time, and only loopback addresses are attacked.
//
//	drainattack --url http://DRAIN:SECRET@127.0.0.1:5000/logs \
//	    --good http://OTHER:SECRET@127.0.0.1:5000/logs --pid 1234 --json
//
// While the phases run, the well-behaved drain given by --good sends a small
// batch every 100 ms as logplex does (a Logplex-Frame-Id, the same one on
// each retry, a retry on a 5xx or a broken connection); the report gives how
// long each batch took to be accepted and exactly what was sent, so that
// its counts can be compared with what the server counted.
//
// With --pid (Linux), each phase's peak RSS of that process is reported:
// VmHWM of /proc/PID/status, reset before the phase through
// /proc/PID/clear_refs (--reset-peak=false leaves it alone: each phase then
// reports the peak so far).
//
// The phases (--only takes a comma-separated list of their names):
//
//	gzip-bomb        one 35 KB gzip body that inflates to 32 MiB of short pairs
//	gzip-bomb-x4     four of them at once
//	bodies-16x1mib   16 concurrent 1 MiB bodies of short pairs
//	long-frame-ids   10 000 requests with distinct 60 KB Logplex-Frame-Ids
//	long-names       40 requests of 60 KB metric names (640 distinct names)
//	future-series    25 000 new series in each of the next 6 minutes
//	wide-sketches    2 000 measures whose values span 1e-300 … 1e99 (the widest accepted)
//	idle-conns       1 500 idle keep-alive connections, then new ones
//	unknown-ids      requests for drain ids that do not exist, as fast as 256 connections go;
//	                 with --fresh, a drain not used since the start sends its first batches meanwhile
//	bad-creds        refused credentials with 45 KB user names
//	msg-count        Logplex-Msg-Count: 4294967295 on a batch with bad framing
//	gzip-case        Content-Encoding GZIP and x-gzip
//	slow-few         20 wrong secrets and 20 bodies with the drain's secret, each then trickled
//	                 a byte a second, for 5 s: 401 after the refusal delay, bodies cut (503)
//	slow-flood       700 connections without a secret (bare connects, headers a byte a second,
//	                 a wrong secret then a body a byte a second) and 250 bodies with the
//	                 drain's secret a byte a second, for 8 s, each reopened when closed
//	refused-unread   a wrong secret announcing a 1 MiB body it never sends: answered at once
//	timing-oracle    the time of a wrong secret on the drain's id against a made-up id
//	admin-guess      2 000 guesses of the status page's password
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drainattack:", err)
		os.Exit(1)
	}
}

// maxRun bounds a whole run, whatever the phases do.
const maxRun = 3 * time.Minute

// target is a drain URL split into what a request needs.
type target struct {
	endpoint   string // without userinfo
	host       string // host:port
	user, pass string
}

func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return target{}, fmt.Errorf("%q is not an http:// drain URL", raw)
	}
	if !loopback(u.Hostname()) {
		return target{}, fmt.Errorf("%s is not a loopback address: drainattack attacks only this machine", u.Hostname())
	}
	t := target{host: u.Host, user: u.User.Username()}
	t.pass, _ = u.User.Password()
	u.User = nil
	t.endpoint = u.String()
	return t, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Report is what a run found.
type Report struct {
	Phases []PhaseReport `json:"phases"`
	Good   *GoodReport   `json:"good,omitempty"`
	// PeakRSSBytes is the target's peak RSS over the phases (with --pid).
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
}

// PhaseReport is one phase's outcome.
type PhaseReport struct {
	Name     string         `json:"name"`
	Requests int            `json:"requests"`
	Statuses map[string]int `json:"statuses"` // "200": n, …, "error": n
	Seconds  float64        `json:"seconds"`
	// PeakRSSBytes is the target's peak RSS during the phase (with --pid).
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// RSSAfterBytes is its RSS a second after the phase.
	RSSAfterBytes int64  `json:"rss_after_bytes,omitempty"`
	Note          string `json:"note,omitempty"`
	// Timing is what the timing-oracle phase measured.
	Timing *Timing `json:"timing,omitempty"`
}

type phase struct {
	name string
	run  func(ctx context.Context, a *attacker) *PhaseReport
}

var phases = []phase{
	{"gzip-bomb", func(ctx context.Context, a *attacker) *PhaseReport { return a.gzipBombs(ctx, 1) }},
	{"gzip-bomb-x4", func(ctx context.Context, a *attacker) *PhaseReport { return a.gzipBombs(ctx, 4) }},
	{"bodies-16x1mib", func(ctx context.Context, a *attacker) *PhaseReport { return a.bigBodies(ctx) }},
	{"long-frame-ids", func(ctx context.Context, a *attacker) *PhaseReport { return a.longFrameIDs(ctx) }},
	{"long-names", func(ctx context.Context, a *attacker) *PhaseReport { return a.longNames(ctx) }},
	{"future-series", func(ctx context.Context, a *attacker) *PhaseReport { return a.futureSeries(ctx) }},
	{"wide-sketches", func(ctx context.Context, a *attacker) *PhaseReport { return a.wideSketches(ctx) }},
	{"idle-conns", func(ctx context.Context, a *attacker) *PhaseReport { return a.idleConns(ctx) }},
	{"unknown-ids", func(ctx context.Context, a *attacker) *PhaseReport { return a.unknownIDs(ctx) }},
	{"bad-creds", func(ctx context.Context, a *attacker) *PhaseReport { return a.badCreds(ctx) }},
	{"msg-count", func(ctx context.Context, a *attacker) *PhaseReport { return a.msgCount(ctx) }},
	{"gzip-case", func(ctx context.Context, a *attacker) *PhaseReport { return a.gzipCase(ctx) }},
	{"slow-few", func(ctx context.Context, a *attacker) *PhaseReport {
		return a.slowFlood(ctx, 0, 0, 20, 20, 5*time.Second)
	}},
	{"slow-flood", func(ctx context.Context, a *attacker) *PhaseReport {
		return a.slowFlood(ctx, 233, 233, 234, 250, 8*time.Second)
	}},
	{"refused-unread", func(ctx context.Context, a *attacker) *PhaseReport { return a.refusedUnread(ctx) }},
	{"timing-oracle", func(ctx context.Context, a *attacker) *PhaseReport { return a.timingOracle(ctx) }},
	{"admin-guess", func(ctx context.Context, a *attacker) *PhaseReport { return a.adminGuess(ctx) }},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drainattack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "the attacking drain's URL with credentials, e.g. http://DRAIN:SECRET@127.0.0.1:5000/logs (required)")
	rawGood := fs.String("good", "", "a well-behaved drain's URL: it sends a batch every 100 ms throughout")
	rawFresh := fs.String("fresh", "", "a drain's URL not used since the server started: the unknown-ids phase sends its first batches during the flood")
	pid := fs.Int("pid", 0, "the drainmeter process, to report its peak RSS per phase (Linux)")
	only := fs.String("only", "", "run only these phases (comma-separated)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pause := fs.Duration("pause", time.Second, "wait between phases (memory is read at its end)")
	resetPeak := fs.Bool("reset-peak", true, "with --pid: reset the peak RSS before each phase, so that each reports its own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rawURL == "" {
		fs.Usage()
		return errors.New("--url is required")
	}
	bad, err := parseTarget(*rawURL)
	if err != nil {
		return err
	}
	selected, err := selectPhases(*only)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()

	a := &attacker{t: bad, pid: *pid, resetPeak: *resetPeak}
	if *rawFresh != "" {
		ft, err := parseTarget(*rawFresh)
		if err != nil {
			return err
		}
		a.fresh = &ft
	}
	good, stopGood, err := startGood(ctx, *rawGood)
	if err != nil {
		return err
	}
	rep := &Report{}
	for _, p := range selected {
		if ctx.Err() != nil {
			break
		}
		pr := a.runPhase(ctx, p, good, *pause)
		rep.Phases = append(rep.Phases, *pr)
		if !*asJSON {
			printPhase(stdout, pr)
		}
	}
	if good != nil {
		good.setPhase("after")
		time.Sleep(500 * time.Millisecond)
		stopGood()
		rep.Good = good.report()
	}
	if a.pid > 0 {
		rep.PeakRSSBytes, _ = readStatus(a.pid, "VmHWM")
		for _, p := range rep.Phases {
			rep.PeakRSSBytes = max(rep.PeakRSSBytes, p.PeakRSSBytes)
		}
	}
	return writeReport(stdout, rep, *asJSON)
}

// selectPhases is the phases --only names, in their order; all without it.
func selectPhases(only string) ([]phase, error) {
	var selected []phase
	for _, p := range phases {
		if only == "" || slices.Contains(strings.Split(only, ","), p.name) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("--only %q names no phase", only)
	}
	return selected, nil
}

// startGood starts the well-behaved drain of --good (none without it),
// and lets it send a few batches before the attack. stop ends it.
func startGood(ctx context.Context, raw string) (good *prober, stop func(), err error) {
	if raw == "" {
		return nil, func() {}, nil
	}
	gt, err := parseTarget(raw)
	if err != nil {
		return nil, nil, err
	}
	good = newProber(gt)
	gctx, gcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); good.run(gctx) }()
	time.Sleep(500 * time.Millisecond) // a few batches before the attack
	return good, func() { gcancel(); <-done }, nil
}

// runPhase runs one phase, then waits pause and reads the target's memory.
func (a *attacker) runPhase(ctx context.Context, p phase, good *prober, pause time.Duration) *PhaseReport {
	if good != nil {
		good.setPhase(p.name)
	}
	a.resetPeakRSS()
	start := time.Now()
	pr := p.run(ctx, a)
	pr.Name = p.name
	pr.Seconds = time.Since(start).Seconds()
	time.Sleep(pause)
	pr.PeakRSSBytes, pr.RSSAfterBytes = a.memory()
	return pr
}

// writeReport ends the output: the whole report as JSON, or (the phases
// printed as they ended) the good drain's line.
func writeReport(w io.Writer, rep *Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if rep.Good != nil {
		g := rep.Good
		fmt.Fprintf(w, "good drain: %d batches (%d frames), %d not accepted, %d retries, slowest %.0f ms, %d over 1 s; statuses %v\n",
			g.Batches, g.Frames, g.Failed, g.Retries, g.MaxLatencyMs, g.Over1s, g.Statuses)
	}
	return nil
}

func printPhase(w io.Writer, p *PhaseReport) {
	fmt.Fprintf(w, "%-15s %6d requests in %5.1fs  %v", p.Name, p.Requests, p.Seconds, p.Statuses)
	if p.PeakRSSBytes > 0 {
		fmt.Fprintf(w, "  peak RSS %d MB, %d MB after", p.PeakRSSBytes>>20, p.RSSAfterBytes>>20)
	}
	if p.Note != "" {
		fmt.Fprintf(w, "  (%s)", p.Note)
	}
	fmt.Fprintln(w)
}

// attacker sends the hostile requests.
type attacker struct {
	t         target
	fresh     *target // a drain not used since the start (--fresh)
	pid       int
	resetPeak bool
}

// resetPeakRSS resets the target's VmHWM to its current RSS.
func (a *attacker) resetPeakRSS() {
	if a.pid > 0 && a.resetPeak {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", a.pid), []byte("5"), 0)
	}
}

// memory returns the target's peak and current RSS.
func (a *attacker) memory() (peak, now int64) {
	if a.pid <= 0 {
		return 0, 0
	}
	peak, _ = readStatus(a.pid, "VmHWM")
	now, _ = readStatus(a.pid, "VmRSS")
	return peak, now
}

// readStatus reads a "kB" field of /proc/PID/status, in bytes.
func readStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// client returns an HTTP client for conc concurrent keep-alive connections.
func client(conc int) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true, IdleConnTimeout: 30 * time.Second}}
}

// blast sends n requests (made by mk) over conc connections, within limit.
func blast(ctx context.Context, n, conc int, limit time.Duration, mk func(i int) (*http.Request, error)) *PhaseReport {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := client(conc)
	defer c.CloseIdleConnections()
	rep := &PhaseReport{Statuses: map[string]int{}}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				key := "error"
				req, err := mk(i)
				if err == nil {
					var resp *http.Response
					if resp, err = c.Do(req.WithContext(ctx)); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						key = strconv.Itoa(resp.StatusCode)
					}
				}
				mu.Lock()
				rep.Requests++
				rep.Statuses[key]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		rep.Note = fmt.Sprintf("stopped after %s", limit)
	}
	return rep
}

// post makes a drain request to t.
func post(t target, body []byte, headers ...string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(t.user, t.pass)
	req.Header.Set("Content-Type", "application/logplex-1")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req, nil
}

// frame returns one octet-counted syslog frame of an app line.
func frame(ts time.Time, dyno, msg string) []byte {
	line := fmt.Sprintf("<190>1 %s host app %s - %s\n", ts.UTC().Format(time.RFC3339Nano), dyno, msg)
	return fmt.Appendf(nil, "%d %s", len(line), line)
}

// shortPairs returns frames of about 60 KB each, full of "count#a " pairs
// (one measurement each for 8 bytes), up to size bytes in all.
func shortPairs(size int) []byte {
	f := frame(time.Now(), "web.1", strings.Repeat("count#a ", 60<<10/8))
	return bytes.Repeat(f, max(1, size/len(f)))
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func (a *attacker) gzipBombs(ctx context.Context, n int) *PhaseReport {
	bomb := gzipped(shortPairs(32 << 20))
	rep := blast(ctx, n, n, 60*time.Second, func(int) (*http.Request, error) {
		return post(a.t, bomb, "Content-Encoding", "gzip")
	})
	rep.Note = fmt.Sprintf("%d KB each, 32 MiB inflated", len(bomb)>>10)
	return rep
}

func (a *attacker) bigBodies(ctx context.Context) *PhaseReport {
	body := shortPairs(1 << 20)
	return blast(ctx, 16, 16, 60*time.Second, func(int) (*http.Request, error) { return post(a.t, body) })
}

func (a *attacker) longFrameIDs(ctx context.Context) *PhaseReport {
	body := frame(time.Now(), "web.1", "count#attack.ids=1")
	pad := strings.Repeat("F", 60<<10)
	return blast(ctx, 10000, 8, 60*time.Second, func(i int) (*http.Request, error) {
		return post(a.t, body, "Logplex-Frame-Id", fmt.Sprintf("%08X", i)+pad, "Logplex-Msg-Count", "1")
	})
}

func (a *attacker) longNames(ctx context.Context) *PhaseReport {
	pad := strings.Repeat("n", 60<<10)
	now := time.Now()
	return blast(ctx, 40, 4, 60*time.Second, func(i int) (*http.Request, error) {
		var body []byte
		for j := range 16 {
			body = append(body, frame(now, "web.1", fmt.Sprintf("count#%s.%d.%d=1", pad, i, j))...)
		}
		return post(a.t, body)
	})
}

// futureSeries makes 25 000 distinct series of 200-byte names in each of
// the minutes from now to 5 minutes ahead (the furthest accepted).
func (a *attacker) futureSeries(ctx context.Context) *PhaseReport {
	const perMinute, perFrame, perRequest = 25000, 250, 16
	now := time.Now().Truncate(time.Minute)
	pad := strings.Repeat("f", 180)
	type job struct{ minute, first int }
	var jobs []job
	for m := range 6 {
		for first := 0; first < perMinute; first += perFrame * perRequest {
			jobs = append(jobs, job{m, first})
		}
	}
	return blast(ctx, len(jobs), 4, 60*time.Second, func(i int) (*http.Request, error) {
		j := jobs[i]
		ts := now.Add(time.Duration(j.minute) * time.Minute)
		if j.minute == 0 {
			ts = time.Now()
		} else if j.minute == 5 {
			ts = time.Now().Add(4*time.Minute + 50*time.Second)
		}
		var body []byte
		var msg strings.Builder
		for f := 0; f < perRequest; f++ {
			msg.Reset()
			for k := 0; k < perFrame; k++ {
				n := j.first + f*perFrame + k
				if n >= perMinute {
					break
				}
				fmt.Fprintf(&msg, "count#fs.%s.%06d=1 ", pad, n)
			}
			if msg.Len() > 0 {
				body = append(body, frame(ts, "web.1", msg.String())...)
			}
		}
		return post(a.t, body)
	})
}

// wideSketches makes 2 000 measure series, each with 64 values near 1e-300
// and 64 near 1e99 (each lot in one page of the quantile sketch): the
// sketch's pages then span the whole range a value may have (a magnitude
// above 1e100 is refused as bad_value, so it would stress nothing).
func (a *attacker) wideSketches(ctx context.Context) *PhaseReport {
	const series, perRequest = 2000, 100
	now := time.Now()
	return blast(ctx, series/perRequest, 4, 60*time.Second, func(i int) (*http.Request, error) {
		var body []byte
		var pairs strings.Builder
		for s := i * perRequest; s < (i+1)*perRequest; s++ {
			pairs.Reset()
			for k := range 64 {
				fmt.Fprintf(&pairs, "measure#wide.%d=1.%03de-300 measure#wide.%d=1.%03de99 ", s, k, s, k)
			}
			body = append(body, frame(now, "web.1", pairs.String())...)
		}
		return post(a.t, body)
	})
}

// idleConns opens 1 500 connections, makes one request on each and leaves
// them idle; then it tries 20 requests on new connections.
func (a *attacker) idleConns(ctx context.Context) *PhaseReport {
	const n, workers = 1500, 64
	rep := &PhaseReport{Statuses: map[string]int{}}
	var mu sync.Mutex
	var conns []net.Conn
	count := func(key string) {
		mu.Lock()
		rep.Requests++
		rep.Statuses[key]++
		mu.Unlock()
	}
	body := frame(time.Now(), "web.1", "count#attack.idle=1")
	auth := "Basic " + basic(a.t.user, a.t.pass)
	req := fmt.Sprintf("POST /logs HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/logplex-1\r\nContent-Length: %d\r\n\r\n%s",
		a.t.host, auth, len(body), body)
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, status := keepAlive(a.t.host, req)
				count(status)
				if c != nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < n && ctx.Err() == nil && time.Now().Before(deadline); i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	open := len(conns)
	// New connections while those are idle.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var slowest time.Duration
	var probes sync.WaitGroup
	for range 10 {
		probes.Add(1)
		go func() {
			defer probes.Done()
			r, _ := post(a.t, body)
			t0 := time.Now()
			resp, err := c.Do(r.WithContext(ctx))
			mu.Lock()
			slowest = max(slowest, time.Since(t0))
			mu.Unlock()
			if err != nil {
				count("new-conn-error")
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			count("new-conn-" + strconv.Itoa(resp.StatusCode))
		}()
	}
	probes.Wait()
	// How many of the idle connections the server closed.
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
		c.Close()
	}
	rep.Note = fmt.Sprintf("%d kept idle, %d of them closed by the server; slowest request on a new connection %d ms",
		open, closed, slowest.Milliseconds())
	return rep
}

// keepAlive opens a connection, sends req and reads the answer; it returns
// the open connection (nil if it failed) and the status.
func keepAlive(host, req string) (net.Conn, string) {
	c, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		return nil, "dial-error"
	}
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, "error"
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetDeadline(time.Time{})
	return c, strconv.Itoa(resp.StatusCode)
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func (a *attacker) unknownIDs(ctx context.Context) *PhaseReport {
	body := frame(time.Now(), "web.1", "count#attack.unknown=1")
	prefix := randomHex(4)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// With --fresh: a drain that exists, not looked up since the start,
	// sends its first batches in the middle of the flood (issue 19,
	// finding 5): each must be accepted at once.
	freshDone := make(chan map[string]int, 1)
	go func() {
		st := map[string]int{}
		defer func() { freshDone <- st }()
		if a.fresh == nil {
			return
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		c := &http.Client{Timeout: 5 * time.Second}
		for i := range 5 {
			req, _ := post(*a.fresh, frame(time.Now(), "web.1", "count#attack.fresh=1"), "Logplex-Frame-Id", fmt.Sprintf("%s%08d", randomHex(12), i))
			start := time.Now()
			resp, err := c.Do(req)
			key := "fresh-error"
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				key = "fresh-" + strconv.Itoa(resp.StatusCode)
			}
			if time.Since(start) > time.Second {
				key += "-slow"
			}
			st[key]++
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// 256 connections: refused credentials are answered after the
	// refusal delay, so it takes that many to look up more ids than the
	// lookup rate allows.
	rep := blast(ctx, 50000, 256, 10*time.Second, func(i int) (*http.Request, error) {
		t := a.t
		t.user, t.pass = fmt.Sprintf("d%s%08x", prefix, i), "nope"
		return post(t, body)
	})
	for k, n := range <-freshDone {
		rep.Statuses[k] += n
	}
	return rep
}

func (a *attacker) badCreds(ctx context.Context) *PhaseReport {
	body := frame(time.Now(), "web.1", "count#attack.creds=1")
	user := strings.Repeat("A", 45<<10)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return blast(ctx, 20000, 16, 5*time.Second, func(i int) (*http.Request, error) {
		t := a.t
		t.user, t.pass = user+"\n at=forged", "wrong"
		return post(t, body)
	})
}

func (a *attacker) msgCount(ctx context.Context) *PhaseReport {
	body := append(frame(time.Now(), "web.1", "count#attack.msgcount=1"), "abc not a frame"...)
	return blast(ctx, 1, 1, 10*time.Second, func(int) (*http.Request, error) {
		return post(a.t, body, "Logplex-Msg-Count", "4294967295")
	})
}

func (a *attacker) gzipCase(ctx context.Context) *PhaseReport {
	body := gzipped(frame(time.Now(), "web.1", "count#attack.gzipcase=1"))
	encodings := []string{"GZIP", "x-gzip"}
	return blast(ctx, len(encodings), 1, 10*time.Second, func(i int) (*http.Request, error) {
		return post(a.t, body, "Content-Encoding", encodings[i])
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
