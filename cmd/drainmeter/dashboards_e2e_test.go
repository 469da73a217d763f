package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/internal/promtest"
)

// The Grafana dashboard JSON model, as much of it as the tests read.
type grafanaDashboard struct {
	file          string
	Title         string
	UID           string
	SchemaVersion int
	Panels        []grafanaPanel
	Templating    struct {
		List []grafanaVariable
	}
	Annotations struct {
		List []struct {
			Name       string
			Expr       string
			Step       string
			Datasource grafanaDatasource
			BuiltIn    int `json:"builtIn"`
		}
	}
}

type grafanaDatasource struct {
	Type string
	UID  string
}

type grafanaPanel struct {
	Title      string
	Type       string
	Interval   string
	Repeat     string
	Datasource *grafanaDatasource
	Targets    []struct {
		Expr  string
		RefID string `json:"refId"`
	}
	Panels []grafanaPanel // a collapsed row's
}

type grafanaVariable struct {
	Name       string
	Type       string
	Query      json.RawMessage // a string, or {"query": …} (Grafana 10+)
	Datasource *grafanaDatasource
	Regex      string
}

// query is a query variable's expression (label_values(…)).
func (v grafanaVariable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// dashboardQuery is one PromQL expression of a dashboard or rule file,
// with where it comes from.
type dashboardQuery struct {
	file  string // the dashboard's; empty for alerts
	where string
	expr  string
	// variable: the expression is a query variable's label_values(sel,
	// label), and label is the label whose values it lists.
	variable, label string
	// threshold: an alert (or annotation) expression; lhs is it without
	// its comparison with a number, which must return data.
	lhs string
}

// loadDashboards reads dashboards/*.json and returns them with every query
// of their panels, annotations and variables.
func loadDashboards(t *testing.T) ([]grafanaDashboard, []dashboardQuery) {
	t.Helper()
	files, err := filepath.Glob("../../dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var ds []grafanaDashboard
	var qs []dashboardQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		ds = append(ds, d)
		var walk func([]grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, p := range ps {
				for _, tg := range p.Targets {
					qs = append(qs, dashboardQuery{file: d.file, where: fmt.Sprintf("%s: panel %q %s", d.file, p.Title, tg.RefID), expr: tg.Expr})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				qs = append(qs, dashboardQuery{file: d.file, where: fmt.Sprintf("%s: annotation %q", d.file, a.Name), expr: a.Expr, lhs: thresholdLHS(a.Expr)})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesRE.FindStringSubmatch(v.query())
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", d.file, v.Name, v.query())
				continue
			}
			qs = append(qs, dashboardQuery{file: d.file, where: fmt.Sprintf("%s: variable %s", d.file, v.Name), expr: m[1], variable: v.Name, label: m[2]})
		}
	}
	return ds, qs
}

var (
	labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_]+)\)$`)
	// a selector: an optional metric name and its matchers.
	selectorRE  = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^{}]*)\}`)
	matcherRE   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	bracedVarRE = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}`)
	stringRE    = regexp.MustCompile(`"[^"]*"`)
	rangeRE     = regexp.MustCompile(`\[([^\]:]+)(:[^\]]*)?\]`)
	// an alert's comparison with a number, last in its expression.
	thresholdRE = regexp.MustCompile(`^(.+?)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9][0-9.e+-]*)$`)
)

func thresholdLHS(expr string) string {
	if m := thresholdRE.FindStringSubmatch(strings.TrimSpace(expr)); m != nil {
		return m[1]
	}
	return ""
}

// alertRule is one rule of dashboards/alerts.yml.
type alertRule struct {
	name, expr, for_ string
	labels           map[string]string
	annotations      []string
}

// loadAlerts reads dashboards/alerts.yml. The file keeps to a shape a
// line reader can check: every expr on one line.
func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("../../dashboards/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rs []alertRule
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(s, "- alert:"):
			rs = append(rs, alertRule{name: strings.TrimSpace(strings.TrimPrefix(s, "- alert:")), labels: map[string]string{}})
			section = ""
		case len(rs) == 0 || s == "" || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(s, "expr:"):
			e := strings.TrimSpace(strings.TrimPrefix(s, "expr:"))
			if e == "" || e == "|" || e == ">" || strings.HasPrefix(e, "|") || strings.HasPrefix(e, ">") {
				t.Errorf("alerts.yml:%d: keep each expr on its line", i+1)
			}
			rs[len(rs)-1].expr = e
		case strings.HasPrefix(s, "for:"):
			rs[len(rs)-1].for_ = strings.TrimSpace(strings.TrimPrefix(s, "for:"))
		case s == "labels:" || s == "annotations:":
			section = s
		case section == "labels:":
			k, v, _ := strings.Cut(s, ":")
			rs[len(rs)-1].labels[k] = strings.Trim(strings.TrimSpace(v), `"`)
		case section == "annotations:":
			k, _, _ := strings.Cut(s, ":")
			rs[len(rs)-1].annotations = append(rs[len(rs)-1].annotations, k)
		}
	}
	return rs
}

