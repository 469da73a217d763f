package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/promtest"
	"github.com/drainmeter/drainmeter/status"
)

// herokuLine is a frame of one of Heroku's own lines (APP-NAME app,
// PROCID proc: heroku-postgres, heroku-redis; heroku: web.1, router).
func herokuLine(ts time.Time, app, proc, msg string) string {
	return frame(fmt.Sprintf("<134>1 %s host %s %s - %s", ts.UTC().Format(time.RFC3339Nano), app, proc, msg))
}

// TestBuiltinDrainSeriesEndToEnd is issue 18's acceptance on the built-in
// drain, read back from a real Prometheus 2.42 and the fake OTLP receiver:
//   - two apps sending web.1 are two jobs (service.name), each exact, and
//     an app that appears in a later minute changes nothing of theirs;
//   - the drain's own series (self-metrics) are neither app's;
//   - dyno, Postgres and Redis metrics lines never share a Prometheus name;
//   - OTEL_RESOURCE_ATTRIBUTES (percent-decoded) are OTLP resource
//     attributes and Prometheus labels, and show on the status page.
func TestBuiltinDrainSeriesEndToEnd(t *testing.T) {
	t.Parallel()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	fake := fakeotlp.New(fakeotlp.Strict)
	fakeSrv := httptest.NewServer(fake)
	t.Cleanup(fakeSrv.Close)
	s := startServer(t, "DRAIN_SECRET=s3cret", "REMOTE_WRITE_URL="+prom.WriteURL(),
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="+fakeSrv.URL+"/v1/metrics",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=production, service.namespace=shop%20eu",
		"ADMIN_PASSWORD=admin", "SHUTDOWN_TIMEOUT=20s")

	m := time.Now().UTC().Truncate(time.Minute)
	prev := m.Add(-time.Minute)
	// Minute prev: alpha-app and beta-app; minute m: the same, and
	// gamma-app for the first time.
	want := map[string][2]float64{"alpha-app": {2, 5}, "beta-app": {3, 7}, "gamma-app": {0, 11}}
	builtinSeriesSend(t, s, want, prev, m)
	builtinSeriesStatusPage(t, s)
	if _, err := s.stop(t); err != nil { // SIGTERM posts the open minutes
		t.Fatalf("exit: %v\n%s", err, s.out)
	}

	builtinSeriesJobs(t, prom, want, prev, m)
	builtinSeriesNames(t, prom, m.Add(time.Minute))
	builtinSeriesOTLP(t, fake, want, m.Add(time.Minute))
}

// builtinSeriesSend posts the apps' lines: minute prev, alpha-app and
// beta-app; minute m, the same and gamma-app, each with a dyno's, Postgres'
// and Redis' metrics lines.
func builtinSeriesSend(t *testing.T, s *server, want map[string][2]float64, prev, m time.Time) {
	t.Helper()
	send := func(app string, body string) {
		t.Helper()
		resp := s.do(t, post{user: app, pass: "s3cret", body: []byte(body)})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", app, resp.StatusCode)
		}
	}
	for _, app := range []string{"beta-app", "alpha-app"} {
		send(app, appLine(prev.Add(5*time.Second), "web.1", fmt.Sprintf("count#multi.app=%g", want[app][0])))
	}
	for _, app := range []string{"gamma-app", "alpha-app", "beta-app"} {
		send(app, appLine(m.Add(5*time.Second), "web.1", fmt.Sprintf("count#multi.app=%g", want[app][1]))+
			herokuLine(m.Add(6*time.Second), "heroku", "web.1", "source=web.1 dyno=heroku.1.abc sample#load_avg_1m=0.5 sample#memory_total=412.5MB")+
			herokuLine(m.Add(7*time.Second), "app", "heroku-postgres", "source=DATABASE addon=postgresql-x sample#load-avg-1m=0.3 sample#memory-total=3944484kB sample#db_size=90755887bytes sample#tmp-disk-used=543633408")+
			herokuLine(m.Add(8*time.Second), "app", "heroku-redis", "source=REDIS addon=redis-x sample#load-avg-1m=0.1 sample#memory-total=15664264kB sample#memory-redis=341232bytes sample#hit-rate=0.5"))
	}
}

