package status

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/browsertest"
)

// The selectors of TestBrowser's two drains: the active one and the one
// waiting for its first batch.
const (
	browserActive  = `[data-drain="` + activeID + `"] `
	browserWaiting = `[data-drain="default"] `
)

// TestBrowser loads the pages in a real headless Chromium: the admin's
// status page with two drains (one active with a retrying outlet and
// rejected frames, one waiting for its first batch), a drain owner's page,
// and the pages without access; it saves screenshots at a desktop and a
// phone width.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	b := browsertest.New(t)
	srv := httptest.NewServer(NewHandler(adminConfig(), &fakeSource{snap: testSnapshot()}, testOwners(), discardLog()))
	defer srv.Close()

	t.Run("signed out", func(t *testing.T) {
		for _, pass := range []string{"", "wrong"} {
			if st := b.Open(srv.URL+"/", "admin", pass); st != http.StatusUnauthorized {
				t.Fatalf("password %q: status %d, want 401", pass, st)
			}
			text := b.Text()
			if !strings.Contains(text, "drainmeter is running") || !strings.Contains(text, testVersion) {
				t.Errorf("the 401 page says %q", text)
			}
			assertNoDrains(t, "the 401 page", text)
		}
		b.Screenshot("unauthorized", browsertest.PhoneWidth)
	})

	t.Run("admin", func(t *testing.T) {
		browserAdminDrains(t, b, srv.URL)
		browserAdminChart(t, b)
		browserAdminCounters(t, b)
		browserAdminOutlets(t, b)

		// No secret on the page.
		text := b.Text()
		for _, s := range []string{testAdmin, ownerSecret} {
			if strings.Contains(text, s) {
				t.Errorf("the page shows a secret")
			}
		}

		browserAdminLayout(t, b)
		b.Screenshots("status")
	})

	t.Run("owner", func(t *testing.T) { browserOwner(t, b, srv.URL) })

	t.Run("open", func(t *testing.T) {
		open := httptest.NewServer(NewHandler(Config{Open: true, Version: testVersion}, &fakeSource{snap: testSnapshot()}, nil, discardLog()))
		defer open.Close()
		if st := b.Open(open.URL+"/", "", ""); st != http.StatusOK {
			t.Fatalf("status %d, want 200", st)
		}
		if got, _ := b.TextOf("#open-banner"); !strings.Contains(got, "no ADMIN_PASSWORD set: this page is open") {
			t.Errorf("banner = %q", got)
		}
		b.Screenshot("open", browsertest.PhoneWidth)
	})

	t.Run("closed", func(t *testing.T) {
		closed := httptest.NewServer(NewHandler(Config{OnDyno: true, Version: testVersion}, &fakeSource{snap: testSnapshot()}, nil, discardLog()))
		defer closed.Close()
		if st := b.Open(closed.URL+"/", "", ""); st != http.StatusForbidden {
			t.Fatalf("status %d, want 403", st)
		}
		if got, _ := b.TextOf("#set-password"); got != "heroku config:set ADMIN_PASSWORD=$(openssl rand -hex 16) -a THIS-APP" {
			t.Errorf("set command = %q", got)
		}
		assertNoDrains(t, "the closed page", b.Text())
		b.Screenshots("closed")
	})
}

// browserAdminDrains checks the admin page lists both drains with their
// names, sending apps, last batch and the waiting drain's add command.
func browserAdminDrains(t *testing.T, b *browsertest.Browser, srvURL string) {
	t.Helper()
	if st := b.Open(srvURL+"/", "admin", testAdmin); st != http.StatusOK {
		t.Fatalf("status %d, want 200", st)
	}
	if n := b.Count("section.drain"); n != 2 {
		t.Fatalf("%d drains shown, want 2", n)
	}
	if got, _ := b.TextOf(browserActive + ".drain-name"); got != activeName {
		t.Errorf("active drain's name = %q", got)
	}
	if got, _ := b.TextOf(browserWaiting + ".drain-name"); got != waitingName {
		t.Errorf("waiting drain's name = %q", got)
	}
	if got, _ := b.TextOf(browserActive + ".apps"); got != "shop, shop-worker" {
		t.Errorf("sending apps = %q", got)
	}

	// The last batch.
	if got, _ := b.Attr(browserActive+"[data-last-batch]", "data-last-batch"); got != "2026-03-14T15:06:16Z" {
		t.Errorf("data-last-batch = %q", got)
	}
	if got, _ := b.TextOf(browserActive + ".last-batch"); got != "last batch 2026-03-14 15:06:16 UTC (3 minutes ago)" {
		t.Errorf("last batch reads %q", got)
	}
	if got, _ := b.TextOf(browserWaiting + ".last-batch"); !strings.HasPrefix(got, "waiting for the first batch") {
		t.Errorf("waiting drain reads %q", got)
	}
	want := `heroku drains:add "https://api-gateway:$(heroku config:get DRAIN_SECRET -a THIS-APP)@` +
		strings.TrimPrefix(srvURL, "http://") + `/logs" -a api-gateway`
	if got, _ := b.TextOf(browserWaiting + ".add-command"); got != want {
		t.Errorf("add command\n got %s\nwant %s", got, want)
	}
}

