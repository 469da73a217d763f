// Package drain is the HTTPS endpoint that Heroku's logplex POSTs to: Basic
// auth, octet-counted framing, dedup of retried batches, and a fast, empty
// 200 with a Content-Length (logplex cannot read chunked replies, gives up
// after 5 s, and drops a batch for good on any 4xx but 429).
//
// A batch is read and parsed completely before anything is counted: only a
// body read to its end (the gzip trailer checked, the last chunk received)
// has its id claimed and its measurements handed to the Sink, in one call,
// so a request whose body was cut counts nothing and its retry counts once.
//
// ServeHTTP takes a request through four steps, and any step's error to
// fail (refusal.go), the one place that picks the answer's status, the
// drain's counter and the log line:
//
//   - admit: the credentials (an Authenticator names the Caller: the drain
//     and how its series are named), the Content-Type, Content-Encoding and
//     Content-Length, the body's deadline, and its first bytes; nothing of
//     the request's memory is taken before then.
//   - read (readLogplex): the body read whole through the readers of body.go
//     (limits, gzip, the slow-body deadline, each byte charged to the
//     drain's memory share as it arrives, memory.go), its frames parsed
//     into a batch of measurements.
//   - claim: the batch's id, if it has one, recorded as counted; a retry
//     of a batch already counted is answered 200 and counts nothing.
//   - count: the batch handed to the Sink, its drain's counters added.
//
// A second input — OTLP/HTTP logs from Heroku Fir telemetry drains — is a
// second read step beside readLogplex: its handler admits a request with
// its own mediaTypes (application/x-protobuf, application/json), reads the
// body through the same readers and memory accounting (reqState.open and
// finish) and passes each log record's text to the same parse.Parser, then
// claims with an empty id (OTLP batches have none: at-least-once) and
// counts. What it adds is its own answers: an OTLP response body, and a
// google.rpc.Status body where fail writes a line of text.
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

// Caller is the drain a request authenticated as: which drain it is and how
// its series are named.
type Caller struct {
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
	Authenticate(ctx context.Context, user, password string) (d Caller, ok bool, err error)
}

// ErrBusy is what an Authenticator returns (wrapped) when it will not look
// credentials up now, to protect what it asks (a rate of database lookups
// spent): the handler answers 503 and Retry-After, so that logplex retries.
var ErrBusy = errors.New("drain: busy")

// Sink takes one batch of a drain's measurements. The measurements and
// their bytes are valid only during the call.
type Sink interface {
	Add(now time.Time, d *stats.Counters, ms []parse.Measurement)
}

// Deduper claims batch ids (Logplex-Frame-Id, or X-Request-Id): a batch
// counts only when its id's claim is the first; a later claim of the same
// id is a duplicate, a retry already counted. RecentIDs claims in this
// process's memory; postgres.Claims across dynos.
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

// ServeHTTP answers a logplex batch in four steps — admit, read, claim,
// count — and any step's error through fail.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, err := h.admit(w, r, time.Now(), logplexTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := h.batchID(r, &a)
	st := h.states.Get().(*reqState)
	defer h.putState(st)
	st.batch, st.arena = st.batch[:0], st.arena[:0]
	st.begin(h.share(a.d.ID), h.cfg.MaxDrainBytes, a.gz)
	defer st.end()
	fr, err := h.readLogplex(r, &a, st)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	fresh, err := h.claim(r.Context(), &a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if fresh {
		h.count(&a, st.batch, fr, st.p, st.rejects)
	} else {
		a.ds.Add(stats.Duplicates, 1)
	}
	h.accepted(r)
	reply(w, http.StatusOK)
}

// admitted is a request whose credentials name a drain, whose headers are
// acceptable, and whose body's first bytes arrived: nothing of its memory
// is taken before then (a slow sender holds a goroutine, not a buffer).
type admitted struct {
	d      Caller
	ds     *stats.Counters // the drain's counters
	user   string          // the Basic-auth user name (the sending app, on the built-in drain)
	now    time.Time       // when its batch is counted
	gz     bool            // the body is gzip
	body   io.Reader       // the body after its first bytes, bounded by MaxBodyBytes
	first  [1]byte         // the body's first bytes
	nfirst int
}