// TestDashboardsModel checks what needs no Prometheus: each dashboard
// imports into Grafana 10/11 with a Prometheus data source variable, every
// panel queries through it with a 1-minute minimum interval, and every
// selector of a dashboard or alert goes through the label contract's one
// filter (and the job).
func TestDashboardsModel(t *testing.T) {
	t.Parallel()
	ds, qs := loadDashboards(t)
	uids := map[string]string{}
	for _, d := range ds {
		if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion ≥ 36 (Grafana 10)", d.file, d.Title, d.UID, d.SchemaVersion)
		}
		if f, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s have the uid %s", f, d.file, d.UID)
		}
		uids[d.UID] = d.file
		var haveDS, haveJob bool
		for _, v := range d.Templating.List {
			switch {
			case v.Name == "datasource":
				var q string
				_ = json.Unmarshal(v.Query, &q)
				haveDS = v.Type == "datasource" && q == "prometheus"
			case v.Type == "query":
				haveJob = haveJob || v.Name == "job"
				if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
					t.Errorf("%s: variable %s does not use ${datasource}", d.file, v.Name)
				}
			}
		}
		if !haveDS || !haveJob {
			t.Errorf("%s: want a datasource variable (type datasource, query prometheus) and a job variable", d.file)
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 && (a.Datasource.UID != "${datasource}" || a.Step != "60s") {
				t.Errorf("%s: annotation %q: datasource %+v, step %q: want ${datasource} and 60s", d.file, a.Name, a.Datasource, a.Step)
			}
		}
		var walk func([]grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type == "row" || p.Type == "text" {
					continue
				}
				if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Interval != "1m" {
					t.Errorf("%s: panel %q: want targets, datasource ${datasource} and interval 1m", d.file, p.Title)
				}
			}
		}
		walk(d.Panels)
	}
	for _, r := range loadAlerts(t) {
		qs = append(qs, dashboardQuery{where: "alerts.yml: " + r.name, expr: r.expr})
		if r.expr == "" || r.labels["severity"] == "" || !slices.Contains(r.annotations, "summary") {
			t.Errorf("alerts.yml: %s: want an expr, a severity label and a summary", r.name)
		}
	}
	for _, q := range qs {
		if q.expr == "" {
			t.Errorf("%s: no expression", q.where)
		}
		for _, p := range queryProblems(q.expr) {
			t.Errorf("%s: %s\n  %s", q.where, p, q.expr)
		}
	}
	// The checks catch what they are for.
	for _, bad := range []string{
		`sum(rate(router_requests_total{job=~"$job"}[5m]))`,
		`sum(rate(router_requests_total{job=~"$job",drainmeter_rollup!="process_type"}[5m]))`,
		`sum(rate(router_requests_total{job=~"$job",drainmeter_rollup=~"app|dyno"}[5m]))`,
		`sum(rate(router_requests_total{job=~"$job",drainmeter_rollup="app"}[1m]))`,
		`sum(rate(router_requests_total{job=~"$job",drainmeter_rollup="app"}[$__interval]))`,
	} {
		if len(queryProblems(bad)) == 0 {
			t.Errorf("queryProblems(%s) found none", bad)
		}
	}
}

