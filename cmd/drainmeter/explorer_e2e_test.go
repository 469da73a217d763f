package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/browsertest"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/status"
)

// TestExplorerEndToEnd is issue 22's acceptance run for the explorer: a
// load through two web dynos on one Postgres; then the explorer of either
// dyno lists every count and measure the load sent with its values minute
// by minute (counts exact, percentiles within 1 % of the exact
// nearest-rank value over every dyno), a real headless Chromium finds a
// metric's chart and a refused pair with its reason, and a drain's owner
// sees only their drain.
func TestExplorerEndToEnd(t *testing.T) {
	t.Parallel()
	b := browsertest.New(t)
	dsn := pgtest.NewDatabase(t, false)
	const admin = "admin-password-8910"
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--librato-user", "me@example.com", "--librato-token", "tok"},
		{"--name", "blog", "--librato-user", "me@example.com", "--librato-token", "tok"},
	}, "ADMIN_PASSWORD="+admin)
	r := &explorerRun{c: c, admin: admin}
	r.w1 = c.start(1)
	r.w2 = c.start(2)
	r.shop, r.blog = c.drains[0], c.drains[1]

	r.sendLoad(t)
	r.checkJSON(t)
	r.checkBrowser(t, b)
	r.checkOwners(t)
}

// explorerRun is TestExplorerEndToEnd's shared state: the two webs, the
// drains shop and blog (id and secret each), and what the explorer must
// show.
type explorerRun struct {
	c          *cluster
	admin      string
	w1, w2     *server
	shop, blog [2]string
	wants      map[string]map[int64]*explorerWant
}

// explorerWant is what the explorer must show for a name in a minute.
type explorerWant struct {
	kind   string
	value  float64
	values []float64
}

// sendLoad sends a refused pair and a load through both webs, waits until
// it is delivered and works out what the explorer must show.
func (r *explorerRun) sendLoad(t *testing.T) {
	t.Helper()
	c := r.c
	// A refused pair, in a line with personal data after it.
	msg := fmt.Sprintf("<190>1 %s host app web.1 - measure#checkout.latency=abc user=jane@example.com", time.Now().UTC().Format(time.RFC3339))
	if st, err := c.postTo(r.w2, r.shop, "REFUSED000000000000000000000000", []byte(fmt.Sprintf("%d %s", len(msg), msg))); err != nil || st != 200 {
		t.Fatalf("batch with a refused pair: %d %v", st, err)
	}
	totals := c.load(22, 70*time.Second, 10, 40, 0.05, nil)
	c.waitDelivered(totals, 150*time.Second)

	// What the explorer must show: per name and minute, over the dynos
	// (and sources without a process type), each measurement once.
	r.wants = map[string]map[int64]*explorerWant{}
	add := func(name string, minute int64) *explorerWant {
		if r.wants[name] == nil {
			r.wants[name] = map[int64]*explorerWant{}
		}
		if r.wants[name][minute] == nil {
			r.wants[name][minute] = &explorerWant{}
		}
		return r.wants[name][minute]
	}
	rollupSource := func(s string) bool { return s != "" && !strings.Contains(s, ".") }
	for k, v := range totals.Counts {
		if !rollupSource(k.Source) {
			w := add(k.Name, k.Minute)
			w.kind, w.value = "count", w.value+v
		}
	}
	for k, vs := range totals.Measures {
		if !rollupSource(k.Source) {
			w := add(k.Name, k.Minute)
			w.kind, w.values = "measure", append(w.values, vs...)
		}
	}
	if len(r.wants) < 5 {
		t.Fatalf("the load sent only %d count and measure names", len(r.wants))
	}
}

// explore is shop's metrics.json on web s, as user.
func (r *explorerRun) explore(t *testing.T, s *server, user, pass string) status.Explore {
	t.Helper()
	st, body := get(t, s.url+"/drains/"+r.shop[0]+"/metrics.json", user, pass)
	if st != 200 {
		t.Fatalf("%s metrics.json: %d %s", s.url, st, body)
	}
	var x status.Explore
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	return x
}