// mediaTypes is what Content-Types an input accepts (the media type only;
// a request without one is accepted), and the refusal of any other.
type mediaTypes struct {
	ok    func(mediaType string) bool
	other *refusal
}

// logplexTypes are logplex's and log-shuttle's Content-Types.
var logplexTypes = mediaTypes{
	ok: func(mt string) bool {
		return mt == "application/logplex-1" || mt == "text/plain" || mt == "application/octet-stream"
	},
	other: reasonContentType,
}

// admit checks a request that arrived at arrived — its credentials (wrong
// ones are answered RefusalDelay after its arrival, whether the drain id
// exists or not: no oracle of ids), its Content-Type (types), its
// Content-Encoding and its Content-Length — sets its body's deadline, and
// waits for the body's first bytes.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, arrived time.Time, types mediaTypes) (admitted, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		// Nothing to guess: answered at once. Counted on the built-in
		// drain when there is one (any user name is its), else as unknown.
		d, _, _ := h.auth.Authenticate(r.Context(), "", "")
		return admitted{}, refused(h.refusalDrain(d.ID), reasonNoCredentials)
	}
	d, ok, err := h.auth.Authenticate(r.Context(), user, pass)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			// Failed credentials rate-limited: answered as late as a
			// wrong secret, whatever ran out (no oracle of ids).
			h.delayUntil(r, arrived.Add(h.cfg.RefusalDelay))
			return admitted{}, refused(h.refusalDrain(d.ID), reasonLookupsBusy, "err", err)
		}
		return admitted{}, refused(h.refusalDrain(d.ID), reasonAuthUnavailable, "err", err)
	}
	if !ok {
		h.delayUntil(r, arrived.Add(h.cfg.RefusalDelay)) // its body unread
		return admitted{}, refused(h.refusalDrain(d.ID), reasonBadCredentials, "user", text.Clip(user, MaxLoggedNameBytes))
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if !types.ok(mt) {
			return admitted{}, refused(h.stats.Drain(d.ID), types.other)
		}
	}
	gz, known := encoding(r.Header.Get("Content-Encoding"))
	if !known {
		return admitted{}, refused(h.stats.Drain(d.ID), reasonContentEncoding)
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return admitted{}, refused(h.stats.Drain(d.ID), reasonBodyTooLarge, "limit_bytes", h.cfg.MaxBodyBytes)
	}
	h.bodyDeadline(w, r, arrived)
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	var first [1]byte
	nfirst, err := body.Read(first[:])
	if err != nil && err != io.EOF {
		return admitted{}, &readError{ds: h.stats.Drain(d.ID), what: "body", err: err}
	}
	a := admitted{d: d, user: user, gz: gz, body: body, first: first, nfirst: nfirst}
	a.ds = h.stats.Drain(d.ID)
	a.ds.SeenApp(text.Clip(user, MaxLoggedNameBytes))
	a.now = h.now()
	return a, nil
}

// batchID returns the id that recognizes a retried logplex batch (empty:
// none), keyed by the sending app on the built-in drain.
func (h *Handler) batchID(r *http.Request, a *admitted) string {
	id := r.Header.Get("Logplex-Frame-Id")
	if id == "" {
		id = r.Header.Get("X-Request-Id") // log-shuttle
	}
	if len(id) > MaxIDBytes {
		a.ds.Add(stats.IDsIgnored, 1)
		id = ""
	}
	if id != "" && a.user != a.d.ID {
		id = appKey(a.user) + ":" + id // the built-in drain: one id space per sending app
	}
	return id
}

// frames counts a logplex batch's frames.
type frames struct {
	accepted, badHeader, oversized, framing uint64
}