// queryProblems lists what breaks the dashboards' rules in expr: a selector
// without drainmeter_rollup (= or =~, app never with another value), a
// range window under 2 minutes (minutes arrive once a minute).
func queryProblems(expr string) []string {
	var out []string
	expr = bracedVarRE.ReplaceAllString(expr, "$$${1}") // ${x} is $x
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		rollup := ""
		for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if mm[1] != "drainmeter_rollup" {
				continue
			}
			if mm[2] == "!=" || mm[2] == "!~" {
				out = append(out, fmt.Sprintf("%s: never a negative drainmeter_rollup filter", m[0]))
			}
			rollup = mm[3]
			if mm[2] == "=~" && slices.Contains(strings.Split(mm[3], "|"), "app") && mm[3] != "app" {
				out = append(out, fmt.Sprintf("%s: the app rollup mixed with others counts lines twice", m[0]))
			}
		}
		if rollup == "" {
			out = append(out, fmt.Sprintf("%s: no drainmeter_rollup filter", m[0]))
		}
	}
	for _, m := range rangeRE.FindAllStringSubmatch(stringRE.ReplaceAllString(expr, `""`), -1) {
		w := m[1]
		switch w {
		case "$__rate_interval", "$__range", "${__range}":
			continue
		case "$__interval", "${__interval}":
			out = append(out, fmt.Sprintf("[%s]: use $__rate_interval ($__interval can be one minute, one sample)", w))
			continue
		}
		if d, err := time.ParseDuration(w); err != nil || d < 2*time.Minute {
			out = append(out, fmt.Sprintf("[%s]: a window holds a sample a minute: at least 2m", w))
		}
	}
	return out
}

// TestDashboardsEndToEnd is issue 22's acceptance for dashboards/: a real
// Prometheus 2.42 fed by remote write from drainmeter, with a drainbench
// load (router lines with routes, runtime metrics, the app's own lines)
// and Heroku's other lines (H and R codes, crashes, releases, Postgres,
// Redis); then every query of every dashboard (its variables replaced by
// values they list) and every alert expression is valid and returns data,
// and promtool accepts the rule file.
func TestDashboardsEndToEnd(t *testing.T) {
	t.Parallel()
	_, qs := loadDashboards(t)
	alerts := loadAlerts(t)
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})

	promtool := filepath.Join(filepath.Dir(promtest.Binary(t, "PROMETHEUS_BIN", "prometheus")), "promtool")
	if out, err := exec.Command(promtool, "check", "rules", "../../dashboards/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}

	s := startServer(t, "DRAIN_SECRET=s3cret", "REMOTE_WRITE_URL="+prom.WriteURL(), "ROUTE_METRICS=auto",
		"GRACE=3s", "SHUTDOWN_TIMEOUT=20s")
	now := time.Now().UTC()
	m := now.Truncate(time.Minute)
	if now.Sub(m) > 45*time.Second { // the lines must reach their minute before it closes
		time.Sleep(time.Until(m.Add(time.Minute + time.Second)))
		now = time.Now().UTC()
		m = now.Truncate(time.Minute)
	}
	g := loadgen.New(22, 3)
	g.SetPaths(loadgen.PathAPI)
	// Two minutes of load, m and m+1, each with every kind of line:
	// samples and percentiles end (a stale marker) after the last minute
	// that has them, as when an app stops.
	dashboardsLoadMinute(t, s, g, now)
	time.Sleep(time.Until(m.Add(time.Minute + time.Second)))
	dashboardsLoadMinute(t, s, g, time.Now().UTC())

	// A minute's self-metrics are added when the next one starts, its
	// outlets' minutes waiting once they have posted (the first minute is
	// closed GRACE after its end): so two minutes, then SIGTERM posts what
	// is left.
	time.Sleep(time.Until(m.Add(2*time.Minute + 6*time.Second)))
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	at := m.Add(2 * time.Minute)

	names := dashboardsSeriesNames(t, prom, at)
	vars := dashboardsVariableValues(t, prom, qs, at)
	dashboardsCheckQueries(t, prom, qs, alerts, vars, names, at)

	// A query of a metric drainmeter does not produce fails.
	bad := dashboardQuery{where: "bad", expr: `sum(rate(router_request_total{job=~"$job",drainmeter_rollup="app"}[$__rate_interval]))`}
	if errs := checkQuery(prom, bad, map[string]string{"job": "shop"}, names, at); len(errs) == 0 {
		t.Errorf("a query of router_request_total passed")
	}
}

