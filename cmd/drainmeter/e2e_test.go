package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/logtest"
)

var binPath, benchPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drainmeter-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "drainmeter")
	benchPath = filepath.Join(dir, "drainbench")
	for _, b := range [][2]string{{binPath, "."}, {benchPath, "../drainbench"}} {
		build := exec.Command("go", "build", "-o", b[0], b[1])
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", b[1], err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `drainmeter web`: run in this process (startServer)
// or the built binary (startProcess).
type server struct {
	cmd    *exec.Cmd          // startProcess: the process
	cancel context.CancelFunc // startServer: what SIGTERM does in main
	out    *logtest.Buffer    // stdout and stderr
	url    string             // http://127.0.0.1:PORT
	done   chan error         // the exit, once: nil, or its status as an error
	exited chan struct{}      // closed at the exit
}

// Most end-to-end tests run drainmeter web in-process (startServer): the
// program as main runs it, with its own environment, on :0, and stopped by
// cancelling its context, as SIGTERM does in main. These start the built
// binary instead (startProcess, or exec.Command(binPath) for one-shot
// commands), because a real process is what they test:
//   - TestSIGHUPIgnored: a signal to the process (signals_e2e_test.go);
//   - TestDeployAsTheREADMESays, TestDeployOpaqueKey (deploy_e2e_test.go):
//     processes replacing each other on one database, as Heroku's dynos do;
//   - TestDurableKill9: SIGKILL, what a crash loses;
//   - TestAttack (attack_e2e_test.go): the process's memory under attack,
//     its budget and the Go runtime's memory limit, which only main sets;
//   - TestRoutesEndToEnd: the web processes' resident memory (vmRSS);
//   - TestPartitionDoesNotStallTheDrain: latency bounds, which hold for the
//     binary as built; under go test -race an in-process web is
//     race-instrumented with the tests, several times slower;
//   - the tests of a command's exit code and its output as a process
//     (TestWebConfigErrors, TestAttributesRefused, TestMigrateWithoutDatabase,
//     TestParseCommand, TestHelp, mustCLI's drains commands, the parse and
//     loud tests): they assert on what a shell sees;
//   - the chaos run (drainchaos, internal/chaos) kills and restarts
//     processes.

// startServer runs drainmeter web in this process with only the given
// environment (plus PATH and PORT=0, as startProcess) and waits until it
// listens. It stops (cancelled, waited for) when the test ends.
func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	return startServerWith(t, process{}, env...)
}

// startServerWith is startServer with the process's other parts: a test's
// clock (process.clock); its environ is made from env.
func startServerWith(t *testing.T, proc process, env ...string) *server {
	t.Helper()
	vars := append([]string{"PATH=" + os.Getenv("PATH"), "PORT=0"}, env...)
	values := map[string]string{}
	var environ []string
	for i, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		values[k] = v
		if !slices.ContainsFunc(vars[i+1:], func(later string) bool { return strings.HasPrefix(later, k+"=") }) {
			environ = append(environ, kv) // as exec.Cmd.Env: the last of a name
		}
	}
	getenv := func(k string) string { return values[k] }
	proc.environ = func() []string { return environ }
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, out: &logtest.Buffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	go func() {
		code := run(ctx, []string{"web"}, getenv, strings.NewReader(""), io.MultiWriter(s.out, pw), s.out,
			proc)
		pw.Close()
		s.done <- exitError(code)
		close(s.exited)
	}()
	s.waitListening(t, pr, cancel)
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.exited:
		case <-time.After(40 * time.Second):
			t.Logf("drainmeter web did not return 40 s after its context was cancelled")
		}
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("drainmeter output:\n%s", s.out)
		}
	})
	return s
}

// exitError is run's exit code as startProcess's server reports it.
func exitError(code int) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("exit status %d", code)
}

// startProcess starts the binary with only the given environment (plus
// PATH and PORT=0) and waits until it listens.
func startProcess(t *testing.T, env ...string) *server {
	t.Helper()
	cmd := exec.Command(binPath, "web")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PORT=0"}, env...)
	out := &logtest.Buffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(out, pw)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, out: out, done: make(chan error, 1), exited: make(chan struct{})}
	go func() { s.done <- cmd.Wait(); pw.Close(); close(s.exited) }()
	s.waitListening(t, pr, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("drainmeter output:\n%s", out)
		}
	})
	return s
}