// checkJSON checks shop's metrics.json on either dyno, once the refused
// pair is in Postgres: every name and minute the load sent, the refused
// pair without the rest of its line.
func (r *explorerRun) checkJSON(t *testing.T) {
	t.Helper()
	eventually(t, 30*time.Second, "the refused pair written to Postgres", func() bool {
		return len(r.explore(t, r.w1, "admin", r.admin).Refused) > 0
	})
	for _, w := range []*server{r.w1, r.w2} {
		x := r.explore(t, w, r.shop[0], r.shop[1])
		if x.Store != "postgres" || x.Drain != r.shop[0] {
			t.Errorf("%s: store %q, drain %q", w.url, x.Store, x.Drain)
		}
		byName := map[string]status.NameView{}
		for _, n := range x.Names {
			byName[n.Name] = n
		}
		checked := 0
		for name, minutes := range r.wants {
			n, ok := byName[name]
			if !ok {
				t.Errorf("%s: %s is not listed", w.url, name)
				continue
			}
			checked += explorerCheckName(t, w, x, n, minutes)
		}
		if checked < len(r.wants) {
			t.Errorf("%s: %d name-minutes checked for %d names", w.url, checked, len(r.wants))
		}
		if !slices.ContainsFunc(x.Refused, func(rf status.Refused) bool {
			return rf.Token == "measure#checkout.latency=abc" && rf.Reason == "bad_value"
		}) {
			t.Errorf("%s: refused %+v", w.url, x.Refused)
		}
		if raw, _ := json.Marshal(x); strings.Contains(string(raw), "jane@example.com") {
			t.Errorf("%s: the explorer keeps the rest of a refused line", w.url)
		}
	}
}

// explorerCheckName checks one name n of web w's explorer x against the
// minutes the load sent: its kind, counts exact, percentiles within 1 % of
// the exact nearest-rank value, no minute missing. It returns how many
// name-minutes it checked.
func explorerCheckName(t *testing.T, w *server, x status.Explore, n status.NameView, minutes map[int64]*explorerWant) (checked int) {
	t.Helper()
	name := n.Name
	near := func(got, want float64) bool { return math.Abs(got-want) <= 0.01*math.Abs(want) }
	for _, sp := range n.History {
		wt := minutes[sp.Minute]
		if wt == nil {
			if sp.Count != 0 {
				t.Errorf("%s: %s at %d: %d measurements, the load sent none", w.url, name, sp.Minute, sp.Count)
			}
			continue
		}
		checked++
		if n.Kind != wt.kind {
			t.Errorf("%s: %s is a %s, want %s", w.url, name, n.Kind, wt.kind)
		}
		switch wt.kind {
		case "count":
			if sp.Value != wt.value {
				t.Errorf("%s: %s at %d = %g, want %g", w.url, name, sp.Minute, sp.Value, wt.value)
			}
		case "measure":
			if sp.Count != int64(len(wt.values)) {
				t.Errorf("%s: %s at %d counted %d, want %d", w.url, name, sp.Minute, sp.Count, len(wt.values))
			}
			for _, q := range []struct {
				q   float64
				got float64
			}{{.50, sp.P50}, {.95, sp.P95}, {.99, sp.P99}} {
				if e := nearestRank(wt.values, q.q); !near(q.got, e) {
					t.Errorf("%s: %s at %d p%g = %g, exact %g", w.url, name, sp.Minute, q.q*100, q.got, e)
				}
			}
		}
	}
	for m := range minutes {
		if x.LastMinute != nil && m <= x.LastMinute.Unix() && m > x.LastMinute.Unix()-3600 &&
			!slices.ContainsFunc(n.History, func(s status.Spark) bool { return s.Minute == m && s.Count > 0 }) {
			t.Errorf("%s: %s has nothing at %d", w.url, name, m)
		}
	}
	return checked
}

// checkBrowser checks, in a browser, on either dyno: the list, a metric's
// chart, the refused pair and its reason.
func (r *explorerRun) checkBrowser(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	if st := b.Open(r.w1.url+"/drains/"+r.shop[0]+"/metrics", r.shop[0], r.shop[1]); st != 200 {
		t.Fatalf("the explorer: %d", st)
	}
	listed := b.Attrs("#names tbody tr", "data-name")
	for name := range r.wants {
		if !slices.Contains(listed, name) {
			t.Errorf("the page does not list %s", name)
		}
	}
	if got := strings.Join(b.Texts("#refused li"), "\n"); !strings.Contains(got, "measure#checkout.latency=abc → not a number") {
		t.Errorf("refused pairs read %q", got)
	}
	b.Screenshots("e2e-explorer")
	var measure string
	for name, minutes := range r.wants {
		for _, w := range minutes {
			if w.kind == "measure" && (measure == "" || name < measure) {
				measure = name
			}
		}
	}
	if st := b.Open(r.w2.url+"/drains/"+r.shop[0]+"/metrics?name="+url.QueryEscape(measure), "admin", r.admin); st != 200 {
		t.Fatalf("the metric page of %s: %d", measure, st)
	}
	if n := b.Count(`#metric-chart path.line`); n != 3 {
		t.Errorf("%s: %d lines, want p50, p95, p99", measure, n)
	}
	if n := b.Count(`#metric-chart rect.bar`); n != 60 {
		t.Errorf("%s: %d bars", measure, n)
	}
	if got := b.Attrs(`#source-chart path`, "data-source-line"); !slices.Contains(got, "web") {
		t.Errorf("%s: the chart by process type has lines %v", measure, got)
	}
	b.Screenshots("e2e-metric")
}

