package browsertest

import (
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPage = `<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>the title</title>
<style>p.x { color: rgb(1, 2, 3) } .tall { height: 1500px }</style></head>
<body><h1>Hello, %s</h1>
<p class="x" data-k="v1">one</p><p class="x" data-k="v2">two</p>
<svg width="100" height="20"><rect class="bar" width="5" height="5"></rect><rect class="bar" width="5" height="9"></rect></svg>
<div class="tall"></div><p id="end">the end</p></body></html>`

func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || pass != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, "<p>who are you?</p>")
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, testPage, user)
	}))
	defer srv.Close()

	b := New(t)
	if st := b.Open(srv.URL, "", ""); st != http.StatusUnauthorized {
		t.Errorf("without credentials: status %d, want 401", st)
	}
	if txt := b.Text(); !strings.Contains(txt, "who are you?") {
		t.Errorf("401 page text = %q", txt)
	}
	if st := b.Open(srv.URL, "ann", "pw"); st != http.StatusOK {
		t.Fatalf("with credentials: status %d, want 200", st)
	}
	if got := b.Title(); got != "the title" {
		t.Errorf("Title = %q", got)
	}
	if txt := b.Text(); !strings.Contains(txt, "Hello, ann") || !strings.Contains(txt, "the end") {
		t.Errorf("Text = %q", txt)
	}
	if n := b.Count("svg rect.bar"); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
	if got, ok := b.TextOf("p.x"); !ok || got != "one" {
		t.Errorf("TextOf = %q %v", got, ok)
	}
	if _, ok := b.TextOf("#missing"); ok {
		t.Errorf("TextOf finds a missing element")
	}
	if got := b.Texts("p.x"); len(got) != 2 || got[1] != "two" {
		t.Errorf("Texts = %q", got)
	}
	if got, ok := b.Attr("p.x", "data-k"); !ok || got != "v1" {
		t.Errorf("Attr = %q %v", got, ok)
	}
	if _, ok := b.Attr("p.x", "data-none"); ok {
		t.Errorf("Attr finds a missing attribute")
	}
	if got := b.Attrs("rect.bar", "height"); len(got) != 2 || got[1] != "9" {
		t.Errorf("Attrs = %q", got)
	}
	if got := b.Style("p.x", "color"); got != "rgb(1, 2, 3)" {
		t.Errorf("Style = %q", got)
	}

	desktop, phone := b.Screenshots("page")
	for path, width := range map[string]int{desktop: DesktopWidth, phone: PhoneWidth} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.Width != width || cfg.Height < 1500 {
			t.Errorf("%s: %dx%d, want %d wide and the whole page (over 1500 high)", path, cfg.Width, cfg.Height, width)
		}
	}
	if w := b.ScrollWidth(); w != DesktopWidth {
		t.Errorf("after the screenshots the page is %d wide, want the desktop width %d again", w, DesktopWidth)
	}
}

// TestNewStartsAgainAfterACrash: a Chromium that dies before it listens is
// started again, and the test goes on with the second.
func TestNewStartsAgainAfterACrash(t *testing.T) {
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	crashed := filepath.Join(dir, "crashed")
	script := filepath.Join(dir, "chromium")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
# The first start dies at once, as a crash at start does.
if [ ! -e '`+crashed+`' ]; then
	touch '`+crashed+`'
	echo 'crashed at start' >&2
	exit 1
fi
exec '`+bin+`' "$@"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHROMIUM_BIN", script)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<p>second start</p>")
	}))
	defer srv.Close()
	b := New(t)
	if _, err := os.Stat(crashed); err != nil {
		t.Fatalf("the first start did not run: %v", err)
	}
	if st := b.Open(srv.URL, "", ""); st != http.StatusOK || !strings.Contains(b.Text(), "second start") {
		t.Errorf("the browser of the second start: status %d, text %q", st, b.Text())
	}
}