// waitListening reads the web's stdout from pr until it says where it
// listens, and sets s.url; kill ends a web that does not.
func (s *server) waitListening(t *testing.T, pr *io.PipeReader, kill func()) {
	t.Helper()
	port := logtest.ListenedPort(pr)
	select {
	case p := <-port:
		s.url = "http://127.0.0.1:" + p
	case err := <-s.done:
		t.Fatalf("drainmeter exited before listening (%v):\n%s", err, s.out)
	case <-time.After(20 * time.Second):
		kill()
		t.Fatalf("drainmeter did not listen:\n%s", s.out)
	}
}

// stop asks the web to stop (SIGTERM to a process; in-process, its context
// cancelled, as main does on SIGTERM) and waits for the exit, returning how
// long it took.
func (s *server) stop(t *testing.T) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if s.cmd == nil {
		s.cancel()
	} else if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		return time.Since(start), err
	case <-time.After(40 * time.Second):
		t.Fatalf("drainmeter did not exit 40 s after SIGTERM:\n%s", s.out)
	}
	return 0, nil
}

type post struct {
	user, pass string
	body       []byte
	headers    map[string]string
	method     string
	path       string
}

func (s *server) do(t *testing.T, p post) *http.Response {
	t.Helper()
	if p.method == "" {
		p.method = http.MethodPost
	}
	if p.path == "" {
		p.path = "/logs"
	}
	req, err := http.NewRequest(p.method, s.url+p.path, bytes.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.user != "" || p.pass != "" {
		req.SetBasicAuth(p.user, p.pass)
	}
	req.Header.Set("Content-Type", "application/logplex-1")
	for k, v := range p.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// frame builds one octet-counted frame from a syslog message (LF added).
func frame(msg string) string {
	msg += "\n"
	return fmt.Sprintf("%d %s", len(msg), msg)
}

func appLine(ts time.Time, dyno, msg string) string {
	return frame(fmt.Sprintf("<190>1 %s host app %s - %s", ts.UTC().Format(time.RFC3339Nano), dyno, msg))
}

func TestWebDrainOverHTTP(t *testing.T) {
	s := startServer(t, "DRAIN_SECRET=s3cret")
	now := time.Now()
	good := appLine(now, "web.1", "count#e2e.hits=3 measure#e2e.lat=5ms") + appLine(now, "web.2", "measure#e2e.lat=7ms")
	for _, tc := range []struct {
		name       string
		p          post
		status     int
		wantHeader [2]string
	}{
		{"good batch", post{user: "myapp", pass: "s3cret", body: []byte(good),
			headers: map[string]string{"Logplex-Msg-Count": "2", "Logplex-Frame-Id": "09C557EAFCFB6CF2740EE62F62971098"}}, 200, [2]string{"Content-Length", "0"}},
		{"retried batch", post{user: "myapp", pass: "s3cret", body: []byte(good),
			headers: map[string]string{"Logplex-Msg-Count": "2", "Logplex-Frame-Id": "09C557EAFCFB6CF2740EE62F62971098"}}, 200, [2]string{"Content-Length", "0"}},
		{"wrong password", post{user: "myapp", pass: "nope", body: []byte(good)}, 401, [2]string{"WWW-Authenticate", `Basic realm="drainmeter"`}},
		{"no auth", post{body: []byte(good)}, 401, [2]string{"WWW-Authenticate", `Basic realm="drainmeter"`}},
		{"10 MB body", post{user: "myapp", pass: "s3cret", body: bytes.Repeat([]byte(appLine(now, "web.1", "count#e2e.big")), 10<<20/80)}, 413, [2]string{}},
		{"huge octet count", post{user: "myapp", pass: "s3cret", body: []byte(appLine(now, "web.1", "count#e2e.hits") + "99999999 <190>1 " + now.Format(time.RFC3339) + " host app web.1 - count#e2e.hits\n")}, 200, [2]string{}},
		{"length not a number", post{user: "myapp", pass: "s3cret", body: []byte(appLine(now, "web.1", "count#e2e.hits") + "abc <190>1 x")}, 200, [2]string{}},
		{"truncated frame", post{user: "myapp", pass: "s3cret", body: []byte(appLine(now, "web.1", "count#e2e.hits") + "500 <190>1 short")}, 200, [2]string{}},
		{"wrong content type", post{user: "myapp", pass: "s3cret", body: []byte(good), headers: map[string]string{"Content-Type": "application/json"}}, 415, [2]string{}},
		{"GET /logs", post{method: http.MethodGet}, 405, [2]string{}},
		{"PUT /logs", post{method: http.MethodPut, user: "myapp", pass: "s3cret"}, 405, [2]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.do(t, tc.p)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if h := tc.wantHeader; h[0] != "" && resp.Header.Get(h[0]) != h[1] {
				t.Errorf("%s: %q, want %q", h[0], resp.Header.Get(h[0]), h[1])
			}
			if tc.status == 200 {
				if b, _ := io.ReadAll(resp.Body); len(b) != 0 || resp.ContentLength != 0 || len(resp.TransferEncoding) != 0 {
					t.Errorf("reply is not an empty, non-chunked body: %q %v", b, resp.TransferEncoding)
				}
			}
		})
	}
	resp := s.do(t, post{method: http.MethodGet, path: "/health"})
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) ||
		strings.Contains(string(body), "myapp") {
		t.Errorf("health %d %s (it names no app or drain)", resp.StatusCode, body)
	}

	took, err := s.stop(t)
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	out := s.out.String()
	minute := now.UTC().Truncate(time.Minute).Format(time.RFC3339)
	for _, want := range []string{
		// 3 from the good batch (its retry is not counted), 1 from each of the three bad-framing batches.
		"at=rollup drain=default minute=" + minute + " kind=count name=e2e.hits source=web.1 app=myapp value=6\n",
		"at=rollup drain=default minute=" + minute + " kind=measure name=e2e.lat source=web app=myapp unit=ms count=2 sum=12 min=5 max=7",
		"at=rollup drain=default minute=" + minute + " kind=count name=e2e.hits app=myapp drainmeter.rollup=app value=6\n",
		"msg=\"shutdown complete\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "e2e.big") {
		t.Error("a refused 10 MB body was counted")
	}
	got := summaryTotals(out, "default")
	for k, want := range map[string]uint64{"requests": 4, "duplicates": 1, "frames": 5, "frames_rejected": 3, "measurements": 6} {
		if got[k] != want {
			t.Errorf("drain summaries: %s=%d, want %d\n%s", k, got[k], want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("the secret was logged")
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v", took)
	}
}

// TestInProcessWebLeavesTheProcessAlone: an in-process web reads only the
// environment run is given (this process's has a bad GRACE and a typo), and
// sets no process-wide state: the Go runtime's memory limit stays as it
// was, and a second web beside it runs on its own settings.
func TestInProcessWebLeavesTheProcessAlone(t *testing.T) {
	t.Setenv("GRACE", "soon")
	t.Setenv("REMOTE_WRITE_ULR", "https://prom.example.com/api/v1/write")
	before := debug.SetMemoryLimit(-1)
	a := startServer(t, "MEMORY_BUDGET=100000000", "PREFIX=a")
	b := startServer(t, "MEMORY_BUDGET=200000000", "PREFIX=b", "GRACE=1s")
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("the runtime's memory limit went from %d to %d", before, after)
	}
	now := time.Now()
	for _, s := range []*server{a, b} {
		if resp := s.do(t, post{user: "app", pass: "x", body: []byte(appLine(now, "web.1", "count#hits=1"))}); resp.StatusCode != 200 {
			t.Fatalf("POST /logs: %d", resp.StatusCode)
		}
		if _, err := s.stop(t); err != nil {
			t.Fatalf("exit: %v\n%s", err, s.out)
		}
	}
	for _, tc := range []struct {
		s                *server
		budget, grace    string
		prefix, unwanted string
	}{{a, "memory_budget=100000000", "grace=1m30s", "name=a.hits", "name=b.hits"}, {b, "memory_budget=200000000", "grace=1s", "name=b.hits", "name=a.hits"}} {
		out := tc.s.out.String()
		for _, want := range []string{tc.budget, tc.grace, tc.prefix} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, tc.unwanted) || strings.Contains(out, "ULR") {
			t.Errorf("output has %q or the process's typo:\n%s", tc.unwanted, out)
		}
	}
}

func TestWebConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PORT=abc"}, `drainmeter: config: PORT="abc" is not a valid whole number`},
		{[]string{"GRACE=soon"}, `drainmeter: config: GRACE="soon" is not a valid duration (like 90s or 5m)`},
		{[]string{"MAX_BODY_BYTES=-1"}, `drainmeter: config: MAX_BODY_BYTES=-1 is too small (at least 1024)`},
		{[]string{"LIBRATO_USER=a"}, `drainmeter: config: set both LIBRATO_USER and LIBRATO_TOKEN, or neither (rollups are then logged)`},
		{[]string{"DYNO=web.1"}, `drainmeter: config: DRAIN_SECRET is not set`},
		{[]string{"PERCENTILES=50,101"}, `drainmeter: config: PERCENTILES="50,101": "101" is not a percentile in (0, 100]`},
		{[]string{"DRAINMETER_KEY=0123456789"}, `drainmeter: config: DRAINMETER_KEY: key 1: too short: use at least 32 characters`},
		{[]string{"DATABASE_URL=postgres://nowhere.invalid/x"}, `drainmeter: config: DRAINMETER_KEY is not set`},
	} {
		cmd := exec.Command(binPath, "web")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.HasPrefix(string(out), tc.want) || strings.Count(string(out), "\n") != 1 {
			t.Errorf("%v: exit %v, output %q; want one line starting %q", tc.env, err, out, tc.want)
		}
	}
	// Every problem at once, one line each.
	cmd := exec.Command(binPath, "web")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PORT=abc", "GRACE=soon", "DYNO=web.1"}
	out, err := cmd.CombinedOutput()
	want := "drainmeter: config: 3 problems:\n" +
		"  PORT=\"abc\" is not a valid whole number\n" +
		"  GRACE=\"soon\" is not a valid duration (like 90s or 5m)\n" +
		"  DRAIN_SECRET is not set: on Heroku the drain would accept anyone's logs (heroku config:set DRAIN_SECRET=$(openssl rand -hex 24))\n"
	if err == nil || string(out) != want {
		t.Errorf("several problems: exit %v, output:\n%s\nwant:\n%s", err, out, want)
	}
}