// dashboardsLoadMinute posts one minute's load at now: drainbench's router
// lines, then Heroku's other lines (dyno samples, H codes, R14 and R15,
// crashes, releases, Postgres, Redis, the app's own, a logplex L10).
func dashboardsLoadMinute(t *testing.T, s *server, g *loadgen.Generator, now time.Time) {
	t.Helper()
	send := func(body []byte) {
		t.Helper()
		resp := s.do(t, post{user: "shop", pass: "s3cret", body: body})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /logs: %d", resp.StatusCode)
		}
	}
	for i := range 4 {
		send(g.Batch(500, now.Add(time.Duration(i)*time.Millisecond)))
	}
	ts := now.Add(10 * time.Millisecond)
	var b strings.Builder
	for i, dyno := range []string{"web.1", "web.2", "web.3"} {
		b.WriteString(herokuLine(ts, "heroku", dyno, fmt.Sprintf("source=%s dyno=heroku.1.abc sample#load_avg_1m=0.%d sample#load_avg_5m=0.4 sample#load_avg_15m=0.3", dyno, 5+i)))
		b.WriteString(herokuLine(ts, "heroku", dyno, fmt.Sprintf("source=%s dyno=heroku.1.abc sample#memory_total=%d.00MB sample#memory_rss=%d.00MB sample#memory_cache=12.00MB sample#memory_swap=1.50MB sample#memory_pgpgin=1pages sample#memory_pgpgout=1pages sample#memory_quota=512.00MB", dyno, 400+i, 380+i)))
	}
	for _, l := range []string{
		`at=error code=H12 desc="Request timeout" method=GET path="/slow" host=shop.herokuapp.com request_id=a fwd="203.0.113.1" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0 protocol=https`,
		`at=error code=H13 desc="Connection closed without response" method=GET path="/x" host=shop.herokuapp.com request_id=b fwd="203.0.113.1" dyno=web.2 connect=1ms service=120ms status=503 bytes=0 protocol=https`,
		`at=error code=H10 desc="App crashed" method=GET path="/" host=shop.herokuapp.com request_id=c fwd="203.0.113.1" dyno= connect= service= status=503 bytes= protocol=https`,
	} {
		b.WriteString(herokuLine(ts, "heroku", "router", l))
	}
	b.WriteString(herokuLine(ts, "heroku", "web.1", "Error R14 (Memory quota exceeded)"))
	for _, dyno := range []string{"web.1", "web.2"} {
		b.WriteString(herokuLine(ts, "heroku", dyno, "Error R15 (Memory quota vastly exceeded)"))
		b.WriteString(herokuLine(ts, "heroku", dyno, "State changed from up to crashed"))
		b.WriteString(herokuLine(ts, "heroku", dyno, "State changed from crashed to starting"))
	}
	b.WriteString(herokuLine(ts, "app", "api", "Release v74 created by user ops@example.com"))
	b.WriteString(herokuLine(ts, "app", "api", "Deploy d706b4a by user ops@example.com"))
	b.WriteString(herokuLine(ts, "app", "api", "Rollback to v73 by user ops@example.com"))
	b.WriteString(herokuLine(ts, "app", "api", "Scaled to web@3:Standard-1X worker@1:Standard-1X by user ops@example.com"))
	b.WriteString(herokuLine(ts, "app", "heroku-postgres", "source=DATABASE addon=postgresql-x sample#current_transaction=1873 sample#db_size=90755887bytes sample#tables=13 sample#active-connections=12 sample#waiting-connections=1 sample#index-cache-hit-rate=0.99723 sample#table-cache-hit-rate=0.99118 sample#load-avg-1m=0.31 sample#load-avg-5m=0.315 sample#load-avg-15m=0.28 sample#read-iops=3 sample#write-iops=112.73 sample#tmp-disk-used=543633408 sample#tmp-disk-available=72435159040 sample#memory-total=3944484kB sample#memory-free=83828kB sample#memory-cached=2751064kB sample#memory-postgres=1094856kB sample#wal-percentage-used=0.07"))
	b.WriteString(herokuLine(ts, "app", "heroku-redis", "source=REDIS addon=redis-x sample#active-connections=4 sample#load-avg-1m=0.1 sample#load-avg-5m=0.1 sample#load-avg-15m=0.05 sample#read-iops=0 sample#write-iops=0.5 sample#memory-total=15664264kB sample#memory-free=9866584kB sample#memory-cached=4804268kB sample#memory-redis=341232bytes sample#hit-rate=0.5 sample#evicted-keys=0"))
	b.WriteString(appLine(ts, "worker.1", "sample#queue.depth=12 count#emails.sent=3"))
	b.WriteString(herokuLine(ts, "heroku", "logplex", "Error L10 (output buffer overflow): 7 messages dropped since 2026-12-06T00:00:00+00:00."))
	send([]byte(b.String()))
}

// dashboardsSeriesNames lists the names of the series in Prometheus at at.
func dashboardsSeriesNames(t *testing.T, prom *promtest.Prometheus, at time.Time) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, x := range prom.Query(t, `count by (__name__) ({__name__=~".+"})`, at) {
		names[x.Metric["__name__"]] = true
	}
	if testing.Verbose() {
		t.Logf("series names: %v", slices.Sorted(maps.Keys(names)))
	}
	return names
}