// browserAdminChart checks the active drain's chart: 60 bars, drawn (the CSP
// let the styles through), the highest the peak minute; its title and the
// figures say it in words.
func browserAdminChart(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	if n := b.Count(browserActive + `svg.bars rect.bar`); n != Minutes {
		t.Errorf("%d bars, want %d", n, Minutes)
	}
	if n := b.Count(browserWaiting + `svg.bars rect.bar`); n != Minutes {
		t.Errorf("waiting drain: %d bars, want %d", n, Minutes)
	}
	if fill := b.Style(browserActive+"rect.bar", "fill"); fill != "rgb(59, 111, 212)" {
		t.Errorf("bar fill %q: the style sheet did not apply", fill)
	}
	heights := b.Attrs(browserActive+"rect.bar", "height")
	lines := b.Attrs(browserActive+"rect.bar", "data-lines")
	if len(heights) == Minutes && (heights[Minutes-2] != "96" || lines[Minutes-2] != "1480" || heights[20] != "0") {
		t.Errorf("bars: peak %s high (%s lines), empty minute %s high", heights[Minutes-2], lines[Minutes-2], heights[20])
	}
	if titles := b.Texts(browserActive + `svg.bars > title`); len(titles) != 1 ||
		!strings.Contains(titles[0], "at most 1,480, 1,480 in the last full minute, 312 so far") {
		t.Errorf("chart title = %q", titles)
	}
	for sel, want := range map[string]string{
		`[data-chart="max"]`:     "1,480",
		`[data-chart="last"]`:    "1,480",
		`[data-chart="current"]`: "312",
	} {
		if got, _ := b.TextOf(browserActive + sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
}

// browserAdminCounters checks the rejected frames by reason, and the counters.
func browserAdminCounters(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	for reason, want := range map[string]string{"bad_header": "4", "oversized": "3", "bad_value": "12"} {
		if got, _ := b.TextOf(browserActive + `[data-reason="` + reason + `"] td`); got != want {
			t.Errorf("rejected %s = %q, want %q", reason, got, want)
		}
	}
	for key, want := range map[string]string{"frames": "1,234,567", "frames_rejected": "7", "duplicates": "2",
		"late": "5", "late_shifted": "1", "kind_conflict": "1", "logplex_dropped": "9", "logplex_lost": "1", "open_series": "42"} {
		if got, _ := b.TextOf(browserActive + `[data-counter="` + key + `"] dd`); got != want {
			t.Errorf("counter %s = %q, want %q", key, got, want)
		}
	}
}

// browserAdminOutlets checks the retrying outlet, with its last error, and
// the librato outlet that is ok.
func browserAdminOutlets(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	retrying := browserActive + `[data-outlet="remotewrite"][data-state="retrying"] `
	if n := b.Count(browserActive + `[data-outlet="remotewrite"][data-state="retrying"]`); n != 1 {
		t.Fatalf("%d retrying remotewrite outlets, want 1", n)
	}
	if got, _ := b.TextOf(retrying + "[data-outlet-state]"); got != "retrying" {
		t.Errorf("outlet state reads %q", got)
	}
	if got, _ := b.TextOf(retrying + "[data-last-error] code"); got != retryError {
		t.Errorf("last error = %q", got)
	}
	if got, _ := b.TextOf(retrying + `[data-field="minutes_waiting"] dd`); got != "3" {
		t.Errorf("minutes waiting = %q", got)
	}
	if got, _ := b.TextOf(retrying + `[data-field="last_post_at"] dd`); got != "2026-03-14 15:05:26 UTC (4 minutes ago)" {
		t.Errorf("last post = %q", got)
	}
	if got, _ := b.TextOf(browserActive + `[data-outlet="librato"][data-state="ok"] [data-outlet-state]`); got != "ok" {
		t.Errorf("librato outlet state = %q", got)
	}
}

// browserAdminLayout checks one column on a phone, nothing wider than the
// screen, and two columns again on a desktop.
func browserAdminLayout(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	b.SetWidth(browsertest.PhoneWidth)
	if w := b.ScrollWidth(); w > browsertest.PhoneWidth {
		t.Errorf("on a phone the page is %d px wide, more than the screen's %d", w, browsertest.PhoneWidth)
	}
	if cols := strings.Fields(b.Style(browserActive+".grid", "grid-template-columns")); len(cols) != 1 {
		t.Errorf("on a phone the drain has columns %q, want one", cols)
	}
	b.ResetWidth()
	// The layout follows the viewport's reset a moment later.
	var cols []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cols = strings.Fields(b.Style(browserActive+".grid", "grid-template-columns")); len(cols) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(cols) != 2 {
		t.Errorf("on a desktop the drain has columns %q, want two", cols)
	}
}

// browserOwner checks a drain owner's page shows only its drain, with its
// retrying outlet, and the owner is refused the other pages.
func browserOwner(t *testing.T, b *browsertest.Browser, srvURL string) {
	t.Helper()
	if st := b.Open(srvURL+"/drains/"+activeID, activeID, ownerSecret); st != http.StatusOK {
		t.Fatalf("status %d, want 200", st)
	}
	if got := b.Attrs("section.drain", "data-drain"); len(got) != 1 || got[0] != activeID {
		t.Errorf("drains shown %q, want only %s", got, activeID)
	}
	if text := b.Text(); strings.Contains(text, waitingName) || !strings.Contains(text, activeName) {
		t.Errorf("the owner page shows another drain, or not its own")
	}
	if n := b.Count(`[data-outlet="remotewrite"][data-state="retrying"]`); n != 1 {
		t.Errorf("%d retrying outlets on the owner page, want 1", n)
	}
	b.Screenshots("owner")
	for _, path := range []string{"/", "/drains/default"} {
		if st := b.Open(srvURL+path, activeID, ownerSecret); st != http.StatusUnauthorized {
			t.Errorf("owner on %s: status %d, want 401", path, st)
		}
	}
}
