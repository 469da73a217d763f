// Package browsertest drives a real headless Chromium from tests, through
// chromedp: open a page (with Basic-auth credentials), read its text,
// count and query elements, read attributes, and save full-page
// screenshots at a desktop and a phone width.
//
// The browser is Debian's chromium (scripts/with-chromium installs it): the
// binary in CHROMIUM_BIN, else `chromium` on PATH, else /usr/bin/chromium.
// Without one a test is skipped, or fails when CI=true.
//
// Each Browser is its own Chromium process with a fresh profile, stopped
// when the test ends. Background networking, component updates, sync and
// QUIC are off: on a machine without a network Chromium would otherwise
// stall on them.
package browsertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The widths of the screenshots.
const (
	DesktopWidth = 1280
	PhoneWidth   = 390
)

// Timeout bounds each browser action.
const Timeout = 30 * time.Second

// Browser is one headless Chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context // the tab's
	dir string          // where screenshots go
}

// Find returns the path of the Chromium binary: CHROMIUM_BIN, `chromium` on
// PATH, or /usr/bin/chromium.
func Find() (string, error) {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("browsertest: CHROMIUM_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", errors.New("browsertest: no Chromium (set CHROMIUM_BIN, or run the tests through scripts/with-chromium)")
}

// New starts a headless Chromium for the test and stops it when the test
// ends. Without a browser it skips the test, or fails it when CI=true.
func New(t testing.TB) *Browser {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.WindowSize(DesktopWidth, 900),
	}
	var ctx context.Context
	for attempt := 1; ; attempt++ {
		ctx, err = start(t, append(opts, chromedp.UserDataDir(t.TempDir())))
		if err == nil {
			break
		}
		// A Chromium that dies before it listens (it crashes at start on
		// rare runs of a loaded machine) is started again, with a fresh
		// profile; one that never answers is not.
		if attempt == startAttempts || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("browsertest: start %s: %v", bin, err)
		}
		t.Logf("browsertest: start %s, attempt %d of %d: %v", bin, attempt, startAttempts, err)
	}
	// Answer every authentication challenge with Cancel, so that a 401
	// loads its own page, as in a browser whose user closes the password
	// dialog (headless Chromium would fail the load instead). Credentials
	// go in a header set by Open. With the Fetch domain on, every request
	// pauses until it is continued.
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *fetch.EventRequestPaused:
			go call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		case *fetch.EventAuthRequired:
			go call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}})
		}
	})
	if err == nil {
		err = call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)})
	}
	if err != nil {
		t.Fatalf("browsertest: fetch: %v", err)
	}
	return &Browser{t: t, ctx: ctx}
}

// startAttempts is how many times New starts a Chromium that dies before
// it listens.
const startAttempts = 3

// start starts a Chromium with opts and its tab. The browser is stopped
// when the test ends, or at once if it did not start.
func start(t testing.TB, opts []chromedp.ExecAllocatorOption) (context.Context, error) {
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	stop := func() {
		// Close the browser gracefully, then make sure the process is gone
		// (cancelAlloc waits for it) before TempDir removes its profile.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelAlloc()
	}
	// The first action starts the browser, which lives as long as the
	// context of that action: ctx itself, not one with a timeout. A start
	// that hangs is cut by the timer instead.
	hung := time.AfterFunc(Timeout, cancel)
	err := chromedp.Do(ctx)
	if !hung.Stop() {
		err = fmt.Errorf("no answer in %s: %w", Timeout, err)
	}
	if err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(stop)
	return ctx, nil
}

// call runs one protocol command in the tab of ctx. The errors of the
// event handlers' calls are dropped: they fail only once the tab closes.
func call[P, R any](ctx context.Context, c cdp.Command[P, R], params P) error {
	return chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, c, params)
		return err
	}))
}

func (b *Browser) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, Timeout)
}

// Open loads url and returns the HTTP status of the document. With user or
// password set, every request of the page carries them in an Authorization
// header (Basic); without, none does.
func (b *Browser) Open(url, user, password string) int {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	headers := network.Headers{}
	if user != "" || password != "" {
		headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	if err := call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers}); err != nil {
		b.t.Fatalf("browsertest: set headers: %v", err)
	}
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("browsertest: open %s: %v", url, err)
	}
	return int(res.Status)
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browsertest: evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// Text returns the rendered text of the page (document.body.innerText).
func (b *Browser) Text() string {
	b.t.Helper()
	return eval[string](b, `document.body ? document.body.innerText : ""`)
}

// Title returns the document's title.
func (b *Browser) Title() string {
	b.t.Helper()
	return eval[string](b, `document.title`)
}

