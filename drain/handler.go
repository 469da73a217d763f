// Package drain is the HTTPS endpoint that Heroku's logplex POSTs to: Basic
// auth, octet-counted framing, dedup of retried batches, and a fast, empty
// 200 with a Content-Length (logplex cannot read chunked replies, gives up
// after 5 s, and drops a batch for good on any 4xx but 429).
//
// A batch is parsed completely before anything is counted: its measurements
// go to the Sink in one call, so a request whose body could not be read in
// full counts nothing and its retry counts once.
package drain

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// Drain is an authenticated drain: where its series go and how they are named.
type Drain struct {
	ID           string // the key of its series and counters
	Prefix       string // metric name prefix (the drain URL's ?prefix= overrides it)
	SourcePrefix string // source prefix (the drain URL's ?source-prefix= overrides it)
	ProcessTypes bool   // also roll web.1, web.2 … into a "web" series
}

// Authenticator finds the drain that Basic-auth credentials name. It returns
// ok=false for unknown or wrong credentials and an error only when it could
// not tell (a database outage), which the handler answers with 503 so that
// logplex retries.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) (d Drain, ok bool, err error)
}

// Sink takes one batch of a drain's measurements. The measurements and
// their bytes are valid only during the call.
type Sink interface {
	Add(now time.Time, d *stats.Drain, ms []parse.Measurement)
}

// Deduper remembers the ids of batches already counted.
type Deduper interface {
	// Claim reports whether id is new for the drain, and reserves it.
	Claim(drain, id string, now time.Time) bool
	// Release forgets a claim whose batch was not counted, so that a retry is.
	Release(drain, id string)
	// Commit records that the claimed batch was counted.
	Commit(drain, id string)
}

// Config is the handler's configuration.
type Config struct {
	MaxBodyBytes  int64 // larger bodies are refused with 413
	MaxFrameBytes int   // larger frames are skipped and counted
}

// Handler serves POST /logs.
type Handler struct {
	cfg    Config
	auth   Authenticator
	sink   Sink
	dedup  Deduper
	stats  *stats.Registry
	log    *slog.Logger
	now    func() time.Time
	states sync.Pool
}

// NewHandler returns the drain endpoint. dedup may be nil.
func NewHandler(cfg Config, auth Authenticator, sink Sink, dedup Deduper, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Handler {
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = MaxFrameBytes
	}
	h := &Handler{cfg: cfg, auth: auth, sink: sink, dedup: dedup, stats: reg, log: log, now: now}
	h.states.New = func() any {
		return &reqState{fr: NewFrameReader(nil, cfg.MaxFrameBytes), p: parse.NewParser(parse.Options{})}
	}
	return h
}

// reqState is the reusable scratch space of one request.
type reqState struct {
	fr    *FrameReader
	p     *parse.Parser
	batch []parse.Measurement
	arena []byte
	cr    countingReader
}

func (st *reqState) collect(m *parse.Measurement) {
	c := *m
	c.Name = st.copyBytes(m.Name)
	c.Unit = st.copyBytes(m.Unit)
	c.Source = st.copyBytes(m.Source)
	c.TypeSource = st.copyBytes(m.TypeSource)
	c.Member = st.copyBytes(m.Member)
	st.batch = append(st.batch, c)
}

