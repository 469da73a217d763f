package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// The web lands the same way whatever stops it: SIGTERM (the e2e tests),
// or its listener failing under it. These tests run it in-process on a
// listener that fails on demand.

var errAcceptBroke = errors.New("accept: the listener broke (injected)")

// breakingListener serves until breakNow; then Accept fails with an error
// that is not temporary, as a listener whose socket broke does, and
// http.Server.Serve returns it.
type breakingListener struct {
	net.Listener
	broken atomic.Bool
}

func (l *breakingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.broken.Load() {
		return nil, errAcceptBroke
	}
	return c, err
}

func (l *breakingListener) breakNow() {
	l.broken.Store(true)
	_ = l.Listener.Close()
}

// lifeGoroutines are the functions of the goroutines a web starts: none
// may be left running once it has returned.
var lifeGoroutines = []string{
	"main.(*crew).Go", "main.every(", "main.logHangups(", "main.pingEvery(", "net/http.(*Server).Serve(",
	"outlet.(*Engine).work(", "rollup.(*Store).Run(", "stats.(*Registry).LogEvery(",
	"postgres.(*Poster).Run(", "postgres.(*Partials).Run(", "postgres.(*Claims).Run(", "postgres.(*DrainCache).RunIDs(",
}

// runningLife counts the goroutines running each of lifeGoroutines.
func runningLife() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	counts := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range lifeGoroutines {
			if strings.Contains(g, f) {
				counts[f]++
			}
		}
	}
	return counts
}

// webRun is a web running in-process: done is closed when serveWeb has
// returned err.
type webRun struct {
	done chan struct{}
	err  error
}

// webOnBreakingListener starts serveWeb with the environment env on a
// loopback listener it can break, and waits until it listens.
func webOnBreakingListener(t *testing.T, env map[string]string) (url string, ln *breakingListener, out *logtest.Buffer, run *webRun) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := loadOSConfig()
	if err != nil {
		t.Fatal(err)
	}
	lns := make(chan *breakingListener, 1)
	listen := func(network, _ string) (net.Listener, error) {
		inner, err := net.Listen(network, "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		l := &breakingListener{Listener: inner}
		lns <- l
		return l, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, run = &logtest.Buffer{}, &webRun{done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.err = serveWeb(ctx, cfg, out, process{}, listen)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-run.done:
		case <-time.After(40 * time.Second):
			t.Errorf("the web did not return 40 s after its context ended")
		}
		if t.Failed() {
			t.Logf("drainmeter output:\n%s", out)
		}
	})
	select {
	case ln = <-lns:
	case <-run.done:
		t.Fatalf("the web returned before listening: %v\n%s", run.err, out)
	case <-time.After(60 * time.Second):
		t.Fatalf("the web did not listen:\n%s", out)
	}
	eventually(t, 10*time.Second, "the listening line", func() bool { return strings.Contains(out.String(), "msg=listening") })
	return "http://" + ln.Addr().String(), ln, out, run
}

// postBatch posts one batch of count#jobs.done=2 from web.1 of myapp.
func postBatch(t *testing.T, url, user, pass string, now time.Time) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/logs", strings.NewReader(appLine(now, "web.1", "count#jobs.done=2")))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/logplex-1")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /logs: %d", resp.StatusCode)
	}
}

