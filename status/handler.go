package status

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/connlimit"
	"github.com/drainmeter/drainmeter/internal/logsample"
	"github.com/drainmeter/drainmeter/internal/ratelimit"
)

// BuiltinDrainID is the id of the drain configured by config vars
// (DRAIN_SECRET): any user name, which names the sending app.
const BuiltinDrainID = "default"

// BuiltinDrainName is the built-in drain's name until APP_NAME or a
// sending app names it.
const BuiltinDrainName = "drainmeter"

// Config is the status pages' configuration.
type Config struct {
	// AdminPassword opens the status page and every drain's page, with any
	// user name. Empty: see Open and OnDyno.
	AdminPassword string
	// Open: no password, not on a Heroku dyno and no database (local, in
	// memory: one user's own drain);
	// everything is shown, under a banner that says so.
	Open bool
	// OnDyno: on a Heroku dyno. Without a password the status page shows
	// only how to set one (and so does any configuration that is neither
	// Open nor has a password).
	OnDyno bool
	// Version is shown to anyone, signed in or not.
	Version string
	// BaseURL is this app's URL (DRAINMETER_URL), for the drain URLs of
	// the add commands shown. Empty: https and the request's Host.
	BaseURL string
	// ThisApp is this drainmeter's Heroku app name, for the commands
	// shown. Empty: the placeholder THIS-APP.
	ThisApp string
	// Connections, if set, gives this process's connection counts for the
	// status page.
	Connections func() connlimit.Stats
	// SignedIn, if set, is called with the request's context once its
	// credentials opened a page: the web trusts its connection
	// (internal/connlimit), as it does a drain's after an accepted batch.
	SignedIn func(ctx context.Context)
	// Explorer is the source of the metrics explorer's pages
	// (/drains/{id}/metrics); nil: no explorer.
	Explorer ExplorerSource
}

// OwnerAuth checks a drain owner's credentials: the drain id and its
// secret, as in the drain's URL. It returns an error only when it cannot
// tell (a database outage); the handler answers 503.
type OwnerAuth interface {
	Owner(ctx context.Context, id, secret string) (ok bool, err error)
}

//go:embed templates
var templateFS embed.FS

type handler struct {
	cfg       Config
	src       Source
	owners    OwnerAuth // nil: only the admin password opens a drain's page
	log       *slog.Logger
	refusals  *logsample.Log // lines anyone can cause: one a second per kind
	adminHash [sha256.Size]byte
	guesses   guessLimit // failed sign-ins
	tmpl      *template.Template
	css       template.CSS
	csp       string
}

// NewHandler serves the status pages:
//
//	GET /                 the status page (admin)
//	GET /status.json      the same as JSON (admin)
//	GET /drains/{id}      one drain's page (its owner, or admin)
//	GET /drains/{id}.json the same as JSON
//	GET /drains/{id}/metrics[.json]  the drain's metrics explorer (explore_view.go)
//
// The admin password is checked over HTTP Basic auth with any user name; a
// drain owner signs in with the drain id as user name and its secret as
// password (for the built-in drain, any user name). owners may be nil.
func NewHandler(cfg Config, src Source, owners OwnerAuth, log *slog.Logger) http.Handler {
	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	sum := sha256.Sum256(css)
	h := &handler{
		cfg:       cfg,
		src:       src,
		owners:    owners,
		log:       log,
		refusals:  logsample.New(log, time.Now),
		guesses:   guessLimit{all: ratelimit.Bucket{Rate: FailedSignInRate * FailedSignInAll, Burst: FailedSignInBurst * FailedSignInAll}},
		adminHash: sha256.Sum256([]byte(cfg.AdminPassword)),
		tmpl:      template.Must(template.New("").ParseFS(templateFS, "templates/*.html")),
		css:       template.CSS(css),
		// No scripts, images, fonts or frames, and only the explorer's
		// filter as a form (a GET to this page): the page is HTML,
		// one <style> element and inline SVG. The style element is allowed
		// by its hash rather than 'unsafe-inline', so that markup injected
		// despite the escaping could not restyle the page (to hide or fake
		// a state); the templates use no style attributes for that reason.
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
			"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.statusPage)
	mux.HandleFunc("GET /status.json", h.statusJSON)
	mux.HandleFunc("GET /drains/{id}", h.drainPage)
	mux.HandleFunc("GET /drains/{id}/metrics", h.metricsPage)
	mux.HandleFunc("GET /drains/{id}/metrics.json", h.metricsJSON)
	return h.secure(mux)
}

// secure sets the headers of every answer, errors included.
func (h *handler) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) statusPage(w http.ResponseWriter, r *http.Request) {
	if !h.admitAdmin(w, r, false) {
		return
	}
	snap, ok := h.snapshot(w, r, "", false)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "status.html", h.pageView(clean(snap, "", h.addCommand(r.Host)), ""))
}

func (h *handler) statusJSON(w http.ResponseWriter, r *http.Request) {
	if !h.admitAdmin(w, r, true) {
		return
	}
	if snap, ok := h.snapshot(w, r, "", true); ok {
		h.writeJSON(w, http.StatusOK, clean(snap, "", h.addCommand(r.Host)))
	}
}

