// Package drain is the HTTPS endpoint that Heroku's logplex POSTs to: Basic
// auth, octet-counted framing, dedup of retried batches, and a fast, empty
// 200 with a Content-Length (logplex cannot read chunked replies, gives up
// after 5 s, and drops a batch for good on any 4xx but 429).
//
// A batch is read and parsed completely before anything is counted: only a
// body read to its end (the gzip trailer checked, the last chunk received)
// has its id claimed and its measurements handed to the Sink, in one call,
// so a request whose body was cut counts nothing and its retry counts once.
package drain

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/internal/logsample"
	"github.com/drainmeter/drainmeter/internal/text"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
)

// Drain is an authenticated drain: where its series go and how they are named.
type Drain struct {
	ID           string // the key of its series and counters
	Prefix       string // metric name prefix (the drain URL's ?prefix= overrides it)
	SourcePrefix string // source prefix (the drain URL's ?source-prefix= overrides it)
	ProcessTypes bool   // also roll web.1, web.2 … into a "web" series
	// RouteMetrics and Routes turn on per-route series of router lines
	// (parse.Options).
	RouteMetrics parse.RouteMode
	Routes       []string
	// App, when set, is the sending app of a drain that several apps send
	// to: a dimension of each of its series (parse.Options.App).
	App string
}

// Authenticator finds the drain that Basic-auth credentials name. It returns
// ok=false for unknown or wrong credentials — then d.ID is the drain the
// credentials named when it exists (its refusals are counted there), or
// empty — and an error only when it could not tell (a database outage),
// which the handler answers with 503 so that logplex retries.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) (d Drain, ok bool, err error)
}

// ErrBusy is what an Authenticator returns (wrapped) when it will not look
// credentials up now, to protect what it asks (a rate of database lookups
// spent): the handler answers 503 and Retry-After, so that logplex retries.
var ErrBusy = errors.New("drain: busy")

// Sink takes one batch of a drain's measurements. The measurements and
// their bytes are valid only during the call.
type Sink interface {
	Add(now time.Time, d *stats.Drain, ms []parse.Measurement)
}

// Deduper remembers the ids of batches already counted.
type Deduper interface {
	// Claim reports whether the batch id is new for the drain, and records
	// it as counted: the caller counts the batch at once if it is. It is
	// called only once the whole body has been read and parsed. An error
	// means it could not tell (the handler answers 503: logplex retries).
	Claim(ctx context.Context, drain, id string, now time.Time) (bool, error)
}

// Config is the handler's configuration.
type Config struct {
	MaxBodyBytes         int64 // larger bodies are refused with 413
	MaxDecompressedBytes int64 // larger gzip bodies, once decompressed, are refused with 413 (default 16 × MaxBodyBytes)
	MaxFrameBytes        int   // larger frames are skipped and counted

	// Bodies is the memory budget's share for requests in flight: their
	// bodies as they stream, decompressed, and what parsing them holds
	// (see memory.go). A request that does not fit gets 503 and
	// Retry-After. nil: unbounded.
	Bodies *budget.Share
	// MaxDrainBytes bounds what one drain's requests hold at once, and so
	// one request: a request that alone needs more gets 413 (default: half
	// of Bodies).
	MaxDrainBytes int64

	// MinBodyRate (bytes a second) and BodyGrace bound how long a body may
	// take: BodyGrace + Content-Length/MinBodyRate (+ MaxBodyBytes/MinBodyRate
	// without a Content-Length). A slower body is cut and answered 503
	// (logplex retries). Defaults: DefaultMinBodyRate, DefaultBodyGrace.
	MinBodyRate int64
	BodyGrace   time.Duration
	// RefusalDelay is how long after its arrival a request whose
	// credentials are refused is answered, whether the drain id exists or
	// not (default DefaultRefusalDelay; negative: at once).
	RefusalDelay time.Duration
	// Accepted, if set, is called with the request's context once a batch
	// is answered 200: the web trusts its connection (internal/connlimit).
	Accepted func(ctx context.Context)

	// Refusals, when set, takes the refused pairs (their metric tokens
	// only) of each counted batch: the explorer's "why a metric is missing".
	Refusals Refusals
}