// landedOnServeError breaks ln and checks that the web returns the serve
// error, after a complete landing, with none of its goroutines left.
func landedOnServeError(t *testing.T, ln *breakingListener, out *logtest.Buffer, run *webRun, before map[string]int) {
	t.Helper()
	ln.breakNow()
	select {
	case <-run.done:
		if !errors.Is(run.err, errAcceptBroke) {
			t.Errorf("serveWeb returned %v, want the serve error", run.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the web did not return 40 s after its listener broke:\n%s", out)
	}
	for _, want := range []string{`level=ERROR msg="shutting down" err="web: accept: the listener broke (injected)"`, `msg="shutdown complete" open_minutes_closed=1 `} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "shutdown incomplete") {
		t.Error("the landing lost something")
	}
	for f, n := range runningLife() {
		if n > before[f] {
			t.Errorf("%d goroutines in %s still run after the web returned (%d before it started)", n, f, before[f])
		}
	}
}

// TestServeErrorLandsInMemory: the listener fails under a web without a
// database; the web lands as on SIGTERM: the open minute is closed and
// posted (to the log outlet), and every goroutine it started has stopped.
func TestServeErrorLandsInMemory(t *testing.T) {
	before := runningLife()
	url, ln, out, run := webOnBreakingListener(t, map[string]string{"DRAIN_SECRET": "s3cret", "GRACE": "90s", "SELF_METRICS": "false"})
	now := time.Now()
	postBatch(t, url, "myapp", "s3cret", now)
	landedOnServeError(t, ln, out, run, before)
	minute := now.UTC().Truncate(time.Minute).Format(time.RFC3339)
	want := "at=rollup drain=default minute=" + minute + " kind=count name=jobs.done source=web.1 app=myapp value=2\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("the open minute was not posted: output lacks %q", want)
	}
}

// TestServeErrorLandsDurable: the same with Postgres: the open minute is
// written as a partial (PARTIAL_FLUSH_INTERVAL is an hour: only the
// landing writes it), this writer is marked gone (it holds no minute of
// the other dynos back), and every goroutine has stopped.
func TestServeErrorLandsDurable(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	before := runningLife()
	url, ln, out, run := webOnBreakingListener(t, map[string]string{"DATABASE_URL": dsn, "DRAINMETER_KEY": postgres.NewKey(),
		"DRAIN_SECRET": "s3cret", "DYNO": "web.7", "GRACE": "90s", "PARTIAL_FLUSH_INTERVAL": "1h", "SELF_METRICS": "false"})
	postBatch(t, url, "myapp", "s3cret", time.Now())
	landedOnServeError(t, ln, out, run, before)

	pool := pgtest.MustPool(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var partials, gone int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM partials WHERE drain_id = 'default'`).Scan(&partials); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM writers WHERE id LIKE 'web.7.%' AND gone_at IS NOT NULL`).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	if partials == 0 {
		t.Error("the open minute was not written to Postgres")
	}
	if gone != 1 {
		t.Errorf("%d writers of web.7 marked gone, want 1", gone)
	}
	if m := regexp.MustCompile(`store=(\S+)`).FindStringSubmatch(out.String()); m == nil || m[1] != "postgres" {
		t.Errorf("listening line: store %v, want postgres", m)
	}
}

// TestListenErrorLands: the port is taken. The mode was launched before
// the listen (consumers first), so the web lands as on SIGTERM and
// returns the listen error, with none of its goroutines left.
func TestListenErrorLands(t *testing.T) {
	taken, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	before := runningLife()
	t.Setenv("PORT", strconv.Itoa(taken.Addr().(*net.TCPAddr).Port))
	t.Setenv("DRAIN_SECRET", "s3cret")
	cfg, err := loadOSConfig()
	if err != nil {
		t.Fatal(err)
	}
	out := &logtest.Buffer{}
	err = serveWeb(context.Background(), cfg, out, process{}, net.Listen)
	if err == nil || !strings.Contains(err.Error(), "web: listen tcp") {
		t.Errorf("serveWeb returned %v, want the listen error", err)
	}
	for _, want := range []string{`level=ERROR msg="shutting down" err="web: listen tcp`, `msg="shutdown complete" open_minutes_closed=0 `} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "msg=listening") {
		t.Errorf("a web that could not listen said it listens:\n%s", out)
	}
	for f, n := range runningLife() {
		if n > before[f] {
			t.Errorf("%d goroutines in %s still run after the web returned (%d before it started)", n, f, before[f])
		}
	}
}