func (h *handler) drainPage(w http.ResponseWriter, r *http.Request) {
	id, asJSON := strings.CutSuffix(r.PathValue("id"), ".json")
	snap, ok := h.drainSnapshot(w, r, id, asJSON)
	if !ok {
		return
	}
	if asJSON {
		h.writeJSON(w, http.StatusOK, snap)
		return
	}
	h.render(w, http.StatusOK, "status.html", h.pageView(snap, id))
}

// drainIDRE is what a drain id in a path may be: drains are "d" and 16 hex
// digits, the built-in one "default".
var drainIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$`)

// isAdmin reports whether the request may see everything: the page is
// open, or it carries the admin password.
func (h *handler) isAdmin(r *http.Request) bool {
	if h.cfg.AdminPassword == "" {
		return h.open()
	}
	_, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(pass))
	// Over fixed-length hashes: not even the password's length leaks.
	return subtle.ConstantTimeCompare(got[:], h.adminHash[:]) == 1
}

// open reports whether the pages are open to anyone: no password, and
// explicitly not on a dyno.
func (h *handler) open() bool {
	return h.cfg.AdminPassword == "" && h.cfg.Open && !h.cfg.OnDyno
}

// FailedSignInRate and FailedSignInBurst bound the failed sign-ins to the
// pages (admin password or drain secret) of one client: beyond them its
// sign-ins are answered 429 without their password being checked, so that
// ADMIN_PASSWORD cannot be guessed faster. All clients together are bounded
// at FailedSignInAll times that: one client's guesses never lock another
// (the admin) out, and many clients' guesses stay bounded.
const (
	FailedSignInRate  = 5 // a second
	FailedSignInBurst = 20
	FailedSignInAll   = 10
	maxGuessClients   = 10_000
)

// guessLimit holds token buckets of failed sign-ins: one per client and
// one for all of them.
type guessLimit struct {
	mu  sync.Mutex
	all ratelimit.Bucket
	per map[string]*ratelimit.Bucket
}

// bucketsLocked returns client's bucket and the shared one.
func (g *guessLimit) bucketsLocked(client string) (*ratelimit.Bucket, *ratelimit.Bucket) {
	b := g.per[client]
	if b == nil {
		if g.per == nil || len(g.per) >= maxGuessClients {
			g.per = map[string]*ratelimit.Bucket{} // forget them all: the shared bucket still bounds
		}
		b = &ratelimit.Bucket{Rate: FailedSignInRate, Burst: FailedSignInBurst}
		g.per[client] = b
	}
	return b, &g.all
}

// allowed reports whether a sign-in of client may be checked now.
func (g *guessLimit) allowed(client string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, all := g.bucketsLocked(client)
	return b.Tokens(now) >= 1 && all.Tokens(now) >= 1
}

// failed spends a token of client's, and one of all, for a failed sign-in.
func (g *guessLimit) failed(client string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, all := g.bucketsLocked(client)
	b.Spend(now)
	all.Spend(now)
}

// client names who sent r, for the sign-in limits: on a dyno the address
// Heroku's router appended to X-Forwarded-For (the last one: a client can
// only put others before it), elsewhere the connection's address.
func (h *handler) client(r *http.Request) string {
	if h.cfg.OnDyno {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if last = strings.TrimSpace(last); last != "" {
				return last
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// limited answers 429 (and returns true) when a request brings
// credentials while its client's failed sign-ins are over their rate.
func (h *handler) limited(w http.ResponseWriter, r *http.Request, asJSON bool) bool {
	if _, _, ok := r.BasicAuth(); !ok || h.guesses.allowed(h.client(r), time.Now()) {
		return false
	}
	h.refusals.Sampled(slog.LevelWarn, "status: sign-in refused", "too many failed sign-ins; not checked")
	w.Header().Set("Retry-After", "1")
	h.fail(w, http.StatusTooManyRequests, asJSON, "")
	return true
}

// admitAdmin answers the request itself (and returns false) unless it may
// see everything.
func (h *handler) admitAdmin(w http.ResponseWriter, r *http.Request, asJSON bool) bool {
	if h.cfg.AdminPassword != "" && h.limited(w, r, asJSON) {
		return false
	}
	switch {
	case h.isAdmin(r):
		h.signedIn(r)
		return true
	case h.cfg.AdminPassword == "":
		h.fail(w, http.StatusForbidden, asJSON, "")
	default:
		if _, _, ok := r.BasicAuth(); ok {
			h.guesses.failed(h.client(r), time.Now())
			h.refusals.Sampled(slog.LevelWarn, "status: sign-in refused", "wrong password")
		}
		h.fail(w, http.StatusUnauthorized, asJSON, "drainmeter")
	}
	return false
}

// admitOwner answers the request itself (and returns false) unless it may
// see drain id: the admin, or the drain's owner.
func (h *handler) admitOwner(w http.ResponseWriter, r *http.Request, id string, asJSON bool) bool {
	if h.limited(w, r, asJSON) {
		return false
	}
	if h.isAdmin(r) {
		h.signedIn(r)
		return true
	}
	realm := "drainmeter drain " + id // id matched drainIDRE: safe in a quoted string
	user, pass, ok := r.BasicAuth()
	if !ok || h.owners == nil || (user != id && id != BuiltinDrainID) {
		h.fail(w, http.StatusUnauthorized, asJSON, realm)
		return false
	}
	ok, err := h.owners.Owner(r.Context(), id, pass)
	switch {
	case err != nil:
		h.refusals.Sampled(slog.LevelError, "status: owner auth unavailable", "cannot look the drain up", "drain", id, "err", err)
		h.fail(w, http.StatusServiceUnavailable, asJSON, "")
		return false
	case !ok:
		h.guesses.failed(h.client(r), time.Now())
		h.refusals.Sampled(slog.LevelWarn, "status: owner refused", "bad credentials", "drain", id)
		h.fail(w, http.StatusUnauthorized, asJSON, realm)
		return false
	}
	h.signedIn(r)
	return true
}

// signedIn reports a request whose credentials opened a page.
func (h *handler) signedIn(r *http.Request) {
	if h.cfg.SignedIn != nil && (h.cfg.AdminPassword != "" || !h.open()) {
		h.cfg.SignedIn(r.Context())
	}
}

// drainSnapshot is what a drain's pages show of id, for its owner or the
// admin, cleaned of every other drain; it has answered (404, 401, 503) and
// reports false when there is nothing to show.
func (h *handler) drainSnapshot(w http.ResponseWriter, r *http.Request, id string, asJSON bool) (*Snapshot, bool) {
	if !drainIDRE.MatchString(id) {
		h.fail(w, http.StatusNotFound, asJSON, "")
		return nil, false
	}
	if !h.admitOwner(w, r, id, asJSON) {
		return nil, false
	}
	snap, ok := h.snapshot(w, r, id, asJSON)
	if !ok {
		return nil, false
	}
	snap = clean(snap, id, h.addCommand(r.Host))
	if len(snap.Drains) == 0 {
		h.fail(w, http.StatusNotFound, asJSON, "")
		return nil, false
	}
	return snap, true
}

// snapshot asks the Source, and answers 503 itself on an error.
func (h *handler) snapshot(w http.ResponseWriter, r *http.Request, id string, asJSON bool) (*Snapshot, bool) {
	snap, err := h.src.Snapshot(r.Context(), id)
	if err == nil && snap == nil {
		err = errNoSnapshot
	}
	if err == nil && id == "" && h.cfg.Connections != nil {
		c := h.cfg.Connections()
		snap.Connections = &c
	}
	if err != nil {
		// The error may quote a database URL: logged, never shown.
		h.log.Error("status: snapshot", "drain", id, "err", err)
		h.fail(w, http.StatusServiceUnavailable, asJSON, "")
		return nil, false
	}
	return snap, true
}

var errNoSnapshot = errors.New("status: the source returned no snapshot")

// message is what an error answer says.
func message(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "drainmeter is running. Sign in to see the status of its drains."
	case http.StatusForbidden:
		return "drainmeter is running. ADMIN_PASSWORD is not set, so the status page is closed."
	case http.StatusNotFound:
		return "No such page."
	case http.StatusTooManyRequests:
		return "Too many failed sign-ins; try again in a moment."
	case http.StatusServiceUnavailable:
		return "The status is unavailable right now; try again in a moment."
	}
	return "The status page failed; the logs say why."
}

// fail is the one place that answers with an error: a small page (or JSON)
// that says that drainmeter runs, its version and the message of the
// status, and nothing about drains. A 401 asks for Basic auth in realm;
// the 403 of a closed page says how to open it.
func (h *handler) fail(w http.ResponseWriter, status int, asJSON bool, realm string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	msg := message(status)
	if asJSON {
		h.writeJSON(w, status, struct {
			Drainmeter string `json:"drainmeter"`
			Version    string `json:"version"`
			Error      string `json:"error"`
		}{"running", h.cfg.Version, msg})
		return
	}
	v := messageView{Title: http.StatusText(status), CSS: h.css, Version: h.cfg.Version, Message: msg, Status: status}
	if status == http.StatusForbidden {
		v.SetCommand = "heroku config:set ADMIN_PASSWORD=$(openssl rand -hex 16) -a " + h.thisApp()
		v.Version = "" // only how to set the password
	}
	h.render(w, status, "message.html", v)
}

func (h *handler) thisApp() string {
	if appNameRE.MatchString(h.cfg.ThisApp) {
		return h.cfg.ThisApp
	}
	return "THIS-APP"
}

// appNameRE is a Heroku app name, safe on a shell line.
var appNameRE = regexp.MustCompile(`^[a-z][a-z0-9\-]{1,29}$`)

// render executes a template into a buffer first: a template error answers
// 500 instead of half a page.
func (h *handler) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("status: render", "template", name, "err", err)
		if name != "message.html" {
			h.fail(w, http.StatusInternalServerError, false, "")
		} else {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (h *handler) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		h.log.Error("status: json", "err", err)
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
