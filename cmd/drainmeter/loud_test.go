package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
)

// TestEnvWarnings: a variable with a prefix drainmeter owns that it does
// not read names the closest one it reads; OpenTelemetry variables it does
// not use are listed as ignored; other variables and values are left alone.
func TestEnvWarnings(t *testing.T) {
	got := envWarnings([]string{
		"REMOTE_WRITE_ULR=https://user:hunter2@prom.example.com/api/v1/write",
		"REMOTE_WRITE_URL=https://prom.example.com/api/v1/write", // known
		"DRAIN_SECRETS=s3cret",
		"drain_secret=s3cret",
		"OTEL_EXPORTER_OTLP_ENDPIONT=https://otlp.example.com",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://otlp.example.com",
		"OTEL_METRIC_EXPORT_INTERVAL=60000",
		"LIBRATO_TOKENS=x",
		"OUTLET_TIMEOUTS=5s",
		"PATH=/bin", "HOME=/root", "DYNO=web.1", "HEROKU_APP_ID=1", "GOGC=100", "WEB_CONCURRENCY=2", // not drainmeter's
		"HEROKU_APP_DEFAULT_DOMAIN_NAME=x.herokuapp.com", // read by drains add
		"MAX_SERIES_PER_DRIAN=10",
		"GRCAE=5s", "COUNTER_HLOD=1m", "LOG_LEVL=debug", // near misses of names without a prefix of their own
		"LANG=C.UTF-8", "SHLVL=1", "HOSTNAME=x", "DATABASE_CONNECTION_POOL_URL=postgres://x", "REDIS_URL=redis://x", // not near any
	})
	want := []string{
		"COUNTER_HLOD is not a drainmeter setting (ignored): did you mean COUNTER_HOLD?",
		"DRAIN_SECRETS is not a drainmeter setting (ignored): did you mean DRAIN_SECRET?",
		"GRCAE is not a drainmeter setting (ignored): did you mean GRACE?",
		"LIBRATO_TOKENS is not a drainmeter setting (ignored): did you mean LIBRATO_TOKEN?",
		"LOG_LEVL is not a drainmeter setting (ignored): did you mean LOG_LEVEL?",
		"MAX_SERIES_PER_DRIAN is not a drainmeter setting (ignored): did you mean MAX_SERIES_PER_DRAIN?",
		"OTEL_EXPORTER_OTLP_ENDPIONT is not a drainmeter setting (ignored): did you mean OTEL_EXPORTER_OTLP_ENDPOINT?",
		"OUTLET_TIMEOUTS is not a drainmeter setting (ignored): did you mean OUTLET_TIMEOUT?",
		"REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?",
		"drain_secret: drainmeter reads upper-case names only: did you mean DRAIN_SECRET?",
		"OpenTelemetry variables drainmeter does not use (ignored): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range got {
		if strings.Contains(w, "hunter2") || strings.Contains(w, "s3cret") {
			t.Errorf("a warning quotes a value: %s", w)
		}
	}
	if w := envWarnings([]string{"PATH=/bin", "DRAIN_SECRET=x", "OTEL_EXPORTER_OTLP_ENDPOINT=https://a"}); len(w) != 0 {
		t.Errorf("known variables warned: %q", w)
	}
}

