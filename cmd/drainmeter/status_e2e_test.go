package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/browsertest"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/status"
)

// get fetches a page of a web with Basic-auth credentials.
func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := loadClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatusPagesEndToEnd is issue 9's acceptance run: a drainbench-style
// load through two web dynos on one Postgres; then a real headless
// Chromium signs in to the status page of one dyno and finds each drain
// (one that never received anything, with the command to add it), the last
// batch, the lines-per-minute chart, a rejected frame under its reason, and
// the outlet retrying with its last error while the backend fails, back to
// ok after; the owner's page shows only that drain; the JSON of either dyno
// sums both (frames exactly); no secret anywhere.
func TestStatusPagesEndToEnd(t *testing.T) {
	t.Parallel()
	r := statusStartWebs(t)
	r.sendLoad(t)
	r.checkRetrying(t)
	r.checkBackToOK(t)
	r.checkOwnerPage(t)

	// The JSON of either dyno: both dynos' counters, frames exactly.
	time.Sleep(3 * time.Second) // the last second's counters are written
	for _, w := range []*server{r.w1, r.w2} {
		r.checkJSON(t, w)
	}

	r.checkNoSecretShown(t)
	r.c.stopAll()
	for _, out := range r.c.allOutput() {
		for _, s := range r.secrets() {
			if strings.Contains(out, s) {
				t.Errorf("a web logged a secret")
			}
		}
	}
}

// statusRun is TestStatusPagesEndToEnd's shared state: the browser, the
// fake OTLP receiver, the two webs on one Postgres, the drains shop (with
// its credentials) and idle (its secret), and the load's totals.
type statusRun struct {
	b                *browsertest.Browser
	rcv              *fakeotlp.Server
	admin, otlpToken string
	c                *cluster
	w1, w2           *server
	shop             [2]string
	idleSecret       string
	totals           *loadgen.Totals
}

// statusStartWebs starts a browser, a fake OTLP receiver that wants a
// token, and two webs on one Postgres with the drains shop (posting to the
// receiver) and idle (never sent anything).
func statusStartWebs(t *testing.T) *statusRun {
	t.Helper()
	r := &statusRun{}
	r.b = browsertest.New(t)
	r.rcv = fakeotlp.New("")
	srv := httptest.NewServer(r.rcv)
	t.Cleanup(srv.Close)
	const otlpToken = "otlp-header-secret-0123"
	r.otlpToken = otlpToken
	r.rcv.RequireAuth("Bearer " + otlpToken)
	dsn := pgtest.NewDatabase(t, false)
	const admin = "admin-password-4567"
	r.admin = admin
	r.c = newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--otlp-endpoint", srv.URL + "/v1/metrics", "--otlp-header", "Authorization=Bearer " + otlpToken},
	}, "ADMIN_PASSWORD="+admin, "OUTLET_MAX_BACKOFF=2s")
	_, r.idleSecret = drainCreds(t, mustCLI(t, r.c.env[:3], "drains", "add", "--name", "idle"))
	r.w1 = r.c.start(1)
	r.w2 = r.c.start(2)
	r.shop = r.c.drains[0]
	return r
}

// sendLoad sends the load, with one batch of bad frames (a header that is
// no syslog), while the backend is down.
func (r *statusRun) sendLoad(t *testing.T) {
	t.Helper()
	bad := "17 not a syslog line"
	if st, err := r.c.postTo(r.w2, r.shop, "BAD0000000000000000000000000000", []byte(bad)); err != nil || st != 200 {
		t.Fatalf("bad batch: %d %v", st, err)
	}
	r.rcv.FailUntil(time.Now().Add(24 * time.Hour)) // the backend is down until we say
	r.totals = r.c.load(31, 75*time.Second, 10, 40, 0.05, nil)
}

// page opens path of web s in the browser, as user.
func (r *statusRun) page(t *testing.T, s *server, path, user, pass string) int {
	t.Helper()
	return r.b.Open(s.url+path, user, pass)
}

// active selects drain shop's section on a status page.
func (r *statusRun) active() string { return `[data-drain="` + r.shop[0] + `"] ` }

// other selects any other drain's section on a status page.
func (r *statusRun) other() string { return `[data-drain]:not([data-drain="` + r.shop[0] + `"]) ` }

// checkRetrying checks the admin page while the backend is down: the
// outlet shown retrying with its error, shop's last batch, chart and
// rejected frame; the idle drain waiting, with its add command.
func (r *statusRun) checkRetrying(t *testing.T) {
	t.Helper()
	b, active, other := r.b, r.active(), r.other()
	// Both dynos show the same drains; the outlet retries with its error.
	eventually(t, 60*time.Second, "the outlet shown retrying", func() bool {
		r.page(t, r.w1, "/", "admin", r.admin)
		return b.Count(active+`[data-outlet="otlp"][data-state="retrying"]`) == 1
	})
	if got, _ := b.TextOf(active + `[data-outlet="otlp"] [data-last-error] code`); !strings.Contains(got, "503") {
		t.Errorf("last error %q, want the 503", got)
	}
	if got, _ := b.TextOf(active + ".drain-name"); got != "shop" {
		t.Errorf("drain name %q", got)
	}
	if got, _ := b.TextOf(other + ".last-batch"); !strings.HasPrefix(got, "waiting for the first batch") {
		t.Errorf("the idle drain reads %q", got)
	}
	if got, ok := b.TextOf(other + ".add-command"); !ok || !strings.Contains(got, "heroku drains:add") ||
		!strings.Contains(got, "-a idle") || strings.Contains(got, r.idleSecret) {
		t.Errorf("the idle drain's add command reads %q", got)
	}
	if got, _ := b.Attr(active+"[data-last-batch]", "data-last-batch"); got == "" {
		t.Error("no last-batch time")
	}
	if n := b.Count(active + `svg.bars rect.bar`); n != status.Minutes {
		t.Errorf("%d bars in the chart, want %d", n, status.Minutes)
	}
	if got, _ := b.TextOf(active + `[data-reason="bad_header"] td`); got != "1" {
		t.Errorf("rejected bad_header reads %q, want 1", got)
	}
	b.Screenshots("status-retrying")
}