// dashboardsVariableValues gives the variables' values, per dashboard: the
// first value each lists (job: the app's, shop, where it lists it), in the
// order the variables come, so that one can use the one before it; a
// variable that lists nothing fails.
func dashboardsVariableValues(t *testing.T, prom *promtest.Prometheus, qs []dashboardQuery, at time.Time) map[string]map[string]string {
	t.Helper()
	vars := map[string]map[string]string{}
	for _, q := range qs {
		if q.variable == "" {
			continue
		}
		if vars[q.file] == nil {
			vars[q.file] = map[string]string{}
		}
		var vals []string
		for _, x := range prom.Query(t, fmt.Sprintf("count by (%s) (%s)", q.label, substitute(q.expr, vars[q.file])), at) {
			vals = append(vals, x.Metric[q.label])
		}
		slices.Sort(vals)
		if len(vals) == 0 {
			t.Errorf("%s: label_values(%s, %s) lists nothing", q.where, q.expr, q.label)
			continue
		}
		vars[q.file][q.variable] = vals[0]
		if slices.Contains(vals, "shop") {
			vars[q.file][q.variable] = "shop"
		}
	}
	return vars
}

// dashboardsCheckQueries checks every alert ends in a threshold, and every
// query of a dashboard and alert returns data (checkQuery).
func dashboardsCheckQueries(t *testing.T, prom *promtest.Prometheus, qs []dashboardQuery, alerts []alertRule,
	vars map[string]map[string]string, names map[string]bool, at time.Time) {
	t.Helper()
	for _, r := range alerts {
		qs = append(qs, dashboardQuery{where: "alerts.yml: " + r.name, expr: r.expr, lhs: thresholdLHS(r.expr)})
		if thresholdLHS(r.expr) == "" {
			t.Errorf("alerts.yml: %s: the expression does not end in a comparison with a number", r.name)
		}
	}
	for _, q := range qs {
		if q.variable != "" {
			continue
		}
		for _, err := range checkQuery(prom, q, vars[q.file], names, at) {
			t.Errorf("%s: %s", q.where, err)
		}
	}
}

// checkQuery runs q (its variables substituted) at at and returns why it
// fails: an error from Prometheus, a metric name drainmeter did not post,
// no data (for a threshold expression: none without the threshold).
func checkQuery(prom *promtest.Prometheus, q dashboardQuery, vars map[string]string, names map[string]bool, at time.Time) []error {
	var errs []error
	for _, m := range selectorRE.FindAllStringSubmatch(q.expr, -1) {
		name := m[1]
		for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if mm[1] == "__name__" && mm[2] == "=" {
				name = mm[3]
			}
		}
		if name != "" && !strings.Contains(name, "$") && !names[name] {
			errs = append(errs, fmt.Errorf("names %s, which drainmeter did not post", name))
		}
	}
	expr := substitute(q.expr, vars)
	res, err := promQuery(prom, expr, at)
	if err != nil {
		return append(errs, err)
	}
	if q.lhs == "" && len(res) == 0 {
		errs = append(errs, fmt.Errorf("no data: %s", expr))
	}
	if q.lhs != "" {
		lhs := substitute(q.lhs, vars)
		if res, err := promQuery(prom, lhs, at); err != nil || len(res) == 0 {
			errs = append(errs, fmt.Errorf("no data without its threshold (%v): %s", err, lhs))
		}
	}
	return errs
}

// substitute replaces Grafana's variables: the dashboard's, and the
// intervals a data source with a 60 s scrape interval gives.
func substitute(expr string, vars map[string]string) string {
	r := []string{"$__rate_interval", "4m", "${__rate_interval}", "4m", "$__interval", "1m", "${__interval}", "1m", "$__range", "1h", "${__range}", "1h"}
	for k, v := range vars {
		r = append(r, "${"+k+"}", regexpQuote(v), "$"+k, regexpQuote(v))
	}
	return strings.NewReplacer(r...).Replace(expr)
}

// regexpQuote is how Grafana's Prometheus data source formats a value
// inside a regex matcher (=~"$x"), its usual place.
func regexpQuote(v string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
}

// promQuery is an instant query that returns an error instead of failing.
func promQuery(prom *promtest.Prometheus, expr string, at time.Time) ([]json.RawMessage, error) {
	u := prom.URL + "/api/v1/query?query=" + url.QueryEscape(expr) + "&time=" + strconv.FormatInt(at.Unix(), 10)
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			Result []json.RawMessage
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.Error, expr)
	}
	return r.Data.Result, nil
}
