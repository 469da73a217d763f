package status

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// drainWords are things about the drains that a page without access must
// not show.
var drainWords = []string{activeID, activeName, waitingName, "shop-worker", "librato", "remotewrite",
	"prom.example.com", "bad_header", "1,234,567", "1234567", BuiltinDrainID}

func assertNoDrains(t *testing.T, what, body string) {
	t.Helper()
	for _, w := range drainWords {
		if strings.Contains(body, w) {
			t.Errorf("%s shows %q:\n%s", what, w, body)
		}
	}
}

func TestAdminUnauthorized(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	for _, path := range []string{"/", "/status.json"} {
		for _, c := range []struct{ name, user, pass string }{
			{"no credentials", "", ""},
			{"wrong password", "admin", "not-the-password"},
			{"password as user name", testAdmin, "not-it"},
			{"password with a suffix", "admin", testAdmin + "x"},
		} {
			t.Run(path+" "+c.name, func(t *testing.T) {
				res := e.get(t, path, c.user, c.pass)
				if res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", res.StatusCode)
				}
				if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="drainmeter"`) {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if !strings.Contains(res.body, "drainmeter is running") || !strings.Contains(res.body, testVersion) {
					t.Errorf("the 401 body does not say that drainmeter runs and its version:\n%s", res.body)
				}
				assertNoDrains(t, "the 401 body", res.body)
				if (c.pass != "" && strings.Contains(res.body, c.pass)) || strings.Contains(res.body, testAdmin) {
					t.Errorf("the 401 body echoes the credentials")
				}
			})
		}
	}
	if calls := e.src.Calls(); len(calls) != 0 {
		t.Errorf("the Source was asked %d times without credentials", len(calls))
	}
}

func TestAdminAuthorized(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	for _, user := range []string{"admin", "anyone", ""} {
		res := e.get(t, "/", user, testAdmin)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("user %q: status %d, want 200:\n%s", user, res.StatusCode, res.body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
		for _, want := range []string{activeName, waitingName, `data-drain="` + activeID + `"`, `data-drain="default"`} {
			if !strings.Contains(res.body, want) {
				t.Errorf("user %q: the page lacks %q", user, want)
			}
		}
		if strings.Contains(res.body, "open-banner") {
			t.Errorf("a password-protected page shows the open banner")
		}
	}
	res := e.get(t, "/status.json", "admin", testAdmin)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status.json: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestOpen(t *testing.T) {
	e := newTestEnv(t, Config{Open: true})
	res := e.get(t, "/", "", "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if !strings.Contains(res.body, "no ADMIN_PASSWORD set: this page is open") {
		t.Errorf("no open banner:\n%s", res.body)
	}
	for _, want := range []string{activeName, waitingName} {
		if !strings.Contains(res.body, want) {
			t.Errorf("the open page lacks %q", want)
		}
	}
	for _, path := range []string{"/status.json", "/drains/" + activeID, "/drains/" + activeID + ".json"} {
		if res := e.get(t, path, "", ""); res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (open)", path, res.StatusCode)
		}
	}
}

func TestClosedWithoutPassword(t *testing.T) {
	for _, cfg := range []Config{
		{OnDyno: true},
		{OnDyno: true, Open: true}, // contradictory: closed wins
		{},                         // neither open nor a password: closed
		{OnDyno: true, ThisApp: "my-drainmeter"},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			e := newTestEnv(t, cfg)
			for _, auth := range [][2]string{{"", ""}, {"admin", ""}, {"admin", "guess"}} {
				res := e.get(t, "/", auth[0], auth[1])
				if res.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403", res.StatusCode)
				}
				app := "THIS-APP"
				if cfg.ThisApp != "" {
					app = cfg.ThisApp
				}
				want := "heroku config:set ADMIN_PASSWORD=$(openssl rand -hex 16) -a " + app
				if !strings.Contains(res.body, want) {
					t.Errorf("the page does not say how to set the password (%q):\n%s", want, res.body)
				}
				assertNoDrains(t, "the closed page", res.body)
				for _, w := range []string{testVersion, "open-banner", "<svg"} {
					if strings.Contains(res.body, w) {
						t.Errorf("the closed page shows %q; it should show only how to set the password", w)
					}
				}
				if res := e.get(t, "/status.json", auth[0], auth[1]); res.StatusCode != http.StatusForbidden {
					t.Errorf("status.json: status %d, want 403", res.StatusCode)
				} else {
					assertNoDrains(t, "status.json", res.body)
				}
			}
			if calls := e.src.Calls(); len(calls) != 0 {
				t.Errorf("the Source was asked %v on a closed page", calls)
			}
			// A drain owner still sees their drain.
			if res := e.get(t, "/drains/"+activeID, activeID, ownerSecret); res.StatusCode != http.StatusOK {
				t.Errorf("owner page on a closed instance: status %d, want 200", res.StatusCode)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	page := "/drains/" + activeID

	res := e.get(t, page, activeID, ownerSecret)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("owner page: status %d:\n%s", res.StatusCode, res.body)
	}
	if !strings.Contains(res.body, activeName) || !strings.Contains(res.body, `data-drain="`+activeID+`"`) {
		t.Errorf("the owner page lacks its drain")
	}
	if strings.Contains(res.body, waitingName) || strings.Contains(res.body, `data-drain="default"`) {
		t.Errorf("the owner page shows another drain")
	}
	if got := e.src.Calls(); len(got) != 1 || got[0] != activeID {
		t.Errorf("Source asked for %q, want only %q", got, activeID)
	}

	res = e.get(t, page+".json", activeID, ownerSecret)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("owner JSON: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var snap Snapshot
	if err := json.Unmarshal([]byte(res.body), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Drains) != 1 || snap.Drains[0].ID != activeID {
		t.Errorf("owner JSON holds %d drains, want only %s", len(snap.Drains), activeID)
	}

	for _, c := range []struct {
		name, path, user, pass string
		want                   int
	}{
		{"another drain's page", "/drains/default", activeID, ownerSecret, http.StatusUnauthorized},
		{"another drain's JSON", "/drains/default.json", activeID, ownerSecret, http.StatusUnauthorized},
		{"the admin page", "/", activeID, ownerSecret, http.StatusUnauthorized},
		{"the admin JSON", "/status.json", activeID, ownerSecret, http.StatusUnauthorized},
		{"no credentials", page, "", "", http.StatusUnauthorized},
		{"wrong secret", page, activeID, "wrong", http.StatusUnauthorized},
		{"another user name", page, "shop", ownerSecret, http.StatusUnauthorized},
		{"unknown drain", "/drains/d00000000000000ff", "d00000000000000ff", ownerSecret, http.StatusUnauthorized},
		{"admin password", page, "whoever", testAdmin, http.StatusOK},
		{"admin password, JSON", page + ".json", "whoever", testAdmin, http.StatusOK},
		{"admin, unknown drain", "/drains/d00000000000000ff", "", testAdmin, http.StatusNotFound},
		{"admin, bad id", "/drains/a%20b", "", testAdmin, http.StatusNotFound},
		{"admin, bad id JSON", "/drains/.json", "", testAdmin, http.StatusNotFound},
		{"built-in drain, any user", "/drains/default", "api-gateway", "builtin-secret-for-tests", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.get(t, c.path, c.user, c.pass)
			if res.StatusCode != c.want {
				t.Fatalf("%s: status %d, want %d:\n%s", c.path, res.StatusCode, c.want, res.body)
			}
			if c.want == http.StatusUnauthorized {
				if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic realm=") {
					t.Errorf("WWW-Authenticate = %q", res.Header.Get("WWW-Authenticate"))
				}
				assertNoDrains(t, "the 401 body", strings.ReplaceAll(res.body, c.path, ""))
			}
		})
	}
}

func TestOwnerSourceIgnoresID(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	e.src.ignoreID = true // the Source returns every drain: the page still shows one
	res := e.get(t, "/drains/"+activeID, activeID, ownerSecret)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if strings.Contains(res.body, waitingName) {
		t.Errorf("the owner page shows another drain that the Source returned")
	}
	res = e.get(t, "/drains/"+activeID+".json", activeID, ownerSecret)
	if strings.Contains(res.body, waitingName) || strings.Contains(res.body, `"default"`) {
		t.Errorf("the owner JSON shows another drain that the Source returned:\n%s", res.body)
	}
}

func TestUnavailable(t *testing.T) {
	const dbURL = "postgres://drainmeter:pg-password-123@db.internal:5432/drainmeter"
	t.Run("source", func(t *testing.T) {
		e := newTestEnv(t, adminConfig())
		e.src.err = fmt.Errorf("status: query %s: %w", dbURL, errTest)
		for _, c := range [][3]string{{"/", "", testAdmin}, {"/status.json", "", testAdmin}, {"/drains/" + activeID, activeID, ownerSecret}} {
			res := e.get(t, c[0], c[1], c[2])
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s: status %d, want 503", c[0], res.StatusCode)
			}
			if strings.Contains(res.body, "pg-password") || strings.Contains(res.body, "postgres://") || strings.Contains(res.body, "test error") {
				t.Errorf("%s: the 503 shows the error:\n%s", c[0], res.body)
			}
		}
		if !strings.Contains(e.log.String(), "test error") {
			t.Errorf("the error is not logged:\n%s", e.log)
		}
	})
	t.Run("owner auth", func(t *testing.T) {
		e := newTestEnv(t, adminConfig())
		e.h = NewHandler(adminConfig(), e.src, fakeOwners{err: errTest}, discardLog())
		res := e.get(t, "/drains/"+activeID, activeID, ownerSecret)
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", res.StatusCode)
		}
		// The admin password does not need the owner check.
		if res := e.get(t, "/drains/"+activeID, "", testAdmin); res.StatusCode != http.StatusOK {
			t.Errorf("admin: status %d, want 200", res.StatusCode)
		}
	})
	t.Run("nil snapshot", func(t *testing.T) {
		e := newTestEnv(t, adminConfig())
		e.h = NewHandler(adminConfig(), nilSource{}, nil, discardLog())
		if res := e.get(t, "/", "", testAdmin); res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", res.StatusCode)
		}
	})
	t.Run("no owner auth", func(t *testing.T) {
		e := newTestEnv(t, adminConfig())
		e.h = NewHandler(adminConfig(), e.src, nil, discardLog())
		if res := e.get(t, "/drains/"+activeID, activeID, ownerSecret); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", res.StatusCode)
		}
	})
}

func TestJSON(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	e.src.snap.Drains[1].LinesPerMinute = []uint64{5, 6, 7} // short: padded in front
	e.src.snap.Drains[1].Apps = nil
	e.src.snap.Drains[1].Rejected = nil
	res := e.get(t, "/status.json", "", testAdmin)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	var got struct {
		Version string           `json:"version"`
		Drains  []map[string]any `json:"drains"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != testVersion || len(got.Drains) != 2 {
		t.Fatalf("version %q, %d drains", got.Version, len(got.Drains))
	}
	for _, d := range got.Drains {
		for _, k := range []string{"id", "name", "apps", "last_batch_at", "frames", "frames_rejected", "rejected",
			"lines_per_minute", "duplicates", "late", "late_shifted", "future", "overflow", "kind_conflict",
			"logplex_dropped", "logplex_lost", "open_series", "outlets"} {
			if _, ok := d[k]; !ok {
				t.Errorf("drain %v: no key %q", d["id"], k)
			}
		}
		if d["apps"] == nil || d["rejected"] == nil || d["outlets"] == nil {
			t.Errorf("drain %v: a null list or map: apps %v rejected %v outlets %v", d["id"], d["apps"], d["rejected"], d["outlets"])
		}
		lpm, _ := d["lines_per_minute"].([]any)
		if len(lpm) != Minutes {
			t.Errorf("drain %v: %d lines_per_minute, want %d", d["id"], len(lpm), Minutes)
		}
		for _, o := range d["outlets"].([]any) {
			for _, k := range []string{"kind", "state", "last_post_at", "minutes_waiting", "last_error", "posted", "rejected", "dropped"} {
				if _, ok := o.(map[string]any)[k]; !ok {
					t.Errorf("drain %v: an outlet has no key %q", d["id"], k)
				}
			}
		}
	}
	active, waiting := got.Drains[0], got.Drains[1]
	if s, ok := active["last_batch_at"].(string); !ok {
		t.Errorf("last_batch_at = %v, want an RFC 3339 time", active["last_batch_at"])
	} else if ts, err := time.Parse(time.RFC3339, s); err != nil || !ts.Equal(testNow.Add(-3*time.Minute-10*time.Second)) {
		t.Errorf("last_batch_at = %q (%v)", s, err)
	}
	if waiting["last_batch_at"] != nil {
		t.Errorf("waiting drain: last_batch_at = %v, want null", waiting["last_batch_at"])
	}
	if !strings.Contains(res.body, `"last_batch_at": null`) {
		t.Errorf("no null last_batch_at in:\n%s", res.body)
	}
	want := testLines()
	lpm := active["lines_per_minute"].([]any)
	if lpm[0].(float64) != float64(want[0]) || lpm[Minutes-1].(float64) != float64(want[Minutes-1]) {
		t.Errorf("lines_per_minute not oldest first: first %v last %v, want %d %d", lpm[0], lpm[Minutes-1], want[0], want[Minutes-1])
	}
	lpm = waiting["lines_per_minute"].([]any)
	if lpm[0].(float64) != 0 || lpm[Minutes-3].(float64) != 5 || lpm[Minutes-1].(float64) != 7 {
		t.Errorf("a short lines_per_minute is not padded in front: %v", lpm)
	}
	if frames := active["frames"].(float64); frames != 1234567 {
		t.Errorf("frames = %v", frames)
	}
	o := active["outlets"].([]any)[1].(map[string]any)
	if o["kind"] != "remotewrite" || o["state"] != "retrying" || o["minutes_waiting"].(float64) != 3 || o["last_error"] != retryError {
		t.Errorf("retrying outlet = %v", o)
	}
	if s, ok := waiting["add_command"].(string); !ok || !strings.HasPrefix(s, "heroku drains:add ") {
		t.Errorf("waiting drain: add_command = %v", waiting["add_command"])
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	closed := newTestEnv(t, Config{OnDyno: true})
	failing := newTestEnv(t, adminConfig())
	failing.src.err = errTest
	for _, c := range []struct {
		name string
		e    *testEnv
		path string
		pass string
		want int
	}{
		{"page", e, "/", testAdmin, 200},
		{"json", e, "/status.json", testAdmin, 200},
		{"owner", e, "/drains/" + activeID, testAdmin, 200},
		{"401", e, "/", "", 401},
		{"404", e, "/nope", testAdmin, 404},
		{"403", closed, "/", "", 403},
		{"503", failing, "/", testAdmin, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := c.e.get(t, c.path, "", c.pass)
			if res.StatusCode != c.want {
				t.Fatalf("status %d, want %d", res.StatusCode, c.want)
			}
			for k, v := range map[string]string{
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
				t.Errorf("CSP %q is not strict", csp)
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				return
			}
			if strings.Contains(strings.ToLower(res.body), "<script") || regexp.MustCompile(`\sstyle=`).MatchString(res.body) {
				t.Errorf("the page has a script or a style attribute")
			}
			// The one <style> element is what the CSP's hash allows.
			m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(res.body, -1)
			if len(m) != 1 {
				t.Fatalf("%d style elements, want 1", len(m))
			}
			sum := sha256.Sum256([]byte(m[0][1]))
			if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
				t.Errorf("CSP %q does not allow the style element (%s)", csp, want)
			}
		})
	}
}

func TestPage(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	res := e.get(t, "/", "", testAdmin)
	body := res.body
	section := func(id string) string {
		t.Helper()
		m := regexp.MustCompile(`(?s)<section class="drain" id="drain-` + id + `".*?</section>`).FindString(body)
		if m == "" {
			t.Fatalf("no section for drain %s", id)
		}
		return m
	}
	active := section(activeID)
	for _, want := range []string{
		`<a href="drains/` + activeID + `">` + activeName + `</a>`,
		`<span class="app">shop</span>, <span class="app">shop-worker</span>`,
		`data-last-batch="2026-03-14T15:06:16Z"`,
		`<time datetime="2026-03-14T15:06:16Z">2026-03-14 15:06:16 UTC</time> <span class="ago">(3 minutes ago)</span>`,
		`data-drain-state="receiving"`,
		`<tr data-reason="bad_value"><th scope="row">bad_value</th><td>12</td></tr>`,
		`<tr data-reason="bad_header"><th scope="row">bad_header</th><td>4</td></tr>`,
		`data-counter="frames"><dt>frames accepted</dt><dd>1,234,567</dd>`,
		`class="warn" data-counter="frames_rejected"><dt>frames rejected</dt><dd>7</dd>`,
		`data-counter="duplicates"><dt>duplicates</dt><dd>2</dd>`,
		`data-counter="late_shifted"><dt>late, posted in a later minute</dt><dd>1</dd>`,
		`data-counter="kind_conflict"><dt>kind conflict</dt><dd>1</dd>`,
		`data-counter="logplex_dropped"><dt>dropped by logplex (L10, L12)</dt><dd>9</dd>`,
		`data-counter="logplex_lost"><dt>lost by log-shuttle (L13)</dt><dd>1</dd>`,
		`data-counter="open_series"><dt>open series</dt><dd>42</dd>`,
		`data-outlet="remotewrite" data-outlet-index="1" data-state="retrying"`,
		`<span class="pill pill-retrying" data-outlet-state>retrying</span>`,
		`<p class="target" data-target>https://prom.example.com/api/v1/write</p>`,
		`<div data-field="minutes_waiting"><dt>minutes waiting</dt><dd>3</dd></div>`,
		`<code>` + retryError + `</code>`,
		`<dd data-chart="max">1,480</dd>`,
		`<dd data-chart="last">1,480</dd>`,
		`<dd data-chart="current">312</dd>`,
		`data-bars="60"`,
		`<title>15:09 UTC: 312 lines (so far)</title>`,
		`<title>14:10 UTC: 600 lines</title>`,
	} {
		if !strings.Contains(active, want) {
			t.Errorf("the active drain lacks %s", want)
		}
	}
	if n := strings.Count(active, `<rect class="bar`); n != Minutes {
		t.Errorf("%d bars, want %d", n, Minutes)
	}
	// The highest bar is the peak minute, full height less the margin.
	if !strings.Contains(active, `y="4" width="8" height="96" data-lines="1480"`) {
		t.Errorf("the peak bar is not full height")
	}
	if !strings.Contains(active, `height="0" data-lines="0"`) {
		t.Errorf("an empty minute has a visible bar")
	}

	waiting := section(BuiltinDrainID)
	for _, want := range []string{
		`data-drain-state="waiting"`,
		`waiting for the first batch`,
		// The built-in drain: the app name as user, the secret read by the shell.
		`heroku drains:add &#34;https://api-gateway:$(heroku config:get DRAIN_SECRET -a THIS-APP)@drainmeter.example.com/logs&#34; -a api-gateway`,
		`data-reasons="none"`,
		`data-outlet="log" data-outlet-index="0" data-state="ok"`,
	} {
		if !strings.Contains(waiting, want) {
			t.Errorf("the waiting drain lacks %s", want)
		}
	}
	if strings.Contains(waiting, "last batch <time") {
		t.Errorf("the waiting drain shows a last batch time")
	}
}

func TestPageStates(t *testing.T) {
	e := newTestEnv(t, Config{Open: true})
	s := e.src.snap
	s.Drains[0].LastBatchAt = ptr(testNow.Add(-3 * time.Hour))
	s.Drains[0].Outlets[0].State = "paused"
	s.Drains[0].Outlets[0].PauseReason = "wrong_url"
	s.Drains[0].Outlets[0].Fix = "check the outlet's URL"
	s.Drains[0].Outlets[0].NextAttemptAt = ptr(testNow.Add(4*time.Minute + 30*time.Second))
	s.Drains[0].Outlets[1].State = "giving_up"
	s.Drains[0].Outlets[1].PostUncertain = 240
	s.Database, s.Dedup = "unreachable", "local"
	body := e.get(t, "/", "", "").body
	for _, want := range []string{
		`data-drain-state="quiet"`, "(3 hours ago)",
		`data-state="paused"`, "paused, minutes kept", `<strong>to fix:</strong> check the outlet&#39;s URL`,
		`<dt>next attempt</dt><dd><time datetime="` + testNow.Add(4*time.Minute+30*time.Second).Format(time.RFC3339) + `">`, "(in 4 minutes)",
		`data-field="post_uncertain" class="warn"><dt>no answer, may have arrived</dt><dd>240</dd>`,
		`data-state="giving_up"`, "giving up",
		`id="database-banner"`, `id="dedup-banner"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	s.Drains = nil
	if body := e.get(t, "/", "", "").body; !strings.Contains(body, `id="no-drains"`) {
		t.Errorf("no drains: the page does not say so")
	}
}

// TestPageDatabaseReadOnly: a database that refuses writes says so, with
// the partials queued and the oldest minute not written; the chart's
// minutes from it on say "not yet recorded" instead of a number.
func TestPageDatabaseReadOnly(t *testing.T) {
	e := newTestEnv(t, Config{Open: true})
	s := e.src.snap
	s.Database, s.PartialsQueued = "read_only", 3
	since := s.Now.Truncate(time.Minute).Add(-2 * time.Minute)
	s.NotRecordedSince = &since
	body := e.get(t, "/", "", "").body
	for _, want := range []string{
		`data-meta="database">read_only<`, `data-meta="partials-queued">3<`, `data-database="read_only"`,
		"The database is read-only", "not yet recorded", since.UTC().Format("15:04") + " UTC: not yet recorded",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if n := strings.Count(body, "data-unrecorded"); n != 3*len(s.Drains) {
		t.Errorf("%d minutes shown as not yet recorded, want 3 per drain (two full ones and this one)", n)
	}
	r := e.get(t, "/status.json", "", "")
	var got Snapshot
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.StatusCode != 200 {
		t.Fatalf("status.json: %d %v", r.StatusCode, err)
	}
	if got.Database != "read_only" || got.PartialsQueued != 3 || got.NotRecordedSince == nil || !got.NotRecordedSince.Equal(since) {
		t.Errorf("status.json: database %q, partials %d, not recorded since %v", got.Database, got.PartialsQueued, got.NotRecordedSince)
	}
	s.Database = "write_failing"
	if body := e.get(t, "/", "", "").body; !strings.Contains(body, "The database refuses writes") {
		t.Errorf("write_failing: the page does not say so")
	}
}

func TestAddCommand(t *testing.T) {
	waiting := func(id, name, cmd string) *Snapshot {
		return &Snapshot{Now: testNow, Drains: []Report{{ID: id, Name: name, AddCommand: cmd}}}
	}
	for _, c := range []struct {
		name string
		cfg  Config
		host string
		snap *Snapshot
		want string
	}{
		{"table drain, request host", Config{}, "dm.example.com",
			waiting("dabcdef0123456789", "myapp", ""),
			`heroku drains:add 'https://dabcdef0123456789:<secret shown by drains add>@dm.example.com/logs' -a myapp`},
		{"table drain, base URL", Config{BaseURL: "https://cfg:base-url-secret@my-drainmeter.herokuapp.com/"}, "ignored.example.com",
			waiting("dabcdef0123456789", "myapp", ""),
			`heroku drains:add 'https://dabcdef0123456789:<secret shown by drains add>@my-drainmeter.herokuapp.com/logs' -a myapp`},
		{"built-in drain", Config{ThisApp: "my-drainmeter"}, "dm.example.com:8443",
			waiting(BuiltinDrainID, "myapp", ""),
			`heroku drains:add "https://myapp:$(heroku config:get DRAIN_SECRET -a my-drainmeter)@dm.example.com:8443/logs" -a myapp`},
		{"built-in drain, no app known yet", Config{ThisApp: "my-drainmeter"}, "dm.example.com",
			waiting(BuiltinDrainID, BuiltinDrainName, ""),
			`heroku drains:add "https://APP:$(heroku config:get DRAIN_SECRET -a my-drainmeter)@dm.example.com/logs" -a APP`},
		{"odd name and host", Config{}, "evil.example.com/'; rm -rf ~",
			waiting("dabcdef0123456789", "my app'; rm -rf ~", ""),
			`heroku drains:add 'https://dabcdef0123456789:<secret shown by drains add>@HOST/logs' -a APP`},
		{"the Source's, secret elided", Config{}, "dm.example.com",
			waiting("dabcdef0123456789", "myapp", "heroku drains:add 'https://dabcdef0123456789:a1b2c3d4e5f6@dm.example.com/logs?prefix=x' -a myapp"),
			`heroku drains:add 'https://dabcdef0123456789:<secret shown by drains add>@dm.example.com/logs?prefix=x' -a myapp`},
		{"the Source's, placeholder kept", Config{}, "dm.example.com",
			waiting(BuiltinDrainID, "myapp", `heroku drains:add "https://myapp:$(heroku config:get DRAIN_SECRET -a dm)@dm.example.com/logs" -a myapp`),
			`heroku drains:add "https://myapp:$(heroku config:get DRAIN_SECRET -a dm)@dm.example.com/logs" -a myapp`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &handler{cfg: c.cfg}
			got := clean(c.snap, "", h.addCommand(c.host)).Drains[0].AddCommand
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	// A drain that has sent gets no command.
	snap := waiting("dabcdef0123456789", "myapp", "")
	snap.Drains[0].LastBatchAt = &testNow
	h := &handler{}
	if got := clean(snap, "", h.addCommand("x")).Drains[0].AddCommand; got != "" {
		t.Errorf("active drain: add command %q", got)
	}
}

func TestEscaping(t *testing.T) {
	e := newTestEnv(t, Config{Open: true})
	e.src.snap.Drains[0].Name = `<script>alert("name")</script>`
	e.src.snap.Drains[0].Apps = []string{`<img src=x onerror=alert(1)>`}
	e.src.snap.Drains[0].Rejected = map[string]uint64{`"><script>alert(2)</script>`: 1}
	e.src.snap.Drains[0].Outlets[1].LastError = `</code><script>alert(3)</script>`
	body := e.get(t, "/", "", "").body
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") {
		t.Errorf("markup from the snapshot is not escaped")
	}
}

type nilSource struct{}

func (nilSource) Snapshot(context.Context, string) (*Snapshot, error) { return nil, nil }

// TestGuessingLimited: wrong passwords beyond FailedSignInBurst (then
// FailedSignInRate a second) are answered 429 without being checked —
// the right password too, until the rate allows again — and logged.
func TestGuessingLimited(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	codes := map[int]int{}
	for i := range 200 {
		codes[e.get(t, "/status.json", "admin", fmt.Sprintf("guess-%d", i)).StatusCode]++
	}
	if codes[http.StatusUnauthorized] < FailedSignInBurst || codes[http.StatusUnauthorized] > FailedSignInBurst+10 ||
		codes[http.StatusTooManyRequests] < 150 {
		t.Fatalf("200 guesses answered %v, want %d-ish 401 then 429", codes, FailedSignInBurst)
	}
	res := e.get(t, "/status.json", "admin", testAdmin)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("the right password during the flood: %d", res.StatusCode)
	}
	time.Sleep(time.Second)
	if res := e.get(t, "/status.json", "admin", testAdmin); res.StatusCode != http.StatusOK {
		t.Fatalf("the right password a second later: %d", res.StatusCode)
	}
	if res := e.get(t, "/status.json", "", ""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", res.StatusCode)
	}
}

// TestGuessingLocksOutNoOneElse: on a dyno each client is the address
// Heroku's router appended to X-Forwarded-For; one client's flood of wrong
// passwords (whatever it puts before that address) never keeps the admin
// out, and all clients together are bounded too.
func TestGuessingLocksOutNoOneElse(t *testing.T) {
	e := newTestEnv(t, adminConfig())
	for i := range 100 {
		e.get(t, "/status.json", "admin", fmt.Sprintf("guess-%d", i), fmt.Sprintf("X-Forwarded-For: 10.0.0.%d, 203.0.113.9", i))
	}
	if res := e.get(t, "/status.json", "admin", "guess-x", "X-Forwarded-For: 203.0.113.9"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the flooding client: %d, want 429", res.StatusCode)
	}
	if res := e.get(t, "/status.json", "admin", testAdmin, "X-Forwarded-For: 198.51.100.7"); res.StatusCode != http.StatusOK {
		t.Fatalf("the admin, from elsewhere, during the flood: %d", res.StatusCode)
	}
	// Many clients: no more than the shared bound is checked.
	codes := map[int]int{}
	for i := range 2000 {
		codes[e.get(t, "/status.json", "admin", "guess", fmt.Sprintf("X-Forwarded-For: 198.18.%d.%d", i/250, i%250)).StatusCode]++
	}
	if n := codes[http.StatusUnauthorized]; n > FailedSignInBurst*FailedSignInAll+50 || codes[http.StatusTooManyRequests] == 0 {
		t.Fatalf("2000 clients' guesses answered %v, want at most ~%d checked", codes, FailedSignInBurst*FailedSignInAll)
	}
}