// Count returns how many elements match the CSS selector.
func (b *Browser) Count(selector string) int {
	b.t.Helper()
	return eval[int](b, `document.querySelectorAll(`+js(selector)+`).length`)
}

// TextOf returns the rendered text of the first element that matches the
// CSS selector, and false if none does.
func (b *Browser) TextOf(selector string) (string, bool) {
	b.t.Helper()
	v := eval[*string](b, `(() => { const e = document.querySelector(`+js(selector)+`); return e ? e.innerText : null })()`)
	if v == nil {
		return "", false
	}
	return *v, true
}

// Texts returns the rendered text of every element that matches the CSS
// selector, in document order. An SVG element has no innerText: its
// textContent is used.
func (b *Browser) Texts(selector string) []string {
	b.t.Helper()
	return eval[[]string](b, `Array.from(document.querySelectorAll(`+js(selector)+`), e => e.innerText ?? e.textContent)`)
}

// Attr returns an attribute of the first element that matches the CSS
// selector, and false if no element matches or it has no such attribute.
func (b *Browser) Attr(selector, name string) (string, bool) {
	b.t.Helper()
	v := eval[*string](b, `(() => { const e = document.querySelector(`+js(selector)+`); return e ? e.getAttribute(`+js(name)+`) : null })()`)
	if v == nil {
		return "", false
	}
	return *v, true
}

// Attrs returns an attribute of every element that matches the CSS
// selector ("" where it is missing).
func (b *Browser) Attrs(selector, name string) []string {
	b.t.Helper()
	return eval[[]string](b, `Array.from(document.querySelectorAll(`+js(selector)+`), e => e.getAttribute(`+js(name)+`) ?? "")`)
}

// Style returns a computed style property of the first element that
// matches the CSS selector ("" if none does): a way to see that the page's
// styles applied (the CSP did not block them).
func (b *Browser) Style(selector, property string) string {
	b.t.Helper()
	return eval[string](b, `(() => { const e = document.querySelector(`+js(selector)+`); return e ? getComputedStyle(e).getPropertyValue(`+js(property)+`) : "" })()`)
}

// ScrollWidth returns the width of the page's content in CSS pixels; wider
// than the viewport means a horizontal scroll.
func (b *Browser) ScrollWidth() int {
	b.t.Helper()
	return eval[int](b, `document.documentElement.scrollWidth`)
}

// SetWidth lays the page out at width CSS pixels, as a phone (mobile,
// touch, portrait) below 600, until ResetWidth.
func (b *Browser) SetWidth(width int) {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	var opts []chromedp.EmulateViewportOption
	if width < 600 {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 900, opts...)); err != nil {
		b.t.Fatalf("browsertest: viewport %d: %v", width, err)
	}
}

// ResetWidth goes back to the window's own size (the desktop width).
func (b *Browser) ResetWidth() {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	err := call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
	if err == nil {
		err = call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{})
	}
	if err != nil {
		b.t.Fatalf("browsertest: reset viewport: %v", err)
	}
	// The override is lifted asynchronously: under load a style read right
	// after it can still see the phone's layout. Wait until the page is laid
	// out at the window's own width again.
	for deadline := time.Now().Add(5 * time.Second); eval[int](b, `window.innerWidth`) < DesktopWidth-20; {
		if time.Now().After(deadline) {
			b.t.Fatalf("browsertest: the viewport did not return to the desktop width")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Screenshot saves a full-page PNG of the current page laid out at width
// CSS pixels (see SetWidth), logs its path and returns it. The screenshots
// stay after the test, in one temp dir per Browser (or in
// $BROWSERTEST_DIR), for a person to look at.
func (b *Browser) Screenshot(name string, width int) string {
	b.t.Helper()
	b.SetWidth(width)
	defer b.ResetWidth()
	ctx, cancel := b.timeout()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	path := filepath.Join(b.screenshotDir(), fmt.Sprintf("%s-%d.png", safeName(name), width))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
	return path
}

// Screenshots saves the page at the desktop and the phone width.
func (b *Browser) Screenshots(name string) (desktop, phone string) {
	b.t.Helper()
	return b.Screenshot(name, DesktopWidth), b.Screenshot(name, PhoneWidth)
}

func (b *Browser) screenshotDir() string {
	if b.dir != "" {
		return b.dir
	}
	dir := os.Getenv("BROWSERTEST_DIR")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "browsertest-"+safeName(b.t.Name())+"-"); err != nil {
			b.t.Fatal(err)
		}
	}
	b.dir = dir
	return dir
}

// safeName makes a file name of a test or page name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}