// checkOwners checks that an owner sees only their drain.
func (r *explorerRun) checkOwners(t *testing.T) {
	t.Helper()
	shop, blog := r.shop, r.blog
	if st, _ := get(t, r.w1.url+"/drains/"+blog[0]+"/metrics.json", shop[0], shop[1]); st != http.StatusUnauthorized {
		t.Errorf("shop's owner on blog's explorer: %d", st)
	}
	if st, _ := get(t, r.w2.url+"/drains/"+blog[0]+"/metrics", shop[0], shop[1]); st != http.StatusUnauthorized {
		t.Errorf("shop's owner on blog's explorer page: %d", st)
	}
	st, body := get(t, r.w2.url+"/drains/"+blog[0]+"/metrics.json", blog[0], blog[1])
	if st != 200 || strings.Contains(body, "checkout.latency") || strings.Contains(body, shop[0]) {
		t.Errorf("blog's owner: %d, or shop's data shows", st)
	}
}

// nearestRank is the exact nearest-rank q-quantile of vs.
func nearestRank(vs []float64, q float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	k := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// TestExplorerInMemory: run locally in memory without ADMIN_PASSWORD, the
// built-in drain's explorer (id "default") is open like / and shows the
// closed minute's names and a refused pair; on a dyno it is not.
func TestExplorerInMemory(t *testing.T) {
	t.Parallel()
	s := startServer(t, "GRACE=1s")
	now := time.Now().UTC()
	msg := fmt.Sprintf("<190>1 %s host app web.1 - measure#db.latency=4ms measure#db.latency=8ms count#jobs.done=2 sample#queue=abc",
		now.Format(time.RFC3339))
	body := fmt.Sprintf("%d %s", len(msg), msg)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/logs", strings.NewReader(body))
	req.SetBasicAuth("myapp", "dev")
	req.Header.Set("Content-Type", "application/logplex-1")
	resp, err := loadClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("post: %v %v", resp, err)
	}
	resp.Body.Close()
	var x status.Explore
	eventually(t, 90*time.Second, "the minute in the explorer", func() bool {
		st, body := get(t, s.url+"/drains/default/metrics.json", "", "")
		if st != 200 {
			t.Fatalf("metrics.json without a password, locally: %d", st)
		}
		x = status.Explore{}
		return json.Unmarshal([]byte(body), &x) == nil && len(x.Names) == 2
	})
	for _, n := range x.Names {
		switch n.Name {
		case "db.latency":
			if n.Last.Count != 2 || n.Last.Sum != 12 || math.Abs(n.Last.P99-8) > 0.08 || n.Unit != "ms" {
				t.Errorf("db.latency: %+v", n.Last)
			}
		case "jobs.done":
			if n.Last.Value != 2 || n.Posted.RemoteWrite[0] != "jobs_done_total" {
				t.Errorf("jobs.done: %+v", n)
			}
		default:
			t.Errorf("unexpected name %s", n.Name)
		}
	}
	if len(x.Refused) != 1 || x.Refused[0].Token != "sample#queue=abc" {
		t.Errorf("refused %+v", x.Refused)
	}
	if st, page := get(t, s.url+"/drains/default/metrics?name=db.latency", "", ""); st != 200 || !strings.Contains(page, `id="metric-chart"`) {
		t.Errorf("the metric page: %d", st)
	}

	dyno := startServer(t, "DYNO=web.1", "DRAIN_SECRET=s3cret-for-the-test")
	if st, _ := get(t, dyno.url+"/drains/default/metrics.json", "", ""); st != http.StatusUnauthorized {
		t.Errorf("on a dyno without a password: %d, want 401", st)
	}
	if st, _ := get(t, dyno.url+"/drains/default/metrics.json", "myapp", "s3cret-for-the-test"); st != 200 {
		t.Errorf("the built-in drain's owner on a dyno: %d", st)
	}
}