// TestEnvWarningsFollowConfig: the variables read come from Config's tags,
// so a field added there is known without another list to keep.
func TestEnvWarningsFollowConfig(t *testing.T) {
	for _, v := range configVars() {
		if w := envWarnings([]string{v.Name + "=1"}); len(w) != 0 {
			t.Errorf("%s, a Config variable, warned: %q", v.Name, w)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"ULR", "URL", 1}, {"", "abc", 3}, {"abc", "abc", 0}, {"kitten", "sitting", 3}, {"DRAIN", "DRAINS", 1}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

// TestOTLPMetricsURL: one meaning of an OTLP endpoint, for the config var
// and the CLI: a base URL gets /v1/metrics; a URL that has it is kept.
func TestOTLPMetricsURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp":             "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/":            "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics":  "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics/": "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://api.honeycomb.io":                                         "https://api.honeycomb.io/v1/metrics",
		" http://127.0.0.1:9090/api/v1/otlp ":                              "http://127.0.0.1:9090/api/v1/otlp/v1/metrics",
		"http://127.0.0.1:9090/api/v1/otlp/v1/metrics":                     "http://127.0.0.1:9090/api/v1/otlp/v1/metrics",
	} {
		if got := otlpMetricsURL(in); got != want {
			t.Errorf("otlpMetricsURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEndpointWarnings: a known vendor's URL that would get 404 is named,
// with the URL it serves; right ones are quiet.
func TestEndpointWarnings(t *testing.T) {
	quiet := []struct {
		kind outlet.Kind
		url  string
	}{
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics"},
		{outlet.OTLP, "https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics"},
		{outlet.OTLP, "https://api.honeycomb.io/v1/metrics"},
		{outlet.OTLP, "https://otlp.nr-data.net/v1/metrics"},
		{outlet.OTLP, "http://127.0.0.1:9090/api/v1/otlp/v1/metrics"},
		{outlet.RemoteWrite, "https://prometheus-prod-10-prod-us-central-0.grafana.net/api/prom/push"},
		{outlet.RemoteWrite, "https://prom.example.com/api/v1/write"},
		{outlet.RemoteWrite, "https://mimir.example.com/api/v1/push"},
	}
	for _, q := range quiet {
		if w := endpointWarnings(q.kind, q.url); len(w) != 0 {
			t.Errorf("%s %s: %q", q.kind, q.url, w)
		}
	}
	for _, tc := range []struct {
		kind      outlet.Kind
		url, want string
	}{
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/v1/metrics",
			"https://otlp-gateway-prod-us-east-0.grafana.net/v1/metrics: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"},
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/otlp",
			"https://otlp-gateway-prod-us-east-0.grafana.net/otlp: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"},
		{outlet.OTLP, "https://abc123.live.dynatrace.com/v1/metrics", "Dynatrace serves this at https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics"},
		{outlet.OTLP, "https://collector.example.com/v1/metrics/v1/metrics", "/v1/metrics twice"},
		{outlet.OTLP, "https://collector.example.com/otlp", "a path ending in /v1/metrics"},
		{outlet.RemoteWrite, "https://prometheus-prod-10-prod-us-central-0.grafana.net/api/v1/push", "Grafana Cloud's Prometheus serves this at https://prometheus-prod-10-prod-us-central-0.grafana.net/api/prom/push"},
		{outlet.RemoteWrite, "https://user:hunter2@prom.example.com", "no path"},
		{outlet.RemoteWrite, "https://collector.example.com/v1/metrics", "this is an OTLP path"},
	} {
		w := endpointWarnings(tc.kind, tc.url)
		if len(w) != 1 || !strings.Contains(w[0], tc.want) {
			t.Errorf("%s %s: %q, want one containing %q", tc.kind, tc.url, w, tc.want)
		}
		if len(w) > 0 && strings.Contains(w[0], "hunter2") {
			t.Errorf("a warning prints a password: %s", w[0])
		}
	}
}

// TestAppJSONHasReceiverTable: the Deploy form asks for every variable
// that a row of the README's receiver table needs, so that no row needs a
// variable the form does not offer.
func TestAppJSONHasReceiverTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../app.json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Env map[string]json.RawMessage `json:"env"`
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n| backend | config vars |\n")
	if !ok {
		t.Fatal("the README has no receiver table (| backend | config vars |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	vars := regexp.MustCompile("`([A-Z][A-Z0-9_]+[A-Z0-9])(=|`)").FindAllStringSubmatch(table, -1)
	if len(vars) < 5 {
		t.Fatalf("the receiver table names %d variables: the test no longer reads it", len(vars))
	}
	for _, m := range vars {
		if _, ok := app.Env[m[1]]; !ok {
			t.Errorf("the README's receiver table needs %s, which the Deploy form (app.json) does not ask for", m[1])
		}
	}
}

// getenvRe finds the environment variables a Go source reads by name.
var getenvRe = regexp.MustCompile(`(?:Getenv|LookupEnv|getenv)\("([A-Z][A-Z0-9_]*)"\)`)

// sourceEnvVars returns the variables read by name in the non-test Go
// files under dir.
func sourceEnvVars(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range getenvRe.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnvVarsRead: every variable the binary's sources read by name is
// Config's or in otherEnvVars, so that the typo warnings know them all.
func TestEnvVarsRead(t *testing.T) {
	known := map[string]bool{}
	for _, v := range readEnvVars() {
		known[v] = true
	}
	for v := range sourceEnvVars(t, ".") {
		if !known[v] {
			t.Errorf("cmd/drainmeter reads %s, which is neither in Config nor in otherEnvVars: start-up would call it a typo", v)
		}
	}
}

// readmeNotVars are upper-case words of the README that are not variables
// drainmeter reads, on purpose.
var readmeNotVars = map[string]bool{
	"REMOTE_WRITE_ULR":            true, // the example of a typo, and its warning
	"OTEL_METRIC_EXPORT_INTERVAL": true, // an example of the OpenTelemetry variables it ignores
}

// TestREADMEQuotesTheTypoWarning: the warning the README shows is the one
// start-up logs.
func TestREADMEQuotesTheTypoWarning(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	w := envWarnings([]string{"REMOTE_WRITE_ULR=https://prom.example.com/api/v1/write"})
	if len(w) != 1 {
		t.Fatalf("warnings %q", w)
	}
	if line := "\nlevel=WARN msg=" + strconv.Quote(w[0]) + "\n"; !strings.Contains(string(raw), line) {
		t.Errorf("the README does not show the warning as logged:%s", line)
	}
}

// notFiles are first path segments of the README's words that are not
// files: MIME types, OTLP protocols, metric names.
var notFiles = map[string]bool{"text": true, "application": true, "http": true, "a": true}

// TestREADMEIsTrue: the README names no file that does not exist and no
// variable that drainmeter does not read (Config's, the other getenv uses
// of the binary and of the test helpers it documents).
func TestREADMEIsTrue(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	checkREADME(t, readme, func(format string, args ...any) { t.Errorf(format, args...) })

	// The test fails when it should.
	var caught []string
	checkREADME(t, "See `shared/reference/conventions.md` and `scripts/nothing`; set `REMOTE_WRITE_URI=…` and run ./scripts/nope.\n",
		func(format string, args ...any) { caught = append(caught, fmt.Sprintf(format, args...)) })
	if len(caught) != 4 {
		t.Errorf("a README with two missing files, a missing command and an unknown variable: caught %d:\n%s", len(caught), strings.Join(caught, "\n"))
	}
}

func checkREADME(t *testing.T, readme string, fail func(format string, args ...any)) {
	t.Helper()
	read := sourceEnvVars(t, "../..")
	for _, v := range readEnvVars() {
		read[v] = true
	}
	seen := map[string]bool{}
	// NAME_WITH_UNDERSCORES anywhere, and NAME= at the start of a word
	// (not measure=NAME val=V).
	for _, m := range regexp.MustCompile("\\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\\b|(?:^|[\\s`(])([A-Z][A-Z0-9]+)=").FindAllStringSubmatch(readme, -1) {
		v := m[1] + m[2]
		if seen[v] || read[v] || readmeNotVars[v] {
			continue
		}
		seen[v] = true
		fail("the README names %s, which drainmeter does not read", v)
	}

	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join("../..", filepath.FromSlash(p)))
		return err == nil
	}
	pathRe := regexp.MustCompile(`^\.{0,2}/?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?$`)
	check := func(p, where string) {
		p = strings.TrimSuffix(strings.TrimSuffix(p, "…"), "/")
		if !strings.Contains(p, "/") || !pathRe.MatchString(p) || strings.HasPrefix(p, "/") {
			return
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(p, "./"), "/")
		if notFiles[first] || seen[p] {
			return
		}
		seen[p] = true
		if !exists(p) {
			fail("the README names %s (%s), which is not in the repository", p, where)
		}
	}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(readme, -1) {
		check(m[1], "quoted")
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#][^)]*)\)`).FindAllStringSubmatch(readme, -1) {
		if !strings.Contains(m[1], "://") {
			check(m[1], "a link")
		}
	}
	for _, m := range regexp.MustCompile(`(?:^|\s)(\./[A-Za-z0-9_./-]+)`).FindAllStringSubmatch(readme, -1) {
		check(m[1], "a command")
	}
	// The Development section's map of the tree.
	if _, dev, ok := strings.Cut(readme, "\n## Development\n"); ok {
		if _, tree, ok := strings.Cut(dev, "```\n"); ok {
			tree, _, _ = strings.Cut(tree, "```")
			for _, line := range strings.Split(tree, "\n") {
				if f := strings.Fields(line); len(f) > 0 && line[0] != ' ' { // not a description's second line
					if !exists(strings.TrimSuffix(f[0], "/")) {
						fail("the README's map of the tree names %s, which is not in the repository", f[0])
					}
				}
			}
		}
	}
}

// TestForemanAndProcLines: the clock of heroku local's lines is today's
// (yesterday's when it is ahead of now), 12-hour clocks included; lines
// that only look like them are not taken.
func TestForemanAndProcLines(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 10, 0, 0, time.Local)
	for _, tc := range []struct {
		line, want, proc, msg string
	}{
		{"00:09:59 web.1 | count#a=1", "2026-12-07T00:09:59", "web.1", "count#a=1"},
		{"23:59:58 web.1   |   count#a=1", "2026-12-06T23:59:58", "web.1", "count#a=1"}, // pasted from before midnight
		{"12:00:01 AM worker.2 | x", "2026-12-07T00:00:01", "worker.2", "x"},
		{"12:00:01 PM web.1 | x", "2026-12-06T12:00:01", "web.1", "x"},
		{"1:02:03 PM web.1 | x", "2026-12-06T13:02:03", "web.1", "x"},
		{"25:00:00 web.1 | x", "", "", ""},
		{"13:00:00 PM web.1 | x", "", "", ""},
		{"00:09:59 web 1 | x", "", "", ""},
		{"00:09:59 web.1 x", "", "", ""},
		{"measure#x=1", "", "", ""},
	} {
		h, ok := parseForemanLine([]byte(tc.line), now)
		if ok != (tc.want != "") {
			t.Errorf("%q: ok %v", tc.line, ok)
			continue
		}
		if ok && (h.Time.Format("2006-01-02T15:04:05") != tc.want || string(h.ProcID) != tc.proc || string(h.Msg) != tc.msg || string(h.App) != "app") {
			t.Errorf("%q: %s %q %q %q", tc.line, h.Time, h.App, h.ProcID, h.Msg)
		}
	}
	for _, tc := range []struct{ line, app, proc, msg string }{
		{"app[web.1]: count#a=1", "app", "web.1", "count#a=1"},
		{"heroku[router]: at=info", "heroku", "router", "at=info"},
		{"web.12: count#a=1", "app", "web.12", "count#a=1"},
		{"db.latency: 4", "", "", ""}, // not a dyno
		{"note: count#a=1", "", "", ""},
		{"app[web 1]: x", "", "", ""},
		{"count#a=1", "", "", ""},
	} {
		h, ok := parseProcLine([]byte(tc.line))
		if ok != (tc.app != "") || ok && (string(h.App) != tc.app || string(h.ProcID) != tc.proc || string(h.Msg) != tc.msg) {
			t.Errorf("%q: %v %q %q %q", tc.line, ok, h.App, h.ProcID, h.Msg)
		}
	}
	if got := string(stripANSI([]byte("\x1b[36m21:00:00 web.1 |\x1b[0m x\x1b"))); got != "21:00:00 web.1 | x\x1b" {
		t.Errorf("stripANSI: %q", got)
	}
}