// TestMigrateWithoutDatabase: the Procfile's release phase runs migrate on
// every deploy; without a database that must not fail the deploy.
func TestMigrateWithoutDatabase(t *testing.T) {
	cmd := exec.Command(binPath, "migrate")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to migrate") {
		t.Fatalf("migrate without DATABASE_URL: %v %s", err, out)
	}
}

func TestParseCommand(t *testing.T) {
	in := "# a comment\n" +
		"2024-05-01T12:34:01.000001+00:00 app[web.1]: measure#db.latency=4ms unique#users=u42\n" +
		"<190>1 2024-05-01T12:34:02Z host app worker.1 - count#jobs.done=2 measure#bad=x\n" +
		"80 <190>1 2024-05-01T12:34:01.000001+00:00 host app web.1 - measure#db.latency=4ms\n" +
		"not a log line\n"
	const rejects = "reject reason=bad_value text=\"measure#bad=x\"\nreject reason=unrecognized_line text=\"not a log line\"\n"
	const summary = "summary lines=4 measurements=4 rejected=2 rejected.bad_value=1 rejected.unrecognized_line=1\n"
	for _, tc := range []struct {
		args       []string
		in         string
		out, stder string
		fails      bool
	}{
		{[]string{"parse", "--json"}, in,
			`{"kind":"measure","name":"db.latency","value":4,"unit":"ms","source":"web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n" +
				`{"kind":"unique","name":"users","value":1,"member":"u42","source":"web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n" +
				`{"kind":"count","name":"jobs.done","value":2,"source":"worker.1","time":"2024-05-01T12:34:02Z"}` + "\n" +
				`{"kind":"measure","name":"db.latency","value":4,"unit":"ms","source":"web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n",
			rejects + summary, false},
		{[]string{"parse", "--json", "--prefix", "app", "--source-prefix", "prod"}, in,
			`{"kind":"measure","name":"app.db.latency","value":4,"unit":"ms","source":"prod.web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n" +
				`{"kind":"unique","name":"app.users","value":1,"member":"u42","source":"prod.web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n" +
				`{"kind":"count","name":"app.jobs.done","value":2,"source":"prod.worker.1","time":"2024-05-01T12:34:02Z"}` + "\n" +
				`{"kind":"measure","name":"app.db.latency","value":4,"unit":"ms","source":"prod.web.1","time":"2024-05-01T12:34:01.000001Z"}` + "\n",
			rejects + summary, false},
		// --rollup: the gauges as posted, percentiles named as Librato's are,
		// uniques rolled into the process type too.
		{[]string{"parse", "--rollup", "--format", "librato"}, in,
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency source=web unit=ms count=2 sum=8 min=4 max=4 sum_squares=32\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.median source=web unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.perc95 source=web unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.perc99 source=web unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency source=web.1 unit=ms count=2 sum=8 min=4 max=4 sum_squares=32\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.median source=web.1 unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.perc95 source=web.1 unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency.perc99 source=web.1 unit=ms value=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=jobs.done source=worker value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=jobs.done source=worker.1 value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=unique name=users source=web value=1\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=unique name=users source=web.1 value=1\n",
			rejects + summary, false},
		{[]string{"parse", "--rollup", "--format", "librato", "--prefix", "shop", "--source-prefix", "prod", "--percentiles", "50,99.9"},
			"<190>1 2024-05-01T12:34:02Z host app web.3 - measure#q=2s sample#x=\n",
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q source=prod.web unit=s count=1 sum=2 min=2 max=2 sum_squares=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q.median source=prod.web unit=s value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q.perc99_9 source=prod.web unit=s value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q source=prod.web.3 unit=s count=1 sum=2 min=2 max=2 sum_squares=4\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q.median source=prod.web.3 unit=s value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=shop.q.perc99_9 source=prod.web.3 unit=s value=2\n" +
				"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=sample name=shop.x source=prod.web.3 value=1\n",
			"summary lines=1 measurements=2 rejected=0\n", false},
		// Lines, but nothing parsed: a failure, said so.
		{[]string{"parse"}, "GET / 200\nhello\n", "",
			"reject reason=unrecognized_line text=\"GET / 200\"\nreject reason=unrecognized_line text=\"hello\"\n" +
				"summary lines=2 measurements=0 rejected=2 rejected.unrecognized_line=2\n" +
				"drainmeter: parse: no measurement in the input (2 lines): lines need measure#, count#, sample# or unique# keys, router or runtime metrics (drainmeter parse --help)\n", true},
		{[]string{"parse"}, "", "", "summary lines=0 measurements=0 rejected=0\n", false},
	} {
		cmd := exec.Command(binPath, tc.args...)
		cmd.Stdin = strings.NewReader(tc.in)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); (err != nil) != tc.fails {
			t.Fatalf("%v: exit %v, want failure %v\n%s", tc.args, err, tc.fails, stderr.String())
		}
		if stdout.String() != tc.out || stderr.String() != tc.stder {
			t.Errorf("%v:\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", tc.args, stdout.String(), tc.out, stderr.String(), tc.stder)
		}
	}
}

// firstErrors returns an Errorf of t that reports the first n failures
// only: for checks that compare every series of every minute, where one
// fault fails hundreds of them.
func firstErrors(t *testing.T, n int) func(format string, args ...any) {
	errs := 0
	return func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= n {
			t.Errorf(format, args...)
		}
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// summaryTotals adds up the counters of a drain's "drain summary" lines in
// a web's output: each line is what changed since the one before.
func summaryTotals(out, drain string) map[string]uint64 {
	totals := map[string]uint64{}
	prefix := `msg="drain summary" drain=` + drain + " "
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, prefix)
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					totals[k] += n
				}
			}
		}
	}
	return totals
}
