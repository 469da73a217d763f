package drain

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/drainmeter/drainmeter/stats"
)

// A refusal is a request answered 401, 413, 415 or 503: counted on its
// drain (or on UnknownDrain), logged at WARN (one line a second per
// reason, internal/logsample), and answered at once with one line of
// plain text that says why — never a secret, a header or the body — and
// Connection: close, its body left unread.
type refusal struct {
	status int
	log    string        // the reason logged (a constant: it keys the samples)
	text   string        // the answer's line
	count  stats.Counter // the drain's counter of this kind of refusal
}

var (
	reasonNoCredentials = &refusal{http.StatusUnauthorized, "no credentials",
		"drainmeter: no credentials: the drain URL needs its user and password (https://USER:SECRET@HOST/logs)", stats.Unauthorized}
	reasonBadCredentials = &refusal{http.StatusUnauthorized, "bad credentials",
		"drainmeter: wrong drain id or secret (after `drains rotate-secret --finish`, only the new drain URL works)", stats.Unauthorized}
	reasonLookupsBusy = &refusal{http.StatusServiceUnavailable, "busy; retry later",
		"drainmeter: too many lookups of unknown drain ids right now; retry later", stats.Unavailable}
	reasonAuthUnavailable = &refusal{http.StatusServiceUnavailable, "cannot look the drain up",
		"drainmeter: cannot check the credentials right now (database unavailable); retry later", stats.Unavailable}
	reasonDedupUnavailable = &refusal{http.StatusServiceUnavailable, "dedup unavailable",
		"drainmeter: cannot tell whether this batch was counted already (database unavailable); retry later", stats.Unavailable}
	reasonContentType = &refusal{http.StatusUnsupportedMediaType, "unknown Content-Type (application/logplex-1, text/plain, application/octet-stream or none)",
		"drainmeter: Content-Type must be application/logplex-1, text/plain, application/octet-stream or absent", stats.Unsupported}
	reasonContentEncoding = &refusal{http.StatusUnsupportedMediaType, "unknown Content-Encoding (gzip or none)",
		"drainmeter: Content-Encoding must be gzip or absent", stats.Unsupported}
	reasonBodyTooLarge = &refusal{http.StatusRequestEntityTooLarge, "body too large",
		"drainmeter: request body over MAX_BODY_BYTES", stats.TooLarge}
	reasonDecompressedTooLarge = &refusal{http.StatusRequestEntityTooLarge, "decompressed body too large",
		"drainmeter: gzip body over 16 x MAX_BODY_BYTES once decompressed", stats.TooLarge}
	reasonRequestOverShare = &refusal{http.StatusRequestEntityTooLarge, "request over its memory share",
		"drainmeter: batch too large for this drain's share of the memory budget", stats.TooLarge}
	reasonBudgetFull = &refusal{http.StatusServiceUnavailable, "memory budget for request bodies full",
		"drainmeter: busy (memory for request bodies full); retry later", stats.Busy}
	reasonSlowBody = &refusal{http.StatusServiceUnavailable, "body slower than the minimum rate",
		"drainmeter: request body too slow (below the minimum rate); retry later", stats.SlowBody}
)

// refusalDrain returns the counters a refusal is counted on: the drain
// named (id), or UnknownDrain.
func (h *Handler) refusalDrain(id string) *stats.Drain {
	if id == "" {
		id = UnknownDrain
	}
	return h.stats.Drain(id)
}

// refuse answers r with why, counts it on ds and logs it (sampled).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, ds *stats.Drain, why *refusal, args ...any) {
	ds.Refused(why.count, time.Now())
	h.logs.Sampled(slog.LevelWarn, "drain refused", why.log, append([]any{"drain", ds.ID, "status", why.status}, args...)...)
	closeAfter(w, r)
	hd := w.Header()
	switch why.status {
	case http.StatusUnauthorized:
		hd.Set("WWW-Authenticate", `Basic realm="drainmeter"`)
	case http.StatusServiceUnavailable:
		hd.Set("Retry-After", "1") // logplex retries the batch
	}
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(why.text)+1))
	w.WriteHeader(why.status)
	_, _ = w.Write([]byte(why.text + "\n"))
}

// closeAfter makes the answer the connection's last and stops reading its
// body: net/http would otherwise read what is left of it (up to 256 KiB,
// as slowly as the sender sends it) before closing.
func closeAfter(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	setReadDeadline(w, time.Now())
}

// setReadDeadline sets the connection's read deadline: directly on
// net/http's own ResponseWriter (no allocation on the hot path), else
// through a ResponseController.
func setReadDeadline(w http.ResponseWriter, t time.Time) {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(t)
		return
	}
	if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		_ = http.NewResponseController(w).SetReadDeadline(t)
	}
}

// delayUntil waits until t, its body unread, or until the client is gone
// (it will not see the answer, or when it came).
func (h *Handler) delayUntil(r *http.Request, t time.Time) {
	d := time.Until(t)
	if h.cfg.RefusalDelay <= 0 || d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-r.Context().Done():
	}
}