// The defaults of Config. Logplex posts batches of about 100 KiB from
// within the platform, in a few milliseconds; a body at 128 KiB/s or less
// is far slower than any real sender.
const (
	DefaultMinBodyRate  = 128 << 10
	DefaultBodyGrace    = time.Second
	DefaultRefusalDelay = 1250 * time.Millisecond
)

// UnknownDrain is the id under which refusals of credentials that name no
// drain are counted.
const UnknownDrain = stats.UnknownDrain

// MaxIDBytes is the longest Logplex-Frame-Id (or X-Request-Id) used to
// recognize a retried batch; logplex's are 32 hex digits. A longer one is
// ignored (the batch is counted as if it had none) and counted.
const MaxIDBytes = 128

// Handler serves POST /logs.
type Handler struct {
	cfg    Config
	auth   Authenticator
	sink   Sink
	dedup  Deduper
	stats  *stats.Registry
	logs   *logsample.Log
	now    func() time.Time
	states sync.Pool

	mu     sync.Mutex
	shares map[string]*budget.Share // each drain's part of cfg.Bodies
}

// NewHandler returns the drain endpoint. dedup may be nil.
func NewHandler(cfg Config, auth Authenticator, sink Sink, dedup Deduper, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Handler {
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = MaxFrameBytes
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = 16 * cfg.MaxBodyBytes
	}
	if cfg.MaxDrainBytes <= 0 {
		cfg.MaxDrainBytes = cfg.Bodies.Limit() / 2
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.BodyGrace <= 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.RefusalDelay == 0 {
		cfg.RefusalDelay = DefaultRefusalDelay
	}
	h := &Handler{cfg: cfg, auth: auth, sink: sink, dedup: dedup, stats: reg, logs: logsample.New(log, now), now: now,
		shares: map[string]*budget.Share{}}
	h.states.New = func() any {
		st := &reqState{fr: NewFrameReader(nil, cfg.MaxFrameBytes), p: parse.NewParser(parse.Options{})}
		st.p.OnReject = st.onReject
		return st
	}
	return h
}

// reqState is the reusable scratch space of one request, and the
// accounting of the memory it holds.
type reqState struct {
	fr    *FrameReader
	p     *parse.Parser
	batch []parse.Measurement
	arena []byte
	body  bodyReader
	unzip limitReader
	zr    *gzip.Reader
	meter meter
	first [1]byte // the body's first byte, read before the state was taken

	share    *budget.Share // the drain's share of the bodies budget
	limit    int64         // the most one request may hold
	held     int64         // what the request holds now (memory.go)
	reserved int64         // what it acquired from share
	refused  error         // errRequestTooLarge or errBudgetFull: stop
	batchCap int           // the capacities held counts
	arenaCap int
	scratch  int
	rejects  []Refusal // the first refused pairs of the request (refused.go)
}

func (st *reqState) collect(m *parse.Measurement) {
	if st.refused != nil {
		return
	}
	c := *m
	c.Name = st.copyBytes(m.Name)
	c.Unit = st.copyBytes(m.Unit)
	c.Source = st.copyBytes(m.Source)
	c.TypeSource = st.copyBytes(m.TypeSource)
	c.Member = st.copyBytes(m.Member)
	c.Dims = st.copyBytes(m.Dims)
	st.batch = append(st.batch, c)
	if cap(st.batch) != st.batchCap || cap(st.arena) != st.arenaCap {
		st.chargeGrowth()
	}
}

func (st *reqState) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	n := len(st.arena)
	st.arena = append(st.arena, b...)
	return st.arena[n:len(st.arena):len(st.arena)]
}

// bodyReader counts what it reads and keeps the first error of the request
// body itself (a broken connection, a body over the limit), which a frame
// reader would otherwise report as a framing error.
type bodyReader struct {
	r     io.Reader
	n     int64
	err   error
	first []byte // read before the request's state was taken: returned first
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.first) > 0 && len(p) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		b.n += int64(n)
		return n, nil
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// errDecompressedTooLarge is a gzip body that inflates past the limit.
var errDecompressedTooLarge = errors.New("decompressed body too large")