func (st *reqState) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	n := len(st.arena)
	st.arena = append(st.arena, b...)
	return st.arena[n:len(st.arena):len(st.arena)]
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		unauthorized(w)
		return
	}
	d, ok, err := h.auth.Authenticate(r.Context(), user, pass)
	if err != nil {
		h.log.Error("drain auth unavailable", "err", err)
		reply(w, http.StatusServiceUnavailable)
		return
	}
	if !ok {
		h.log.Info("drain refused", "reason", "bad credentials", "user", user)
		unauthorized(w)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/logplex-1" && mt != "text/plain" && mt != "application/octet-stream" {
			reply(w, http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		reply(w, http.StatusRequestEntityTooLarge)
		return
	}
	ds := h.stats.Drain(d.ID)
	ds.SeenApp(user)
	now := h.now()

	id := r.Header.Get("Logplex-Frame-Id")
	if id == "" {
		id = r.Header.Get("X-Request-Id") // log-shuttle
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	if id != "" && h.dedup != nil && !h.dedup.Claim(d.ID, id, now) {
		ds.Add(stats.Duplicates, 1)
		_, _ = io.Copy(io.Discard, body)
		reply(w, http.StatusOK)
		return
	}
	release := func() {
		if id != "" && h.dedup != nil {
			h.dedup.Release(d.ID, id)
		}
	}

	st := h.states.Get().(*reqState)
	defer h.states.Put(st)
	st.batch, st.arena = st.batch[:0], st.arena[:0]
	st.cr = countingReader{r: body}
	var src io.Reader = &st.cr
	if r.Header.Get("Content-Encoding") == "gzip" { // log-shuttle may compress
		zr, err := gzip.NewReader(src)
		if err != nil {
			release()
			ds.Add(stats.FramesRejected, 1)
			reply(w, http.StatusOK) // a 4xx would make the sender drop it anyway
			return
		}
		defer zr.Close()
		src = io.LimitReader(zr, 16*h.cfg.MaxBodyBytes)
	}
	q := r.URL.Query()
	opts := parse.Options{Prefix: d.Prefix, SourcePrefix: d.SourcePrefix, ProcessTypes: d.ProcessTypes}
	if q.Has("prefix") {
		opts.Prefix = q.Get("prefix")
	}
	if q.Has("source-prefix") {
		opts.SourcePrefix = q.Get("source-prefix")
	}
	st.p.Reset(opts)
	st.fr.Reset(src)

	var accepted, rejected uint64
	for st.fr.Next() {
		if st.p.Frame(st.fr.Bytes(), now, st.collect) {
			accepted++
		} else {
			rejected++
		}
	}
	rejected += uint64(st.fr.Oversized())
	ferr := st.fr.Err()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(ferr, &tooBig):
		release()
		h.log.Info("drain refused", "drain", d.ID, "reason", "body too large", "limit", h.cfg.MaxBodyBytes)
		reply(w, http.StatusRequestEntityTooLarge)
		return
	case ferr != nil && r.ContentLength >= 0 && st.cr.n < r.ContentLength && r.Header.Get("Content-Encoding") == "":
		// The connection broke before the body arrived: count nothing, so
		// that logplex's retry of the same batch counts once.
		release()
		h.log.Info("drain body unread", "drain", d.ID, "err", ferr, "read", st.cr.n, "content_length", r.ContentLength)
		return
	case ferr != nil:
		// Bad framing: the frames before it count; the rest of the batch is
		// counted as rejected (logplex's count tells how many there were).
		rest := uint64(1)
		if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 32); err == nil && n > accepted+rejected+1 {
			rest = n - accepted - rejected
		}
		rejected += rest
		h.log.Info("drain frame rejected", "drain", d.ID, "err", ferr, "frames_before", accepted, "rejected", rest)
		_, _ = io.Copy(io.Discard, body)
	}

	if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 32); err == nil && n != accepted+rejected {
		ds.Add(stats.MsgCountMismatch, 1)
	}
	h.sink.Add(now, ds, st.batch)
	if id != "" && h.dedup != nil {
		h.dedup.Commit(d.ID, id)
	}
	ds.Add(stats.Requests, 1)
	ds.Add(stats.FramesAccepted, accepted)
	ds.Add(stats.FramesRejected, rejected)
	ds.Add(stats.Measurements, uint64(len(st.batch)))
	ds.Add(stats.PairsRejected, st.p.Rejects.Total()-st.p.Rejects[parse.BadHeader])
	ds.Add(stats.LogplexDropped, st.p.Dropped)
	ds.Add(stats.LogplexLost, st.p.Lost)
	reply(w, http.StatusOK)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="drainmeter"`)
	reply(w, http.StatusUnauthorized)
}

// reply answers with an empty body and an explicit Content-Length: logplex's
// HTTP client reads bodies by Content-Length only.
func reply(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}