// builtinSeriesStatusPage checks status.json lists the three apps and the
// attributes, and the status page shows the attributes.
func builtinSeriesStatusPage(t *testing.T, s *server) {
	t.Helper()
	code, page := get(t, s.url+"/status.json", "", "admin")
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(page), &snap); err != nil || code != http.StatusOK {
		t.Fatalf("status.json: %d %v", code, err)
	}
	d := drainOf(&snap, "default")
	if !slices.Equal(d.Attributes, []string{"deployment.environment.name=production", "service.namespace=shop eu"}) ||
		!slices.Equal(slices.Sorted(slices.Values(d.Apps)), []string{"alpha-app", "beta-app", "gamma-app"}) {
		t.Errorf("status.json: apps %v, attributes %v", d.Apps, d.Attributes)
	}
	if code, html := get(t, s.url+"/", "", "admin"); code != http.StatusOK || !strings.Contains(html, "deployment.environment.name=production") {
		t.Errorf("the status page (%d) does not show the attributes", code)
	}
}

// builtinSeriesJobs checks each app is its job, exact in each rollup, with
// the attributes' labels; gamma-app at most a zero before its first minute.
func builtinSeriesJobs(t *testing.T, prom *promtest.Prometheus, want map[string][2]float64, prev, m time.Time) {
	t.Helper()
	at := func(minute time.Time) time.Time { return minute.Add(time.Minute) }
	for app, w := range want {
		for i, minute := range []time.Time{prev, m} {
			total := w[0]
			if i == 1 {
				total += w[1]
			}
			for _, r := range []string{"dyno", "process_type", "app"} {
				got := prom.Query(t, fmt.Sprintf(`multi_app_total{job=%q,drainmeter_rollup=%q}`, app, r), at(minute))
				if total == 0 { // at most the zero before its first sample
					if len(got) > 1 || len(got) == 1 && got[0].Value != 0 {
						t.Errorf("%s %s at %s: %+v before the app sent anything", app, r, minute.Format(time.TimeOnly), got)
					}
					continue
				}
				if len(got) != 1 || got[0].Value != total || got[0].Metric["deployment_environment_name"] != "production" ||
					got[0].Metric["service_namespace"] != "shop eu" {
					t.Errorf("%s %s at %s: %+v, want one series = %v with the attributes' labels", app, r, minute.Format(time.TimeOnly), got, total)
				}
			}
		}
	}
	if got := prom.Query(t, `count by (job) (multi_app_total)`, at(m)); len(got) != 3 {
		t.Errorf("jobs: %+v, want alpha-app, beta-app and gamma-app", got)
	}
}

// builtinSeriesNames checks every Prometheus name holds one kind of line:
// dynos', Postgres' or Redis', with the values sent.
func builtinSeriesNames(t *testing.T, prom *promtest.Prometheus, at time.Time) {
	t.Helper()
	kinds := map[string]string{"web.1": "dyno", "web": "dyno", "DATABASE": "postgres", "REDIS": "redis"}
	byName := map[string][]string{}
	for _, x := range prom.Query(t, `{job="alpha-app",source!=""}`, at) {
		k := kinds[x.Metric["source"]]
		if n := x.Metric["__name__"]; !slices.Contains(byName[n], k) {
			byName[n] = append(byName[n], k)
		}
	}
	for n, ks := range byName {
		if len(ks) != 1 {
			t.Errorf("%s holds %v lines", n, ks)
		}
	}
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`heroku_postgres_memory_total_bytes{job="alpha-app",source="DATABASE"}`, 3944484 * 1024},
		{`heroku_postgres_db_size_bytes{job="alpha-app"}`, 90755887},
		{`heroku_postgres_tmp_disk_used_bytes{job="alpha-app"}`, 543633408},
		{`heroku_postgres_load_avg_1m{job="alpha-app"}`, 0.3},
		{`heroku_redis_memory_total_bytes{job="alpha-app",source="REDIS"}`, 15664264 * 1024},
		{`heroku_redis_memory_redis_bytes{job="alpha-app"}`, 341232},
		{`heroku_redis_load_avg_1m{job="alpha-app"}`, 0.1},
		{`memory_total{job="alpha-app",source="web.1"}`, 412.5},
		{`load_avg_1m{job="alpha-app",source="web.1"}`, 0.5},
	} {
		if got := prom.Query(t, c.expr, at); len(got) != 1 || got[0].Value != c.want {
			t.Errorf("%s = %+v, want %v", c.expr, got, c.want)
		}
	}
}

