package drain

import (
	"compress/gzip"
	"errors"
	"log/slog"
	"net/http"
	"os"
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
		"drainmeter: too many failed credentials right now; retry later", stats.Unavailable}
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

// failure is a refusal of a request, with the drain it is counted on and
// what its log line says besides the reason: the error the steps of a
// request (admit, read, claim) return, which fail answers.
type failure struct {
	why  *refusal
	ds   *stats.Counters
	args []any // logged after the drain and the status
}

func (f *failure) Error() string { return f.why.log }

// refused returns the failure of a request for why, counted on ds.
func refused(ds *stats.Counters, why *refusal, args ...any) error {
	return &failure{why: why, ds: ds, args: args}
}

// readError is a body that could not be read whole (what: "body", "gzip
// header" or "gzip body"; read: the bytes of it that arrived): nothing of
// it counts, so that the sender's retry counts once.
type readError struct {
	ds   *stats.Counters
	what string
	read int64
	err  error
}

func (e *readError) Error() string { return e.what + ": " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// memoryFailure is a request that its memory share cannot hold (err is
// errRequestTooLarge or errBudgetFull): 413 for one that alone is too
// large (logplex drops it; a retry would fail the same way), 503 and
// Retry-After when the drain's or the process's share is full (logplex
// retries). limit is the most one request may hold (Config.MaxDrainBytes).
func memoryFailure(ds *stats.Counters, err error, limit int64) error {
	if errors.Is(err, errRequestTooLarge) {
		return refused(ds, reasonRequestOverShare, "limit_bytes", limit)
	}
	return refused(ds, reasonBudgetFull)
}

// fail answers a request that is not counted, the one place that maps
// what went wrong to the answer's status, the drain's counter and the log
// line: a failure as its refusal says; a readError as the refusal of its
// cause (a body too large, or too slow), or else 400, logged but not
// counted as a refusal (the body was corrupt or cut: the sender retries or
// drops it, as the client it is).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var f *failure
	if errors.As(err, &f) {
		h.refuse(w, r, f.ds, f.why, f.args...)
		return
	}
	var re *readError
	if !errors.As(err, &re) {
		// No step returns anything else: answered so that the sender
		// retries, nothing counted.
		h.logs.Sampled(slog.LevelError, "drain request failed", "internal error", "err", err)
		closeAfter(w, r)
		w.Header().Set("Retry-After", "1")
		reply(w, http.StatusServiceUnavailable)
		return
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(re.err, &tooBig):
		h.refuse(w, r, re.ds, reasonBodyTooLarge, "limit_bytes", h.cfg.MaxBodyBytes)
	case errors.Is(re.err, errDecompressedTooLarge):
		h.refuse(w, r, re.ds, reasonDecompressedTooLarge, "limit_bytes", h.cfg.MaxDecompressedBytes)
	case errors.Is(re.err, os.ErrDeadlineExceeded):
		// Slower than the minimum rate: cut, and answered 503 in case it
		// is a real sender on a bad network (logplex retries).
		h.refuse(w, r, re.ds, reasonSlowBody, "read_bytes", re.read)
	case errors.Is(re.err, gzip.ErrChecksum), errors.Is(re.err, gzip.ErrHeader):
		// The bytes all arrived but are not gzip: a retry would fail the same way.
		h.logs.Sampled(slog.LevelInfo, "drain refused", "corrupt "+re.what, "drain", re.ds.ID, "err", re.err)
		closeAfter(w, r)
		reply(w, http.StatusBadRequest)
	default:
		// The connection broke (or the gzip stream was cut): nothing counts.
		h.logs.Sampled(slog.LevelInfo, "drain body unread; nothing counted", "cut short", "drain", re.ds.ID, "err", re.err, "read_bytes", re.read)
		closeAfter(w, r)
		reply(w, http.StatusBadRequest)
	}
}

// refusalDrain returns the counters a refusal is counted on: the drain
// named (id), or UnknownDrain.
func (h *Handler) refusalDrain(id string) *stats.Counters {
	if id == "" {
		id = UnknownDrain
	}
	return h.stats.Drain(id)
}

// refuse answers r with why, counts it on ds and logs it (sampled).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, ds *stats.Counters, why *refusal, args ...any) {
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
