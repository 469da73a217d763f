package main

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// TestTyposAreLoud: `drainmeter web` with a mistyped variable starts with
// a warning naming the variable it meant; an OpenTelemetry variable it
// does not use is listed as ignored; a vendor URL that would get 404 is
// named at start. No value is printed.
func TestTyposAreLoud(t *testing.T) {
	s := startServer(t, "REMOTE_WRITE_ULR=https://user:hunter2@prom.example.com/api/v1/write",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://otlp.example.com/v1/traces",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=https://otlp-gateway-prod-us-east-0.grafana.net/otlp")
	out := s.out.String()
	for _, want := range []string{
		`level=WARN msg="REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?"`,
		`level=WARN msg="OpenTelemetry variables drainmeter does not use (ignored): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`,
		`level=WARN msg="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: https://otlp-gateway-prod-us-east-0.grafana.net/otlp: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up lacks\n%s\noutput:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Error("a password is printed")
	}
	if _, err := s.stop(t); err != nil {
		t.Fatal(err)
	}

	// A start-up error says what the typo is too.
	cmd := exec.Command(binPath, "web")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REMOTE_WRITE_ULR=https://prom.example.com/api/v1/write",
		"REMOTE_WRITE_HEADERS=X-Scope-OrgID=1"}
	b, err := cmd.CombinedOutput()
	want := "drainmeter: config: REMOTE_WRITE_HEADERS is set but REMOTE_WRITE_URL is not\nwarnings:\n" +
		"  REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?\n"
	if err == nil || string(b) != want {
		t.Errorf("exit %v, output:\n%s\nwant:\n%s", err, b, want)
	}
}

// TestDrainsEndpointOneMeaning: drains add|set --otlp-endpoint takes what
// OTEL_EXPORTER_OTLP_ENDPOINT takes — a base URL gets /v1/metrics, a URL
// ending in it is kept — and says the final URL; --otlp-metrics-endpoint is
// used as is; a vendor URL that would get 404 is warned about.
func TestDrainsEndpointOneMeaning(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=https://my-drainmeter.herokuapp.com"}
	const grafana = "https://otlp-gateway-prod-us-east-0.grafana.net/otlp"

	out, errOut, err := cli(t, env, "drains", "add", "--name", "base", "--otlp-endpoint", grafana)
	if err != nil {
		t.Fatalf("add: %v\n%s%s", err, out, errOut)
	}
	if want := "--otlp-endpoint: a base URL: posting to " + grafana + "/v1/metrics (/v1/metrics appended)\n"; !strings.Contains(errOut, want) {
		t.Errorf("add's stderr lacks %q:\n%s", want, errOut)
	}
	if strings.Contains(errOut, "warning:") {
		t.Errorf("a right URL warned:\n%s", errOut)
	}
	if !strings.Contains(out, "outlets: otlp("+grafana+"/v1/metrics, cumulative)") {
		t.Errorf("add does not show the final URL:\n%s", out)
	}

	out, errOut, err = cli(t, env, "drains", "add", "--name", "full", "--otlp-endpoint", grafana+"/v1/metrics")
	if err != nil || strings.Contains(errOut, "appended") || !strings.Contains(out, "otlp("+grafana+"/v1/metrics, cumulative)") {
		t.Errorf("a full URL: %v\n%s%s", err, out, errOut)
	}

	// The full-URL flag takes it as is, and warns when a vendor would 404.
	out, errOut, err = cli(t, env, "drains", "set", "full", "--otlp-metrics-endpoint", grafana)
	if err != nil || !strings.Contains(out, "otlp("+grafana+", cumulative)") {
		t.Errorf("set --otlp-metrics-endpoint: %v\n%s%s", err, out, errOut)
	}
	if want := "warning: " + grafana + ": Grafana Cloud's OTLP gateway serves this at " + grafana + "/v1/metrics: this URL would get 404 (not found)\n"; errOut != want {
		t.Errorf("set's stderr:\n%s\nwant:\n%s", errOut, want)
	}
	if _, errOut, err = cli(t, env, "drains", "set", "full", "--otlp-metrics-endpoint", grafana, "--otlp-endpoint", grafana); err == nil ||
		!strings.Contains(errOut, "not both") {
		t.Errorf("both flags: %v %s", err, errOut)
	}

	list := mustCLI(t, env, "drains", "list")
	for _, want := range []string{"otlp(" + grafana + "/v1/metrics, cumulative)", "otlp(" + grafana + ", cumulative)"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %s:\n%s", want, list)
		}
	}

	// A web starting on the table warns about the URL that would get 404.
	s := startServer(t, env[:2]...)
	want := `level=WARN msg="drain full: ` + grafana + `: Grafana Cloud's OTLP gateway serves this at ` + grafana + `/v1/metrics: this URL would get 404 (not found)"`
	if out := s.out.String(); !strings.Contains(out, want) || strings.Count(out, "would get 404") != 1 {
		t.Errorf("start-up does not warn about drain full's URL once:\n%s", out)
	}
}

// runParseCmd runs drainmeter parse with args on stdin in.
func runParseCmd(t *testing.T, in string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"parse"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TZ=UTC"}
	cmd.Stdin = strings.NewReader(in)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestParseInputShapes: parse takes what a user pastes — a message alone,
// heroku logs output, heroku local (foreman) output, lines without a time,
// syslog frames, a logplex body — detected line by line, and each shape
// of one message prints the same measurements.
func TestParseInputShapes(t *testing.T) {
	const msg = "measure#db.latency=4ms count#jobs.done=2 sample#queue=12 unique#users=u42"
	clock := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Second)
	today := clock.Format("15:04:05")
	ts := clock.Format("2006-01-02T15:04:05.000000+00:00")
	syslog := "<190>1 " + ts + " host app web.1 - " + msg
	shapes := map[string]string{
		"message alone, with source=": msg + " source=web.1",
		"heroku logs":                 ts + " app[web.1]: " + msg,
		"heroku local":                today + " web.1   | " + msg,
		"heroku local, colored":       "\x1b[36m" + today + " web.1 |\x1b[0m " + msg,
		"node-foreman, 12-hour clock": clock.Format("3:04:05 PM") + " web.1 |  " + msg,
		"dashboard, no time":          "app[web.1]: " + msg,
		"dyno, no time":               "web.1: " + msg,
		"syslog frame":                syslog,
		"logplex body":                frame(syslog),
	}
	want := ""
	for _, kind := range []string{"measure name=db.latency value=4 unit=ms", "count name=jobs.done value=2",
		"sample name=queue value=12", "unique name=users value=1 member=u42"} {
		want += "kind=" + kind + " source=web.1\n"
	}
	timeRe := regexp.MustCompile(` time=(\S+)`)
	for shape, in := range shapes {
		out, errOut, err := runParseCmd(t, in+"\n")
		if err != nil || errOut != "summary lines=1 measurements=4 rejected=0\n" {
			t.Errorf("%s: %v\n%s", shape, err, errOut)
			continue
		}
		if got := timeRe.ReplaceAllString(out, ""); got != want {
			t.Errorf("%s: printed\n%swant\n%s", shape, got, want)
		}
		for _, m := range timeRe.FindAllStringSubmatch(out, -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil || at.Before(clock.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("%s: time %s, want between the line's clock %s and now", shape, m[1], clock.Format(time.RFC3339))
			}
		}
	}

	// A message alone has no source unless it says source=, and the time
	// of now; lines of every shape mix in one input.
	before := time.Now().Add(-time.Second)
	out, errOut, err := runParseCmd(t, "measure#db.latency=4ms\n"+shapes["heroku local"]+"\nhello world\n"+shapes["logplex body"])
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 9 || !strings.HasPrefix(lines[0], "kind=measure name=db.latency value=4 unit=ms time=") {
		t.Fatalf("mixed input printed:\n%s", out)
	}
	if at, _ := time.Parse(time.RFC3339Nano, strings.TrimPrefix(lines[0], "kind=measure name=db.latency value=4 unit=ms time=")); at.Before(before) {
		t.Errorf("a message alone: time %s, want now", lines[0])
	}
	if want := "reject reason=unrecognized_line text=\"hello world\"\nsummary lines=4 measurements=9 rejected=1 rejected.unrecognized_line=1\n"; errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
}

// TestParseRollupFormats: --rollup --format shows the names as that
// outlet sends them, read back from the outlet's own request, the whole-app
// rollups included.
func TestParseRollupFormats(t *testing.T) {
	in := "2024-05-01T12:34:01.000001+00:00 app[web.1]: measure#db.latency=4ms count#jobs.done=2 sample#queue=12\n"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rollup"}, "" + // log, the default: as drainmeter web prints them
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency drainmeter.rollup=app unit=ms count=1 sum=4 min=4 max=4 sum_squares=16 p50=4 p95=4 p99=4\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency source=web unit=ms count=1 sum=4 min=4 max=4 sum_squares=16 p50=4 p95=4 p99=4\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=measure name=db.latency source=web.1 unit=ms count=1 sum=4 min=4 max=4 sum_squares=16 p50=4 p95=4 p99=4\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=jobs.done drainmeter.rollup=app value=2\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=jobs.done source=web value=2\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=count name=jobs.done source=web.1 value=2\n" +
			"at=rollup drain=local minute=2024-05-01T12:34:00Z kind=sample name=queue source=web.1 value=12\n"},
		{[]string{"--rollup", "--format", "prometheus", "--process-types=false"}, "" +
			`db_latency{drainmeter_rollup="app",job="local",quantile="0"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="app",job="local",quantile="0.5"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="app",job="local",quantile="0.95"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="app",job="local",quantile="0.99"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="app",job="local",quantile="1"} 4 1714566900000` + "\n" +
			`db_latency_sum{drainmeter_rollup="app",job="local"} 4 1714566900000` + "\n" +
			`db_latency_count{drainmeter_rollup="app",job="local"} 1 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="dyno",job="local",quantile="0",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="dyno",job="local",quantile="0.5",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="dyno",job="local",quantile="0.95",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="dyno",job="local",quantile="0.99",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency{drainmeter_rollup="dyno",job="local",quantile="1",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency_sum{drainmeter_rollup="dyno",job="local",source="web.1"} 4 1714566900000` + "\n" +
			`db_latency_count{drainmeter_rollup="dyno",job="local",source="web.1"} 1 1714566900000` + "\n" +
			`jobs_done_total{drainmeter_rollup="app",job="local"} 2 1714566900000` + "\n" +
			`jobs_done_total{drainmeter_rollup="dyno",job="local",source="web.1"} 2 1714566900000` + "\n" +
			`queue{drainmeter_rollup="dyno",job="local",source="web.1"} 12 1714566900000` + "\n"},
		{[]string{"--rollup", "--format", "otlp", "--process-types=false", "--otlp-temporality", "delta"}, "" +
			"resource cloud.provider=heroku service.name=local\n" +
			"metric=db.latency type=exponential_histogram temporality=delta drainmeter.rollup=app count=1 sum=4 min=4 max=4 scale=6 time=2024-05-01T12:35:00Z\n" +
			"metric=db.latency type=exponential_histogram temporality=delta drainmeter.rollup=dyno source=web.1 count=1 sum=4 min=4 max=4 scale=6 time=2024-05-01T12:35:00Z\n" +
			"metric=jobs.done type=sum temporality=delta monotonic=true drainmeter.rollup=app value=2 time=2024-05-01T12:35:00Z\n" +
			"metric=jobs.done type=sum temporality=delta monotonic=true drainmeter.rollup=dyno source=web.1 value=2 time=2024-05-01T12:35:00Z\n" +
			"metric=queue type=gauge drainmeter.rollup=dyno source=web.1 value=12 time=2024-05-01T12:35:00Z\n"},
	} {
		out, errOut, err := runParseCmd(t, in, tc.args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, errOut)
			continue
		}
		if out != tc.want {
			t.Errorf("%v: printed\n%swant\n%s", tc.args, out, tc.want)
		}
	}
	if _, errOut, err := runParseCmd(t, in, "--format", "otlp"); err == nil || !strings.Contains(errOut, "go with --rollup") {
		t.Errorf("--format without --rollup: %v %s", err, errOut)
	}
	if _, errOut, err := runParseCmd(t, in, "--rollup", "--format", "statsd"); err == nil || !strings.Contains(errOut, "one of log, prometheus, otlp, librato") {
		t.Errorf("--format statsd: %v %s", err, errOut)
	}
}

// TestConfigReachesIdleDyno: two webs on one Postgres; after drains set
// switches a drain's outlet, a web that had no traffic for the drain since
// (the other is gone: it alone seals and posts) posts the next minute to
// the new outlet, never the old, within DRAIN_CACHE_TTL.
func TestConfigReachesIdleDyno(t *testing.T) {
	t.Parallel() // waits for two minutes to close
	fake := fakeotlp.New("")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	id, secret := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "idle")) // no outlet: the log
	webEnv := append(env[:2:2], "DRAIN_CACHE_TTL=2s", "GRACE=2s", "ADMIN_PASSWORD=pw")
	w1, w2 := startServer(t, webEnv...), startServer(t, webEnv...)
	send := func(s *server, at time.Time, msg string) {
		t.Helper()
		if code := s.do(t, post{user: id, pass: secret, body: []byte(appLine(at, "web.1", msg))}).StatusCode; code != 200 {
			t.Fatalf("%s: %d", s.url, code)
		}
	}

	// Both webs know the drain and its log outlet: a line each, minute M0.
	t0 := time.Now()
	send(w1, t0, "count#before=1")
	send(w2, t0, "count#before=1")
	m0 := "minute=" + t0.UTC().Truncate(time.Minute).Format(time.RFC3339)
	eventually(t, 100*time.Second, "minute M0 printed by the log outlet", func() bool {
		return strings.Contains(w1.out.String()+w2.out.String(), "at=rollup drain="+id+" "+m0+" kind=count name=before")
	})

	mustCLI(t, env, "drains", "set", "idle", "--otlp-endpoint", srv.URL) // a base URL: /v1/metrics appended
	// The next minute's line reaches web 1 alone, which then shuts down
	// (its partials written): web 2, idle for the drain, seals and posts it.
	t1 := time.Now()
	send(w1, t1, "count#after=3")
	if _, err := w1.stop(t); err != nil {
		t.Fatalf("web 1: %v", err)
	}
	m1End := uint64(t1.UTC().Truncate(time.Minute).Add(time.Minute).UnixNano())
	eventually(t, 100*time.Second, "the next minute posted to the new outlet", func() bool {
		for _, p := range fake.Points() {
			if p.Metric == "after" {
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // anything posted to the log as well would show by now
	var got float64
	for _, p := range fake.Points() {
		if p.Metric == "after" && p.Attrs["source"] == "web.1" {
			if p.Time != m1End {
				t.Errorf("after posted for minute ending %d, want %d", p.Time, m1End)
			}
			got += p.Value
		}
	}
	if got != 3 {
		t.Errorf("after = %v at the new outlet, want 3 (once)", got)
	}
	if out := w1.out.String() + w2.out.String(); strings.Contains(out, "name=after") {
		t.Errorf("the minute after the switch went to the old (log) outlet too:\n%s", out)
	}
	// The status page says which configuration the lane runs.
	page := w2.do(t, post{method: "GET", path: "/status.json", user: "admin", pass: "pw"})
	body, _ := io.ReadAll(page.Body)
	var st struct {
		Drains []struct {
			ID      string
			Outlets []struct{ Kind, Target, Config string }
		}
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status.json: %v\n%s", err, body)
	}
	var outlets []string
	for _, d := range st.Drains {
		for _, o := range d.Outlets {
			if d.ID == id {
				outlets = append(outlets, o.Kind+" | "+o.Target+" | "+o.Config)
			}
		}
	}
	if want := []string{"otlp | otlp " + srv.URL + "/v1/metrics | version 1, cumulative"}; !slices.Equal(outlets, want) {
		t.Errorf("the status page shows the drain's outlets as %q, want %q", outlets, want)
	}
	if _, err := w2.stop(t); err != nil {
		t.Fatalf("web 2: %v", err)
	}
}

// TestREADMEParseExample: the README's parse example prints what the
// README shows (but the time, which is now).
func TestREADMEParseExample(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^echo '([^']*)' \\| go run \\./cmd/drainmeter parse\n```\n\n```\n((?:kind=.*\n)+)```").FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatal("the README has no parse example with its output")
	}
	out, errOut, err := runParseCmd(t, m[1]+"\n")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	timeRe := regexp.MustCompile(`time=\S+`)
	if got, want := timeRe.ReplaceAllString(out, "time=T"), timeRe.ReplaceAllString(m[2], "time=T"); got != want {
		t.Errorf("the README's parse example prints\n%sthe README shows\n%s", got, want)
	}
}