// builtinSeriesOTLP checks OTLP: one resource per app, with the user's
// attributes, and its running total at at.
func builtinSeriesOTLP(t *testing.T, fake *fakeotlp.Server, want map[string][2]float64, at time.Time) {
	t.Helper()
	res := map[string]map[string]string{}
	sums := map[string]float64{}
	for _, p := range fake.Points() {
		if p.Metric == "multi.app" && p.Attrs["drainmeter.rollup"] == "app" && p.Time == uint64(at.UnixNano()) {
			res[p.Resource["service.name"]] = p.Resource
			sums[p.Resource["service.name"]] = p.Value
		}
	}
	for app, w := range want {
		r := res[app]
		if r["deployment.environment.name"] != "production" || r["service.namespace"] != "shop eu" || sums[app] != w[0]+w[1] {
			t.Errorf("OTLP %s: resource %v, running total %v, want the attributes and %v", app, r, sums[app], w[0]+w[1])
		}
	}
}

// TestAttributesRefused: bad attributes stop start-up (OTEL_RESOURCE_ATTRIBUTES)
// and are refused by `drains add|set --attribute`, which also removes one.
func TestAttributesRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10<<10)
	for _, env := range []string{
		"OTEL_RESOURCE_ATTRIBUTES=job=shop",
		"OTEL_RESOURCE_ATTRIBUTES=drainmeter.rollup=app",
		"OTEL_RESOURCE_ATTRIBUTES=env=" + long,
		"OTEL_RESOURCE_ATTRIBUTES=env=%ff",
		"OTEL_RESOURCE_ATTRIBUTES=novalue",
		"APP_NAME=a,OTEL_SERVICE_NAME=b",
		"COUNTER_HOLD=48h",
	} {
		vars := strings.Split(env, ",")
		if !strings.HasPrefix(env, "APP_NAME") {
			vars = []string{env}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		cmd := exec.CommandContext(ctx, binPath, "web")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PORT=0"}, vars...)
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		stderr := string(out)
		if err == nil || timedOut || !strings.Contains(stderr, strings.SplitN(vars[len(vars)-1], "=", 2)[0]) {
			t.Errorf("%.60s: started (%v) or did not name the variable:\n%s", env, err, stderr)
		}
		if strings.Contains(stderr, long) {
			t.Errorf("the error repeats the 10 KB value")
		}
	}

	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + strings.Repeat("k", 32), "DRAINMETER_URL=http://127.0.0.1"}
	mustCLI(t, env, "migrate")
	for _, bad := range []string{"quantile=x", "le=1", "__x=1", "source=a", "route=b", "env=" + long, "env=\xff", "service.name=x", "noequals"} {
		if _, stderr, err := cli(t, env, "drains", "add", "--name", "bad", "--attribute", bad); err == nil {
			t.Errorf("drains add --attribute %.40q: accepted (%s)", bad, stderr)
		}
	}
	out := mustCLI(t, env, "drains", "add", "--name", "shop", "--attribute", "env=production", "--attribute", "team=checkout")
	if !strings.Contains(out, "attributes: env=production,team=checkout") {
		t.Errorf("drains add: %s", out)
	}
	out = mustCLI(t, env, "drains", "set", "shop", "--attribute", "env=staging", "--remove-attribute", "team")
	if !strings.Contains(out, "attributes: env=staging") || strings.Contains(out, "team") {
		t.Errorf("drains set: %s", out)
	}
	if _, stderr, err := cli(t, env, "drains", "set", "shop", "--attribute", "Env.x=1", "--attribute", "Env_x=2"); err == nil {
		t.Errorf("two attributes of one label accepted: %s", stderr)
	}
	if _, stderr, err := cli(t, env, "drains", "set", "shop", "--remove-attribute", "nope"); err == nil {
		t.Errorf("removing an absent attribute: %s", stderr)
	}
}