// limitReader is io.LimitReader that fails loudly at the limit.
type limitReader struct {
	r    io.Reader
	left int64
	err  error // the decompressor's own error (corrupt or cut data)
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.err = errDecompressedTooLarge
		return 0, l.err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

// isGzip reports whether a Content-Encoding is gzip; ok=false for an
// encoding drainmeter cannot read.
func encoding(h string) (gz, ok bool) {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "", "identity":
		return false, true
	case "gzip", "x-gzip":
		return true, true
	}
	return false, false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	user, pass, ok := r.BasicAuth()
	if !ok {
		// Nothing to guess: answered at once. Counted on the built-in
		// drain when there is one (any user name is its), else as unknown.
		d, _, _ := h.auth.Authenticate(r.Context(), "", "")
		h.refuse(w, r, h.refusalDrain(d.ID), reasonNoCredentials)
		return
	}
	d, ok, err := h.auth.Authenticate(r.Context(), user, pass)
	if err != nil {
		ds := h.refusalDrain(d.ID)
		if errors.Is(err, ErrBusy) {
			h.refuse(w, r, ds, reasonLookupsBusy, "err", err)
		} else {
			h.refuse(w, r, ds, reasonAuthUnavailable, "err", err)
		}
		return
	}
	if !ok {
		// Answered RefusalDelay after its arrival, whether the drain id
		// exists or not (no oracle of ids), its body unread.
		h.delayUntil(r, arrived.Add(h.cfg.RefusalDelay))
		h.refuse(w, r, h.refusalDrain(d.ID), reasonBadCredentials, "user", text.Clip(user, MaxLoggedNameBytes))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/logplex-1" && mt != "text/plain" && mt != "application/octet-stream" {
			h.refuse(w, r, h.stats.Drain(d.ID), reasonContentType)
			return
		}
	}
	gz, known := encoding(r.Header.Get("Content-Encoding"))
	if !known {
		h.refuse(w, r, h.stats.Drain(d.ID), reasonContentEncoding)
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.refuse(w, r, h.stats.Drain(d.ID), reasonBodyTooLarge, "limit_bytes", h.cfg.MaxBodyBytes)
		return
	}
	// The body's deadline: a minimum rate after a grace.
	expect := r.ContentLength
	if expect < 0 {
		expect = h.cfg.MaxBodyBytes
	}
	setReadDeadline(w, arrived.Add(h.cfg.BodyGrace+time.Duration(float64(expect)/float64(h.cfg.MinBodyRate)*float64(time.Second))))
	// Nothing of the request's memory is taken before its body's first
	// bytes arrive: a slow sender holds a goroutine, not a buffer.
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	var first [1]byte
	nfirst, err := body.Read(first[:])
	if err != nil && err != io.EOF {
		h.finishUnread(w, r, d.ID, 0, err, "body")
		return
	}

	ds := h.stats.Drain(d.ID)
	ds.SeenApp(text.Clip(user, MaxLoggedNameBytes))
	now := h.now()

	id := r.Header.Get("Logplex-Frame-Id")
	if id == "" {
		id = r.Header.Get("X-Request-Id") // log-shuttle
	}
	if len(id) > MaxIDBytes {
		ds.Add(stats.IDsIgnored, 1)
		id = ""
	}
	if id != "" && user != d.ID {
		id = appKey(user) + ":" + id // the built-in drain: one id space per sending app
	}

	st := h.states.Get().(*reqState)
	defer h.putState(st)
	st.batch, st.arena = st.batch[:0], st.arena[:0]
	st.begin(h.share(d.ID), h.cfg.MaxDrainBytes, gz)
	defer st.end()
	if st.refused != nil {
		h.refuseMemory(w, r, ds, st.refused)
		return
	}
	st.first = first
	st.body = bodyReader{r: body, first: st.first[:nfirst]}
	var src io.Reader = &st.body
	if gz {
		if st.zr == nil {
			st.zr = new(gzip.Reader)
		}
		if err := st.zr.Reset(src); err != nil {
			h.finishUnread(w, r, d.ID, st.body.n, err, "gzip header")
			return
		}
		st.unzip = limitReader{r: st.zr, left: h.cfg.MaxDecompressedBytes}
		src = &st.unzip
	}
	st.meter = meter{r: src, st: st}
	src = &st.meter
	q := r.URL.Query()
	opts := parse.Options{Prefix: d.Prefix, SourcePrefix: d.SourcePrefix, ProcessTypes: d.ProcessTypes,
		RouteMetrics: d.RouteMetrics, Routes: d.Routes, App: d.App}
	if q.Has("prefix") {
		opts.Prefix = q.Get("prefix")
	}
	if q.Has("source-prefix") {
		opts.SourcePrefix = q.Get("source-prefix")
	}
	st.p.Reset(opts)
	st.rejects = st.rejects[:0]
	st.fr.Reset(src)

	var accepted, badHeader uint64
	for st.fr.Next() {
		if st.p.Frame(st.fr.Bytes(), now, st.collect) {
			accepted++
		} else {
			badHeader++
		}
		st.chargeGrowth()
	}
	oversized := uint64(st.fr.Oversized())
	ferr := st.fr.Err()
	// Read the rest, whatever happened: only a body read to its end (the
	// gzip trailer checked, the last chunk received) counts.
	if st.refused == nil {
		_, _ = io.Copy(io.Discard, src)
	}
	if gz && st.refused == nil {
		_, _ = io.Copy(io.Discard, &st.body) // anything after the gzip stream
	}
	if st.refused != nil { // the rest is not read: the connection is closed after the answer
		h.refuseMemory(w, r, ds, st.refused)
		return
	}
	if err := st.body.err; err != nil {
		h.finishUnread(w, r, d.ID, st.body.n, err, "body")
		return
	}
	if gz && st.unzip.err != nil {
		h.finishUnread(w, r, d.ID, st.body.n, st.unzip.err, "gzip body")
		return
	}

	var framing uint64
	if ferr != nil {
		// Bad framing in a complete body: the frames before it count; the
		// rest of the batch is counted as rejected (logplex's count tells
		// how many there were, when it is believable).
		framing = 1
		if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 32); err == nil && n <= maxMsgCount {
			if seen := accepted + badHeader + oversized; n > seen+1 {
				framing = n - seen
			}
		}
		h.logs.Sampled(slog.LevelInfo, "drain frame rejected", "bad framing", "drain", d.ID, "err", ferr, "frames_before", accepted, "rejected", framing)
	}
	if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 64); err == nil && n != accepted+badHeader+oversized+framing {
		ds.Add(stats.MsgCountMismatch, 1)
	}
	// log-shuttle reports its own losses in headers: counted as its L12
	// and L13 lines are (once, when the batch carries both).
	st.p.Losses(lossHeader(r.Header, "Logshuttle-Drops", "Logplex-Drop-Count"),
		lossHeader(r.Header, "Logshuttle-Lost", "Logplex-Lost-Count"), now, st.collect)

	// The whole batch is read: claim its id, then count it.
	if id != "" && h.dedup != nil {
		fresh, err := h.dedup.Claim(r.Context(), d.ID, id, now)
		if err != nil {
			h.refuse(w, r, ds, reasonDedupUnavailable, "err", err)
			return
		}
		if !fresh {
			ds.Add(stats.Duplicates, 1)
			h.accepted(r)
			reply(w, http.StatusOK)
			return
		}
	}
	h.sink.Add(now, ds, st.batch)
	ds.Batch(now)
	ds.Add(stats.Requests, 1)
	ds.Add(stats.FramesAccepted, accepted)
	ds.Add(stats.FramesRejected, badHeader+oversized+framing)
	ds.Add(stats.RejectedBadHeader, badHeader)
	ds.Add(stats.RejectedOversized, oversized)
	ds.Add(stats.RejectedFraming, framing)
	ds.Add(stats.Measurements, uint64(len(st.batch)))
	rj := &st.p.Rejects
	ds.Add(stats.PairsRejected, rj.Total()-rj[parse.BadHeader])
	ds.Add(stats.PairsBadValue, rj[parse.BadValue])
	ds.Add(stats.PairsEmptyName, rj[parse.EmptyName])
	ds.Add(stats.PairsEmptyMember, rj[parse.EmptyMember])
	ds.Add(stats.PairsLongMember, rj[parse.LongMember])
	ds.Add(stats.PairsUnterminatedQuote, rj[parse.UnterminatedQuote])
	ds.Add(stats.PairsLongName, rj[parse.LongName])
	ds.Add(stats.LogplexDropped, st.p.Dropped)
	ds.Add(stats.LogplexLost, st.p.Lost)
	ds.Add(stats.BadTimestamp, st.p.BadTimestamps)
	if len(st.rejects) > 0 && h.cfg.Refusals != nil {
		h.cfg.Refusals.Refused(d.ID, now, st.rejects)
	}
	h.accepted(r)
	reply(w, http.StatusOK)
}