// readLogplex reads and parses a logplex body whole into st.batch, with
// the losses log-shuttle reports in headers. An error means the body could
// not be read whole, or its memory share could not hold it: nothing of it
// counts.
func (h *Handler) readLogplex(r *http.Request, a *admitted, st *reqState) (frames, error) {
	var fr frames
	if st.refused != nil {
		return fr, memoryFailure(a.ds, st.refused, st.limit)
	}
	src, err := st.open(a, h.cfg.MaxDecompressedBytes)
	if err != nil {
		return fr, err
	}
	q := r.URL.Query()
	opts := parse.Options{Prefix: a.d.Prefix, SourcePrefix: a.d.SourcePrefix, ProcessTypes: a.d.ProcessTypes,
		RouteMetrics: a.d.RouteMetrics, Routes: a.d.Routes, App: a.d.App}
	if q.Has("prefix") {
		opts.Prefix = q.Get("prefix")
	}
	if q.Has("source-prefix") {
		opts.SourcePrefix = q.Get("source-prefix")
	}
	st.p.Reset(opts)
	st.rejects = st.rejects[:0]
	st.fr.Reset(src)
	for st.fr.Next() {
		if st.p.Frame(st.fr.Bytes(), a.now, st.collect) {
			fr.accepted++
		} else {
			fr.badHeader++
		}
		st.chargeGrowth()
	}
	fr.oversized = uint64(st.fr.Oversized())
	ferr := st.fr.Err()
	if err := st.finish(a, src); err != nil {
		return fr, err
	}
	if ferr != nil {
		// Bad framing in a complete body: the frames before it count; the
		// rest of the batch is counted as rejected (logplex's count tells
		// how many there were, when it is believable).
		fr.framing = 1
		if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 32); err == nil && n <= maxMsgCount {
			if seen := fr.accepted + fr.badHeader + fr.oversized; n > seen+1 {
				fr.framing = n - seen
			}
		}
		h.logs.Sampled(slog.LevelInfo, "drain frame rejected", "bad framing", "drain", a.d.ID, "err", ferr, "frames_before", fr.accepted, "rejected", fr.framing)
	}
	if n, err := strconv.ParseUint(r.Header.Get("Logplex-Msg-Count"), 10, 64); err == nil && n != fr.accepted+fr.badHeader+fr.oversized+fr.framing {
		a.ds.Add(stats.MsgCountMismatch, 1)
	}
	// log-shuttle reports its own losses in headers: counted as its L12
	// and L13 lines are (once, when the batch carries both).
	st.p.Losses(lossHeader(r.Header, "Logshuttle-Drops", "Logplex-Drop-Count"),
		lossHeader(r.Header, "Logshuttle-Lost", "Logplex-Lost-Count"), a.now, st.collect)
	return fr, nil
}

// claim reports whether a batch read whole is new (id empty: no id, so
// new), and records its id as counted. An error means it could not tell.
func (h *Handler) claim(ctx context.Context, a *admitted, id string) (bool, error) {
	if id == "" || h.dedup == nil {
		return true, nil
	}
	fresh, err := h.dedup.Claim(ctx, a.d.ID, id, a.now)
	if err != nil {
		return false, refused(a.ds, reasonDedupUnavailable, "err", err)
	}
	return fresh, nil
}

// count hands a new batch's measurements to the Sink and counts the batch
// on its drain: its frames, and what the parser rejected and was told of;
// the first refused pairs (rejects) go to Config.Refusals.
func (h *Handler) count(a *admitted, batch []parse.Measurement, fr frames, p *parse.Parser, rejects []Refusal) {
	ds, now := a.ds, a.now
	h.sink.Add(now, ds, batch)
	ds.Batch(now)
	ds.Add(stats.Requests, 1)
	ds.Add(stats.FramesAccepted, fr.accepted)
	ds.Add(stats.FramesRejected, fr.badHeader+fr.oversized+fr.framing)
	ds.Add(stats.RejectedBadHeader, fr.badHeader)
	ds.Add(stats.RejectedOversized, fr.oversized)
	ds.Add(stats.RejectedFraming, fr.framing)
	ds.Add(stats.Measurements, uint64(len(batch)))
	ds.AddPairRejects(&p.Rejects)
	ds.Add(stats.LogplexDropped, p.Dropped)
	ds.Add(stats.LogplexLost, p.Lost)
	ds.Add(stats.BadTimestamp, p.BadTimestamps)
	if len(rejects) > 0 && h.cfg.Refusals != nil {
		h.cfg.Refusals.Refused(a.d.ID, now, rejects)
	}
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

// reply answers with an empty body and an explicit Content-Length: logplex's
// HTTP client reads bodies by Content-Length only.
func reply(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}