// routerLine is a Heroku router line of a request.
func routerLine(ts time.Time, dyno, method, path string, status, serviceMS int, code string) string {
	msg := fmt.Sprintf("at=info method=%s path=%q host=shop.herokuapp.com request_id=r fwd=\"1.2.3.4\" dyno=%s connect=1ms service=%dms status=%d bytes=100 protocol=https",
		method, path, dyno, serviceMS, status)
	if code != "" {
		msg = fmt.Sprintf("at=error code=%s desc=\"App crashed\" method=%s path=%q host=shop.herokuapp.com request_id=r fwd=\"1.2.3.4\" dyno= connect= service= status=%d bytes= protocol=https",
			code, method, path, status)
	}
	return frame(fmt.Sprintf("<158>1 %s host heroku router - %s", ts.UTC().Format(time.RFC3339Nano), msg))
}

// TestLabelContractEndToEnd is issue 18's acceptance for the label
// contract: a load with routes on, H10 lines without a dyno, through two
// web dynos on one Postgres, read back from a real Prometheus 2.42. For
// requests, each status class and a custom count, the README's one-filter
// sums equal the truth exactly — drainmeter_rollup="app" (every line once),
// =~"dyno|none" (every line once, by source), ="route" (the routed lines)
// — and the app rollup's p95 is within 1 % of the exact p95 over every
// request of both dynos. The drain's --attribute is a label of each, and
// a resource attribute at the fake OTLP receiver.
func TestLabelContractEndToEnd(t *testing.T) {
	t.Parallel()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{})
	fake := fakeotlp.New(fakeotlp.Strict)
	fakeSrv := httptest.NewServer(fake)
	t.Cleanup(fakeSrv.Close)
	dsn := pgtest.NewDatabase(t, false)
	c := newClusterWith(t, dsn, [][]string{{"--name", "shop", "--remote-write-url", prom.WriteURL(),
		"--otlp-endpoint", fakeSrv.URL + "/v1/metrics",
		"--route-metrics", "auto", "--routes", "/users/:id", "--attribute", "env=production"}})
	c.start(1)
	c.start(2)

	m := labelContractMinute()
	truth := labelContractLoad(c, m)
	waitPosted(t, dsn, 2, m.Unix(), 3*time.Minute)
	c.stopAll()

	labelContractOTLP(t, fake, m, truth.requests)
	labelContractSums(t, prom, m.Add(time.Minute), truth)
}

// labelContractTruth is what TestLabelContractEndToEnd's load sent: its
// requests, jobs done, requests per status class and service times.
type labelContractTruth struct {
	requests, jobs float64
	status         map[string]float64
	service        []float64
}

// labelContractMinute is the minute the load goes in: this one, or the
// next if less than 25 s of this one are left.
func labelContractMinute() time.Time {
	m := time.Now().UTC().Truncate(time.Minute)
	if time.Until(m.Add(time.Minute)) < 25*time.Second { // the load fits in minute m
		m = m.Add(time.Minute)
		time.Sleep(time.Until(m))
	}
	return m
}

