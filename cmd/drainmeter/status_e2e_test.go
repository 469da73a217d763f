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
	b := browsertest.New(t)
	rcv := fakeotlp.New("")
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	const otlpToken = "otlp-header-secret-0123"
	rcv.RequireAuth("Bearer " + otlpToken)
	dsn := pgtest.NewDatabase(t, false)
	const admin = "admin-password-4567"
	c := newClusterWith(t, dsn, [][]string{
		{"--name", "shop", "--otlp-endpoint", srv.URL + "/v1/metrics", "--otlp-header", "Authorization=Bearer " + otlpToken},
	}, "ADMIN_PASSWORD="+admin, "OUTLET_MAX_BACKOFF=2s")
	_, idleSecret := drainCreds(t, mustCLI(t, c.env[:3], "drains", "add", "--name", "idle"))
	w1 := c.start(1)
	w2 := c.start(2)
	shop := c.drains[0]

	// Load, with one batch of bad frames (a header that is no syslog).
	bad := "17 not a syslog line"
	if st, err := c.postTo(w2, shop, "BAD0000000000000000000000000000", []byte(bad)); err != nil || st != 200 {
		t.Fatalf("bad batch: %d %v", st, err)
	}
	rcv.FailUntil(time.Now().Add(24 * time.Hour)) // the backend is down until we say
	totals := c.load(31, 75*time.Second, 10, 40, 0.05, nil)

	page := func(s *server, path, user, pass string) int {
		t.Helper()
		return b.Open(s.url+path, user, pass)
	}
	active := `[data-drain="` + shop[0] + `"] `
	other := `[data-drain]:not([data-drain="` + shop[0] + `"]) `
	// Both dynos show the same drains; the outlet retries with its error.
	eventually(t, 60*time.Second, "the outlet shown retrying", func() bool {
		page(w1, "/", "admin", admin)
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
		!strings.Contains(got, "-a idle") || strings.Contains(got, idleSecret) {
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

	// The backend comes back: the outlet goes back to ok.
	rcv.FailUntil(time.Time{})
	eventually(t, 90*time.Second, "the outlet back to ok", func() bool {
		page(w2, "/", "admin", admin)
		return b.Count(active+`[data-outlet="otlp"][data-state="ok"]`) == 1
	})
	b.Screenshots("status-ok")

	// The owner's page: that drain only; not the admin page.
	if st := page(w1, "/drains/"+shop[0], shop[0], shop[1]); st != 200 {
		t.Fatalf("owner page: %d", st)
	}
	if got := b.Attrs("section.drain", "data-drain"); len(got) != 1 || got[0] != shop[0] {
		t.Errorf("the owner page shows drains %q", got)
	}
	b.Screenshots("owner")
	if st := page(w1, "/", shop[0], shop[1]); st != http.StatusUnauthorized {
		t.Errorf("an owner on the admin page: %d", st)
	}

	// The JSON of either dyno: both dynos' counters, frames exactly.
	time.Sleep(3 * time.Second) // the last second's counters are written
	for _, w := range []*server{w1, w2} {
		st, body := get(t, w.url+"/status.json", "admin", admin)
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

	// No secret in any page, JSON or log; no drain or app on /health; 401
	// without the password.
	secrets := []string{admin, otlpToken, shop[1], idleSecret}
	for _, w := range []*server{w1, w2} {
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
	c.stopAll()
	for _, out := range c.allOutput() {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("a web logged a secret")
			}
		}
	}
}