func (h *Handler) accepted(r *http.Request) {
	if h.cfg.Accepted != nil {
		h.cfg.Accepted(r.Context())
	}
}

// share returns the drain's part of the bodies budget.
func (h *Handler) share(drain string) *budget.Share {
	if h.cfg.Bodies == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.shares[drain]
	if s == nil {
		s = h.cfg.Bodies.Sub(drain, h.cfg.MaxDrainBytes)
		h.shares[drain] = s
	}
	return s
}

func (h *Handler) putState(st *reqState) {
	if st.reusable() {
		h.states.Put(st)
	}
}

// refuseMemory answers a request that its memory share cannot hold: 413
// for one that alone is too large (logplex drops it; a retry would fail the
// same way), 503 and Retry-After when the drain's or the process's share is
// full (logplex retries).
func (h *Handler) refuseMemory(w http.ResponseWriter, r *http.Request, ds *stats.Drain, err error) {
	if errors.Is(err, errRequestTooLarge) {
		h.refuse(w, r, ds, reasonRequestOverShare, "limit_bytes", h.cfg.MaxDrainBytes)
		return
	}
	h.refuse(w, r, ds, reasonBudgetFull)
}

// appKey is what keys an app's batch ids in the built-in drain, which
// takes any user name: the name itself, or a hash of a long one, so that
// the ids remembered (in memory and in Postgres) stay short.
func appKey(user string) string {
	if len(user) <= MaxLoggedNameBytes {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// maxMsgCount bounds the Logplex-Msg-Count believed (logplex sends at most
// a few hundred frames a batch).
const maxMsgCount = 100_000

// MaxLossCount bounds the messages a loss header may report: a sender that
// lost more than that in one go is not believed.
const MaxLossCount = 1_000_000_000

// lossHeader reads a count of lost messages from the first of the headers
// that holds one (a whole number up to MaxLossCount); 0 if none does.
func lossHeader(h http.Header, names ...string) uint64 {
	for _, name := range names {
		if v := h.Get(name); v != "" {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n <= MaxLossCount {
				return n
			}
		}
	}
	return 0
}

// finishUnread answers a request whose body could not be read whole:
// nothing of it counts, so that the sender's retry counts once.
func (h *Handler) finishUnread(w http.ResponseWriter, r *http.Request, drain string, read int64, err error, what string) {
	var tooBig *http.MaxBytesError
	ds := h.stats.Drain(drain)
	switch {
	case errors.As(err, &tooBig):
		h.refuse(w, r, ds, reasonBodyTooLarge, "limit_bytes", h.cfg.MaxBodyBytes)
	case errors.Is(err, errDecompressedTooLarge):
		h.refuse(w, r, ds, reasonDecompressedTooLarge, "limit_bytes", h.cfg.MaxDecompressedBytes)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Slower than the minimum rate: cut, and answered 503 in case it
		// is a real sender on a bad network (logplex retries).
		h.refuse(w, r, ds, reasonSlowBody, "read_bytes", read)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		// The bytes all arrived but are not gzip: a retry would fail the same way.
		h.logs.Sampled(slog.LevelInfo, "drain refused", "corrupt "+what, "drain", drain, "err", err)
		closeAfter(w, r)
		reply(w, http.StatusBadRequest)
	default:
		// The connection broke (or the gzip stream was cut): nothing counts.
		h.logs.Sampled(slog.LevelInfo, "drain body unread; nothing counted", "cut short", "drain", drain, "err", err, "read_bytes", read)
		closeAfter(w, r)
		reply(w, http.StatusBadRequest)
	}
}

// reply answers with an empty body and an explicit Content-Length: logplex's
// HTTP client reads bodies by Content-Length only.
func reply(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}