// labelContractLoad sends 60 batches of router lines (H10s without a
// dyno among them) and counts, in minute m, and returns their truth.
func labelContractLoad(c *cluster, m time.Time) labelContractTruth {
	rng := rand.New(rand.NewPCG(18, 1))
	tr := labelContractTruth{status: map[string]float64{}}
	paths := []string{"/users/1", "/users/2", "/orders/77", "/", "/api/v1/items/123456"}
	for b := range 60 {
		var body strings.Builder
		for i := range 20 {
			ts := m.Add(time.Duration(b*20+i) * 10 * time.Millisecond)
			path := paths[rng.IntN(len(paths))]
			switch r := rng.IntN(20); {
			case r == 0: // H10: no dyno, no service time
				body.WriteString(routerLine(ts, "", "GET", path, 503, 0, "H10"))
				tr.status["5xx"]++
			default:
				dyno := []string{"web.1", "web.2"}[rng.IntN(2)]
				st := []int{200, 200, 200, 201, 302, 404, 500}[rng.IntN(7)]
				ms := 1 + rng.IntN(2000)
				body.WriteString(routerLine(ts, dyno, []string{"GET", "POST"}[rng.IntN(2)], path, st, ms, ""))
				tr.status[fmt.Sprintf("%dxx", st/100)]++
				tr.service = append(tr.service, float64(ms))
			}
			tr.requests++
			if i%4 == 0 {
				n := 1 + rng.IntN(5)
				src := []string{"web.1", "web.2", "worker.1"}[rng.IntN(3)]
				body.WriteString(appLine(ts, src, fmt.Sprintf("count#jobs.done=%d", n)))
				tr.jobs += float64(n)
			}
			if i%10 == 0 { // a count without a source
				body.WriteString(frame(fmt.Sprintf("<190>1 %s host app scheduler - count#jobs.done=1", ts.Format(time.RFC3339Nano))))
				tr.jobs++
			}
		}
		c.send(rng, fmt.Sprintf("batch-%d", b), []byte(body.String()))
	}
	return tr
}

// labelContractOTLP checks OTLP: the drain's --attribute is a resource
// attribute; the app's requests are one point.
func labelContractOTLP(t *testing.T, fake *fakeotlp.Server, m time.Time, requests float64) {
	t.Helper()
	var appRequests []float64
	for _, p := range fake.Points() {
		if p.Resource["env"] != "production" || p.Resource["service.name"] != "shop" {
			t.Fatalf("OTLP resource %v: want service.name shop and env production", p.Resource)
		}
		if p.Metric == "router.requests" && p.Attrs["drainmeter.rollup"] == "app" && p.Time == uint64(m.Add(time.Minute).UnixNano()) {
			appRequests = append(appRequests, p.Value)
		}
	}
	if len(appRequests) != 1 || appRequests[0] != requests {
		t.Errorf("OTLP router.requests{drainmeter.rollup=app}: %v, want one point %v", appRequests, requests)
	}
}

// labelContractSums checks the README's one-filter sums equal the truth
// exactly, one app rollup per metric, and the app's p95 within 1 %.
func labelContractSums(t *testing.T, prom *promtest.Prometheus, at time.Time, truth labelContractTruth) {
	t.Helper()
	sum := func(expr string) float64 {
		t.Helper()
		got := prom.Query(t, expr, at)
		if len(got) != 1 {
			t.Fatalf("%s: %+v", expr, got)
		}
		return got[0].Value
	}
	checks := []struct {
		metric string
		truth  float64
		routed bool
	}{{"router_requests_total", truth.requests, true}, {"jobs_done_total", truth.jobs, false}}
	for _, class := range []string{"2xx", "3xx", "4xx", "5xx"} {
		checks = append(checks, struct {
			metric string
			truth  float64
			routed bool
		}{"router_status_" + class + "_total", truth.status[class], true})
	}
	for _, c := range checks {
		filters := []string{`drainmeter_rollup="app"`, `drainmeter_rollup=~"dyno|none"`}
		if c.routed {
			filters = append(filters, `drainmeter_rollup="route"`)
		}
		for _, f := range filters {
			if got := sum(fmt.Sprintf(`sum(%s{job="shop",env="production",%s})`, c.metric, f)); got != c.truth {
				t.Errorf("sum(%s{%s}) = %v, want %v", c.metric, f, got, c.truth)
			}
		}
		if n := len(prom.Query(t, fmt.Sprintf(`%s{drainmeter_rollup="app"}`, c.metric), at)); n != 1 {
			t.Errorf("%s: %d app rollups, want 1", c.metric, n)
		}
	}
	slices.Sort(truth.service)
	want := exactNearestRank(truth.service, 0.95)
	if got := sum(`router_service{job="shop",drainmeter_rollup="app",quantile="0.95"}`); !near(got, want, 0.01) {
		t.Errorf("the app's p95 = %v, want %v ± 1 %%", got, want)
	}
	if got := sum(`router_service_count{job="shop",drainmeter_rollup="app"}`); got != float64(len(truth.service)) {
		t.Errorf("the app's router_service_count = %v, want %d", got, len(truth.service))
	}
}