// checkBackToOK brings the backend back and waits for the outlet to go
// back to ok.
func (r *statusRun) checkBackToOK(t *testing.T) {
	t.Helper()
	r.rcv.FailUntil(time.Time{})
	eventually(t, 90*time.Second, "the outlet back to ok", func() bool {
		r.page(t, r.w2, "/", "admin", r.admin)
		return r.b.Count(r.active()+`[data-outlet="otlp"][data-state="ok"]`) == 1
	})
	r.b.Screenshots("status-ok")
}

// checkOwnerPage checks the owner's page: that drain only; not the admin
// page.
func (r *statusRun) checkOwnerPage(t *testing.T) {
	t.Helper()
	shop := r.shop
	if st := r.page(t, r.w1, "/drains/"+shop[0], shop[0], shop[1]); st != 200 {
		t.Fatalf("owner page: %d", st)
	}
	if got := r.b.Attrs("section.drain", "data-drain"); len(got) != 1 || got[0] != shop[0] {
		t.Errorf("the owner page shows drains %q", got)
	}
	r.b.Screenshots("owner")
	if st := r.page(t, r.w1, "/", shop[0], shop[1]); st != http.StatusUnauthorized {
		t.Errorf("an owner on the admin page: %d", st)
	}
}

// checkJSON checks web w's status.json: both dynos' counters, shop's
// frames exactly, the keys other tools read; and the owner's JSON.
func (r *statusRun) checkJSON(t *testing.T, w *server) {
	t.Helper()
	shop, totals := r.shop, r.totals
	st, body := get(t, w.url+"/status.json", "admin", r.admin)
	if st != 200 {
		t.Fatalf("status.json: %d %s", st, body)
	}
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Dynos != 2 || len(snap.Drains) != 2 {
		t.Errorf("%s: %d dynos, %d drains", w.url, snap.Dynos, len(snap.Drains))
	}
	for _, d := range snap.Drains {
		if d.ID != shop[0] {
			continue
		}
		var perMinute uint64
		for _, n := range d.LinesPerMinute {
			perMinute += n
		}
		if d.Frames != uint64(totals.Frames) || d.FramesRejected != 1 || d.Rejected["bad_header"] != 1 || perMinute != d.Frames {
			t.Errorf("%s: frames %d (per minute %d), rejected %d %v; want %d frames, 1 rejected", w.url, d.Frames, perMinute,
				d.FramesRejected, d.Rejected, totals.Frames)
		}
		if d.Duplicates == 0 || d.LastBatchAt == nil || len(d.Outlets) != 1 || d.Outlets[0].Kind != "otlp" {
			t.Errorf("%s: %+v", w.url, d)
		}
	}
	// The JSON keys other tools read.
	for _, key := range []string{`"id"`, `"name"`, `"last_batch_at"`, `"frames"`, `"frames_rejected"`, `"lines_per_minute"`,
		`"logplex_dropped"`, `"outlets"`, `"kind"`, `"state"`, `"last_post_at"`, `"minutes_waiting"`, `"last_error"`} {
		if !strings.Contains(body, key) {
			t.Errorf("status.json has no %s", key)
		}
	}
	st, own := get(t, w.url+"/drains/"+shop[0]+".json", shop[0], shop[1])
	if st != 200 || strings.Contains(own, `"idle"`) {
		t.Errorf("owner JSON: %d, shows another drain: %v", st, strings.Contains(own, `"idle"`))
	}
}

// secrets are the secrets no page, JSON or log may show.
func (r *statusRun) secrets() []string {
	return []string{r.admin, r.otlpToken, r.shop[1], r.idleSecret}
}

// checkNoSecretShown checks that no page or JSON of either dyno shows a
// secret, /health names no drain or app, and pages are 401 without the
// password.
func (r *statusRun) checkNoSecretShown(t *testing.T) {
	t.Helper()
	admin, shop, secrets := r.admin, r.shop, r.secrets()
	for _, w := range []*server{r.w1, r.w2} {
		for _, p := range []struct{ path, user, pass string }{
			{"/", "admin", admin}, {"/status.json", "admin", admin}, {"/drains/" + shop[0], shop[0], shop[1]},
			{"/drains/" + shop[0] + ".json", shop[0], shop[1]}, {"/", "", ""}, {"/", "admin", "wrong"}, {"/health", "", ""},
		} {
			st, body := get(t, w.url+p.path, p.user, p.pass)
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("%s%s shows a secret", w.url, p.path)
				}
			}
			if p.pass != admin && p.pass != shop[1] && p.path != "/health" {
				if st != http.StatusUnauthorized || strings.Contains(body, "shop") || strings.Contains(body, "idle") {
					t.Errorf("%s as %q: %d, or it names a drain", p.path, p.pass, st)
				}
			}
			if p.path == "/health" && (strings.Contains(body, "shop") || strings.Contains(body, "idle") || strings.Contains(body, shop[0])) {
				t.Errorf("/health names a drain: %s", body)
			}
		}
	}
}
