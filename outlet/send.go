package outlet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Config is what the core needs; backends have their own.
type Config struct {
	UserAgent  string        // "drainmeter/<version>"
	Timeout    time.Duration // per request
	Workers    int           // lanes posting at once (in memory)
	MaxAge     time.Duration // minutes older than this are dropped and counted
	MinBackoff time.Duration
	MaxBackoff time.Duration
	AuthProbe  time.Duration // a paused lane tries once this often (or at once when its configuration changes)
	// MaxRetryAfter caps a receiver's Retry-After: a longer one is read as
	// this (a receiver asking for an hour would park the lane until its
	// minutes are too old to post).
	MaxRetryAfter time.Duration
	// MaxUncertain is how many times a request that got no answer after
	// it was sent (a timeout: it may have arrived) is sent again; then it
	// is given up, counted as uncertain. A request thus reaches the
	// receiver at most MaxUncertain+1 times.
	MaxUncertain int
	// SplitFloor is the smallest body (in bytes, as sent) split on a 413:
	// a receiver that refuses a request this small as too large has a
	// misconfigured limit, and the lane pauses instead of splitting on
	// down to single series.
	SplitFloor int
}

// DefaultConfig holds the defaults. The timeout is the OpenTelemetry
// exporters' (30 s): real receivers under load take longer than 10 s.
var DefaultConfig = Config{
	UserAgent: "drainmeter", Timeout: 30 * time.Second, Workers: 4, MaxAge: time.Hour,
	MinBackoff: time.Second, MaxBackoff: 2 * time.Minute, AuthProbe: 5 * time.Minute,
	MaxRetryAfter: 5 * time.Minute, MaxUncertain: 2, SplitFloor: 16 << 10,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.UserAgent == "" {
		c.UserAgent = d.UserAgent
	}
	orDefault(&c.Timeout, d.Timeout)
	orDefault(&c.Workers, d.Workers)
	orDefault(&c.MaxAge, d.MaxAge)
	orDefault(&c.MinBackoff, d.MinBackoff)
	orDefault(&c.MaxBackoff, d.MaxBackoff)
	orDefault(&c.AuthProbe, d.AuthProbe)
	orDefault(&c.MaxRetryAfter, d.MaxRetryAfter)
	orDefault(&c.MaxUncertain, d.MaxUncertain)
	orDefault(&c.SplitFloor, d.SplitFloor)
	return c
}

// orDefault sets *v to d unless it is positive.
func orDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Response is what Post read of an answer.
type Response struct {
	Status     int
	Header     http.Header
	Body       []byte // at most 64 KiB
	RetryAfter time.Duration
}

// Client posts requests; backends call Post from their Send.
type Client struct {
	http      *http.Client
	userAgent string
	now       func() time.Time
}

// NewClient returns a client whose requests time out after timeout.
func NewClient(userAgent string, timeout time.Duration, now func() time.Time) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = timeout
	// A redirect is not followed: net/http would send the outlet's
	// credential headers on to the other host (it drops only
	// Authorization), and turn the POST into a GET on a 301 or 302. The 3xx
	// is the answer, refused for good by every backend.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{http: &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: noRedirect}, userAgent: userAgent, now: now}
}

// Post sends r to target. auth, if set, adds credentials. A network error is
// returned as an error (the caller retries it), its message without the
// URL; every answer, whatever its status, as a Response.
func (c *Client) Post(ctx context.Context, target string, r *Request, auth func(*http.Request)) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(r.Body))
	if err != nil { // not the error: it quotes the URL
		return nil, errors.New("request: the outlet's URL is not valid")
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", r.ContentType)
	if r.Encoding != "" {
		req.Header.Set("Content-Encoding", r.Encoding)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if auth != nil {
		auth(req)
	}
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	if ex != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(i httptrace.WroteRequestInfo) {
				if i.Err == nil {
					ex.wrote.Store(true)
				}
			},
		}))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Without the URL, which *url.Error repeats: its query or user
		// name may hold a key.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ex != nil && strings.Contains(err.Error(), "server closed idle connection") {
			// A kept-alive connection the receiver had closed before it
			// read anything: the request did not arrive.
			ex.wrote.Store(false)
		}
		return nil, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if ex != nil {
		ex.html = htmlPage(resp.Header.Get("Content-Type"), body)
		ex.body = bytes.Clone(body[:min(len(body), 1024)])
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		to := "elsewhere"
		if u, err := resp.Location(); err == nil && u.Host != "" {
			to = u.Scheme + "://" + u.Host
		}
		body = []byte("redirected to " + to + ", not followed: configure the URL it redirects to")
		resp.Header.Set("Content-Type", "text/plain") // what body now is
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body,
		RetryAfter: RetryAfter(resp.Header.Get("Retry-After"), c.now())}, nil
}

// exchange is what the core learns of one request beyond its Result: the
// client fills it in when the request's context carries one.
type exchange struct {
	wrote atomic.Bool // the whole request was written: without an answer, it may have arrived
	html  string      // the answer was an HTML page (described), not an API's answer
	body  []byte      // the start of the answer's body
}

// wrongPlaceMessages are what receivers answer, whatever the status, to a
// request at a path they do not serve: the URL is wrong, not the data.
var wrongPlaceMessages = [][]byte{
	[]byte("unsupported path requested"), // VictoriaMetrics (single, vminsert, vmagent): 400
}

// receiverSettingMessages are what receivers answer to a request they could
// take only with a setting of theirs turned on: nothing the data did, so the
// lane pauses until the receiver (or the outlet) is changed.
var receiverSettingMessages = [][]byte{
	[]byte("native histograms are disabled"), // Prometheus without --enable-feature=native-histograms: 500
}

// wrongPlace reports whether an answer's body says the path is wrong.
func wrongPlace(body []byte) bool { return containsAny(body, wrongPlaceMessages) }

// containsAny reports whether body contains one of ms.
func containsAny(body []byte, ms [][]byte) bool {
	for _, m := range ms {
		if bytes.Contains(body, m) {
			return true
		}
	}
	return false
}

type exchangeKey struct{}

// htmlPage describes an answer that is an HTML page ("" if it is not): by
// its Content-Type, or a body that opens like one. No API drainmeter posts
// to answers with HTML; a web site, a login page or a proxy's default page
// does, at a wrong URL.
func htmlPage(contentType string, body []byte) string {
	lower := asciiLower(body)
	head := bytes.TrimSpace(lower[:min(len(lower), 512)])
	mt, _, _ := strings.Cut(string(asciiLower([]byte(contentType))), ";")
	mt = strings.TrimSpace(mt)
	if mt != "text/html" && mt != "application/xhtml+xml" &&
		!bytes.HasPrefix(head, []byte("<!doctype html")) && !bytes.HasPrefix(head, []byte("<html")) {
		return ""
	}
	page := "an HTML page"
	if i := bytes.Index(lower, []byte("<title>")); i >= 0 {
		t := body[i+len("<title>"):]
		if j := bytes.Index(lower[i+len("<title>"):], []byte("</title>")); j >= 0 {
			t = t[:j]
		}
		if title := clipPrintable(strings.Join(strings.Fields(string(t)), " "), 80); title != "" {
			page += " (" + strconv.Quote(title) + ")"
		}
	}
	return page
}

// asciiLower returns a copy of b with ASCII letters in lower case (its
// length, and every index into it, the same as b's).
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// clipPrintable keeps s's printable characters, at most n bytes.
func clipPrintable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			continue
		}
		if b.Len()+len(string(r)) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date.
func RetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Excerpt returns the start of an answer's body for a message.
func Excerpt(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.TrimSpace(b))
}

// Job is one minute of one lane: its requests, built once.
type Job struct {
	Minute int64
	Reqs   []*Request
	Next   int     // the first request not yet accepted (or given up)
	Totals *Totals // the lane's running state once the minute is delivered
	Key    string  // the outlet's EncodingKey when built

	skipped   int // points left out at build time, counted when the job finishes
	note      string
	asGauges  int // series sent as gauges instead, counted when the job finishes
	keptOut   int // series kept out of running totals or monotonic sums, counted when the job finishes
	uncertain int // times the next request was sent without an answer
}

// advance moves on to the next request.
func (j *Job) advance() {
	j.Next++
	j.uncertain = 0
}

// Uncertain returns how many times the next request was sent and got no
// answer (it may have arrived each time).
func (j *Job) Uncertain() int { return j.uncertain }

// SetUncertain restores that count, for a job resumed at the same request
// (a durable lane records it).
func (j *Job) SetUncertain(n int) { j.uncertain = max(n, 0) }

// Done reports whether every request has been dealt with.
func (j *Job) Done() bool { return j.Next >= len(j.Reqs) }

// Position is where the job stands in terms of its requests as first built,
// which a rebuild of the minute gives again: the next request to send is
// request chunk without its first items items (the part of a split).
func (j *Job) Position() (chunk, items int) {
	if j.Done() {
		if len(j.Reqs) == 0 {
			return 0, 0
		}
		return j.Reqs[len(j.Reqs)-1].origin + 1, 0
	}
	r := j.Reqs[j.Next]
	return r.origin, r.offset
}

// Points returns the points of the requests not yet sent.
func (j *Job) Points() int {
	n := 0
	for _, r := range j.Reqs[min(j.Next, len(j.Reqs)):] {
		n += r.Points
	}
	return n
}

// State is what a lane is doing, for the status page.
type State string

// The states.
const (
	StateOK       State = "ok"        // posting (or nothing to post)
	StateRetrying State = "retrying"  // the last attempt failed; it is retried with backoff
	StatePaused   State = "paused"    // the outlet's configuration is wrong (PauseReason): waiting for a new one, or a probe that passes
	StateGivingUp State = "giving_up" // minutes are being dropped: older than OUTLET_MAX_PENDING, or refused for good
	// StateUncertain: the last request got no answer after it was sent (a
	// timeout): it may have arrived. It is sent again after a long wait, at
	// most MaxUncertain times.
	StateUncertain State = "uncertain"
)

// Status is a lane's state and counters, for the status page.
type Status struct {
	Drain       string
	Kind        Kind
	Target      string // Outlet.Redacted
	State       State
	LastPostAt  time.Time
	LastError   string // never a secret
	LastErrorAt time.Time
	Waiting     int    // minutes waiting (including the one being posted)
	Posted      uint64 // points accepted
	Rejected    uint64 // points refused for good (permanent errors, partial success)
	Dropped     uint64 // points given up on (too old, shutdown)
	Uncertain   uint64 // points in requests that got no answer after they were sent (each may have arrived)
	Attempts    int    // failed attempts of the current request
	NextAttempt time.Time
	PauseReason string // while paused: PauseCredentials, PauseWrongURL, …
}

// Sender does a lane's steps: builds minutes and sends their requests. It
// holds no lane state; the schedulers do.
type Sender struct {
	cfg      Config
	backends map[Kind]Backend
	stats    *stats.Registry
	log      *slog.Logger
	now      func() time.Time
}

// NewSender returns a sender over the given backends.
func NewSender(cfg Config, backends map[Kind]Backend, reg *stats.Registry, log *slog.Logger, now func() time.Time) *Sender {
	return &Sender{cfg: cfg.withDefaults(), backends: backends, stats: reg, log: log, now: now}
}

// Config returns the sender's configuration, defaults filled in.
func (s *Sender) Config() Config { return s.cfg }

// Build encodes minute m for outlet o of drain d, after running state prev.
func (s *Sender) Build(d *Destination, o *Outlet, m *rollup.Minute, prev *Totals) (*Job, error) {
	b := s.backends[o.Kind]
	if b == nil {
		return nil, fmt.Errorf("outlet: no %s backend", o.Kind)
	}
	enc, err := b.Encode(d, o, m, prev)
	if err != nil {
		return nil, fmt.Errorf("outlet: %s: %w", o.Kind, err)
	}
	for i, r := range enc.Reqs {
		r.origin, r.offset = i, 0
	}
	return &Job{Minute: m.Start, Reqs: enc.Reqs, Totals: enc.Totals, Key: o.EncodingKey(),
		skipped: enc.Skipped, note: enc.Note, asGauges: enc.AsGauges, keptOut: enc.KeptOut}, nil
}

// Resume moves a freshly built job to a position that Job.Position gave
// for the same minute and encoding (on this or another process).
func (s *Sender) Resume(o *Outlet, job *Job, chunk, items int) {
	job.Next = min(max(chunk, 0), len(job.Reqs))
	if items <= 0 || job.Done() {
		return
	}
	r := job.Reqs[job.Next]
	if sp, ok := s.backends[o.Kind].(Splitter); ok {
		if t := sp.Tail(r, items); t != nil {
			t.origin, t.offset = r.origin, items
			job.Reqs[job.Next] = t
			return
		}
	}
	// Cannot happen: only a Splitter's parts have an offset. Sending the
	// whole request again may count its first items twice: say so.
	s.log.Warn("outlet: cannot resume inside a split request; sending it whole", "outlet", o.Kind,
		"minute", rollup.MinuteString(job.Minute), "request", chunk, "items", items)
}

// Action is what a lane does after a step.
type Action int

// The actions.
const (
	Continue Action = iota // send the job's next request now
	Finished               // the job is done: every request accepted or given up on
	Wait                   // retry or probe after Step.Wait
)

// Step is the outcome of one step.
type Step struct {
	Action Action
	Wait   time.Duration
}

// Stale reports whether the job's minute is older than MaxAge.
func (s *Sender) Stale(minute int64) bool {
	return s.now().Sub(time.Unix(minute+60, 0)) > s.cfg.MaxAge
}

// DropJob gives up on the rest of a job, counting its points as dropped.
func (s *Sender) DropJob(d *Destination, o *Outlet, job *Job, st *Status, why string) {
	n := job.Points()
	job.Next, job.asGauges, job.keptOut = len(job.Reqs), 0, 0 // nothing sent: nothing sent as gauges either
	s.stats.Drain(d.ID).Add(stats.PostDropped, uint64(n))
	st.Dropped += uint64(n)
	if n > 0 {
		st.State, st.LastError, st.LastErrorAt = StateGivingUp, why, s.now()
		s.log.Warn("outlet: measurements dropped", "drain", d.ID, "outlet", o.Kind,
			"minute", rollup.MinuteString(job.Minute), "measurements", n, "reason", why)
	}
}

// Step sends the job's next request (the lane's one request in flight) and
// updates st. attempts is how many times that request failed before.
func (s *Sender) Step(ctx context.Context, d *Destination, o *Outlet, job *Job, st *Status, attempts int) Step {
	if job.Done() {
		return s.finished(d, o, job, st)
	}
	if s.Stale(job.Minute) {
		s.DropJob(d, o, job, st, "older than OUTLET_MAX_PENDING ("+s.cfg.MaxAge.String()+")")
		return s.finished(d, o, job, st)
	}
	b := s.backends[o.Kind]
	r := job.Reqs[job.Next]
	ex := &exchange{}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, exchangeKey{}, ex), s.cfg.Timeout)
	res := b.Send(rctx, o, r)
	cancel()
	res.Message, res.Warning = scrub(o, res.Message), scrub(o, res.Warning)
	ds := s.stats.Drain(d.ID)
	now := s.now()
	minute := rollup.MinuteString(job.Minute)
	if res.Outcome == Retry && ((res.Status == 0 && ex.wrote.Load()) || res.Status == http.StatusGatewayTimeout) {
		// No answer to a request that was sent (a gateway's 504 is the
		// same: its upstream may have stored it).
		return s.uncertain(d, o, job, st, res, attempts)
	}
	if ctx.Err() != nil && res.Outcome != Accepted {
		// Interrupted (shutdown) before the request was sent: not the
		// receiver's fault; try again later.
		return Step{Action: Wait, Wait: time.Second}
	}
	if reason := pauseReason(res, ex, r, s.cfg.SplitFloor); reason != "" {
		if ex.html != "" { // the page's title, not its markup (a 404 page too)
			res.Message = ex.html
		}
		return s.pause(d, o, st, res, reason, attempts)
	}
	switch res.Outcome {
	case Accepted:
		ok := r.Points - min(res.Rejected, r.Points)
		ds.Add(stats.Posted, uint64(ok))
		st.Posted += uint64(ok)
		st.LastPostAt = now
		st.State, st.Attempts, st.PauseReason, st.NextAttempt = StateOK, 0, "", time.Time{}
		if res.Rejected > 0 {
			ds.Add(stats.PostRejected, uint64(res.Rejected))
			st.Rejected += uint64(res.Rejected)
			st.LastError, st.LastErrorAt = fmt.Sprintf("%d points refused: %s", res.Rejected, res.Message), now
			s.log.Warn("outlet: receiver refused some points", "drain", d.ID, "outlet", o.Kind, "minute", minute,
				"rejected", res.Rejected, "error", res.Message)
		}
		if res.Warning != "" {
			st.LastError, st.LastErrorAt = "the receiver accepted everything, with a warning: "+res.Warning, now
			s.log.Warn("outlet: the receiver accepted the request with a warning", "drain", d.ID, "outlet", o.Kind,
				"minute", minute, "warning", res.Warning)
		}
		job.advance()
	case Retry:
		wait := s.Backoff(attempts + 1)
		if res.RetryAfter > wait {
			wait = min(res.RetryAfter, s.cfg.MaxRetryAfter, s.cfg.MaxAge)
		}
		st.State, st.Attempts, st.PauseReason, st.NextAttempt = StateRetrying, attempts+1, "", now.Add(wait)
		st.LastError, st.LastErrorAt = describe(res), now
		if res.RetryAfter > s.cfg.MaxRetryAfter {
			st.LastError += fmt.Sprintf(" (Retry-After %s, capped at %s)", res.RetryAfter.Round(time.Second), s.cfg.MaxRetryAfter)
		}
		s.log.Info("outlet: post failed, will retry", "drain", d.ID, "outlet", o.Kind, "minute", minute,
			"status", res.Status, "attempt", attempts+1, "retry_in", wait.Round(time.Millisecond), "err", res.Message)
		return Step{Action: Wait, Wait: wait}
	case Pause:
		return s.pause(d, o, st, res, PauseCredentials, attempts)
	case Split:
		if sp, ok := b.(Splitter); ok {
			if parts := sp.Split(r); len(parts) > 1 {
				off := r.offset
				for _, p := range parts {
					p.origin, p.offset = r.origin, off
					off += sp.Items(p)
				}
				job.Reqs = append(job.Reqs[:job.Next:job.Next], append(parts, job.Reqs[job.Next+1:]...)...)
				job.uncertain = 0
				return Step{Action: Continue}
			}
		}
		fallthrough
	case Permanent:
		ds.Add(stats.PostRejected, uint64(r.Points))
		st.Rejected += uint64(r.Points)
		st.State, st.Attempts, st.PauseReason, st.NextAttempt = StateGivingUp, 0, "", time.Time{}
		st.LastError, st.LastErrorAt = describe(res), now
		s.log.Error("outlet: the receiver refused the request; dropped", "drain", d.ID, "outlet", o.Kind, "minute", minute,
			"status", res.Status, "measurements", r.Points, "error", res.Message)
		job.advance()
	}
	if job.Done() {
		return s.finished(d, o, job, st)
	}
	return Step{Action: Continue}
}

// The reasons a lane pauses: each is something about the outlet's
// configuration (or the receiver's), nothing about the data, so its
// minutes are kept until the configuration changes or a probe passes.
const (
	PauseCredentials = "credentials"      // 401, 403
	PauseWrongURL    = "wrong_url"        // 404, 405, 410: no such API at that URL
	PauseRedirect    = "redirect"         // 3xx, never followed
	PauseNotAPI      = "not_api"          // an HTML page where the API should answer
	PauseTooLarge    = "too_large"        // 413 for a request under SplitFloor: the receiver's limit is misconfigured
	PauseReceiver    = "receiver_setting" // the receiver needs a setting turned on (native histograms)
)

// PauseFix says what to do about a pause, for logs and the status page.
func PauseFix(reason string) string {
	switch reason {
	case PauseCredentials:
		return "the receiver refused the outlet's credentials: set new ones"
	case PauseWrongURL:
		return "the receiver has no such API at this URL: check the outlet's URL (its path above all)"
	case PauseRedirect:
		return "the receiver redirects (not followed: it would carry the credentials elsewhere): set the URL it points to"
	case PauseNotAPI:
		return "the answer is a web page, not the API: check the outlet's URL"
	case PauseTooLarge:
		return "the receiver refuses even small requests as too large: raise its body-size limit (or a proxy's in front of it)"
	case PauseReceiver:
		return "the receiver does not take native histograms: start Prometheus with --enable-feature=native-histograms, or set the outlet's histograms to summary"
	}
	return "check the outlet's configuration"
}

// pauseReason reads an answer that means "wrong configuration": a pause
// reason, or "" for any other answer.
func pauseReason(res Result, ex *exchange, r *Request, splitFloor int) string {
	switch st := res.Status; {
	case st >= 300 && st < 400:
		// Redirected (Client.Post follows none): the URL is wrong, as
		// credentials can be.
		return PauseRedirect
	case res.Outcome == Pause || st == http.StatusProxyAuthRequired:
		// The backend reads 401 and 403 (Librato's 403 "API limit" is a
		// rate limit, retried).
		return PauseCredentials
	case st == http.StatusNotFound || st == http.StatusMethodNotAllowed || st == http.StatusGone:
		return PauseWrongURL
	case st >= 400 && res.Outcome != Retry && wrongPlace(ex.body):
		return PauseWrongURL
	case st >= 400 && containsAny(ex.body, receiverSettingMessages):
		// Retried by the backend (a 500), but no retry can succeed.
		return PauseReceiver
	case ex.html != "" && res.Outcome != Retry:
		// A page where an API should answer (a 200 too: nothing was stored).
		return PauseNotAPI
	case st == http.StatusRequestEntityTooLarge && len(r.Body) <= splitFloor:
		return PauseTooLarge
	}
	return ""
}

// pause stops the lane until its outlet's configuration changes, or a
// probe (every AuthProbe) is answered otherwise; its minutes are kept.
func (s *Sender) pause(d *Destination, o *Outlet, st *Status, res Result, reason string, attempts int) Step {
	now := s.now()
	if st.State != StatePaused || st.PauseReason != reason {
		s.log.Error("outlet: posting paused until the outlet's configuration changes (probing every "+s.cfg.AuthProbe.String()+
			"); its minutes are kept", "drain", d.ID, "outlet", o.Redacted(), "status", res.Status, "reason", reason,
			"fix", PauseFix(reason), "answer", res.Message)
	}
	st.State, st.Attempts, st.PauseReason, st.NextAttempt = StatePaused, attempts+1, reason, now.Add(s.cfg.AuthProbe)
	st.LastError, st.LastErrorAt = PauseFix(reason)+" ("+describe(res)+")", now
	return Step{Action: Wait, Wait: s.cfg.AuthProbe}
}

// uncertain deals with a request that got no answer after it was sent: it
// may have arrived, so it is sent again only after a long wait
// (UncertainWait), and at most MaxUncertain times.
func (s *Sender) uncertain(d *Destination, o *Outlet, job *Job, st *Status, res Result, attempts int) Step {
	r := job.Reqs[job.Next]
	now := s.now()
	job.uncertain++
	s.stats.Drain(d.ID).Add(stats.PostUncertain, uint64(r.Points))
	st.Uncertain += uint64(r.Points)
	st.LastError, st.LastErrorAt = "no answer after the request was sent (it may have arrived): "+describe(res), now
	st.PauseReason = ""
	if job.uncertain > s.cfg.MaxUncertain {
		st.State, st.Attempts, st.NextAttempt = StateGivingUp, 0, time.Time{}
		s.log.Error("outlet: no answer to a request sent "+strconv.Itoa(job.uncertain)+" times; not sent again (it may have arrived)",
			"drain", d.ID, "outlet", o.Kind, "minute", rollup.MinuteString(job.Minute), "measurements", r.Points, "err", res.Message)
		job.advance()
		if job.Done() {
			return s.finished(d, o, job, st)
		}
		return Step{Action: Continue}
	}
	wait := s.UncertainWait(job.uncertain)
	st.State, st.Attempts, st.NextAttempt = StateUncertain, attempts+1, now.Add(wait)
	s.log.Warn("outlet: no answer to a request that was sent; it may have arrived: sent again later", "drain", d.ID,
		"outlet", o.Kind, "minute", rollup.MinuteString(job.Minute), "status", res.Status, "measurements", r.Points,
		"sent", job.uncertain, "max_sends", s.cfg.MaxUncertain+1, "retry_in", wait.Round(time.Second), "err", res.Message)
	return Step{Action: Wait, Wait: wait}
}

// UncertainWait is the wait after the n-th request of a job that got no
// answer: 4 × Timeout, doubling (2 and 4 minutes with the default
// timeout), with jitter over its upper fifth; at most MaxAge. A receiver
// that took longer than Timeout is slow, not gone: it gets the time to
// finish what it may be storing before the same request comes again.
func (s *Sender) UncertainWait(n int) time.Duration {
	d := 4 * s.cfg.Timeout << min(max(n-1, 0), 10)
	d = min(d, s.cfg.MaxAge)
	return d - d/5 + rand.N(d/5+1)
}

// GiveUpUncertain gives up, at shutdown, on a request that got no answer
// after it was sent, instead of sending it again (it may have arrived; it
// was counted as uncertain). It reports whether there was one.
func (s *Sender) GiveUpUncertain(d *Destination, o *Outlet, job *Job, st *Status) bool {
	if job.uncertain == 0 || job.Done() {
		return false
	}
	r := job.Reqs[job.Next]
	s.log.Warn("outlet: shutting down: a request that got no answer is not sent again (it may have arrived)", "drain", d.ID,
		"outlet", o.Kind, "minute", rollup.MinuteString(job.Minute), "measurements", r.Points)
	job.advance()
	st.State, st.Attempts, st.NextAttempt = StateOK, 0, time.Time{}
	return true
}

// finished counts what the backend left out of a delivered job.
func (s *Sender) finished(d *Destination, o *Outlet, job *Job, st *Status) Step {
	if job.skipped > 0 {
		s.stats.Drain(d.ID).Add(stats.PostRejected, uint64(job.skipped))
		st.Rejected += uint64(job.skipped)
		st.LastError, st.LastErrorAt = job.note, s.now()
		s.log.Warn("outlet: series left out", "drain", d.ID, "outlet", o.Kind, "minute", rollup.MinuteString(job.Minute),
			"series", job.skipped, "reason", job.note)
		job.skipped = 0
	}
	if job.asGauges > 0 {
		s.stats.Drain(d.ID).Add(stats.AsGauges, uint64(job.asGauges))
		s.log.Info("outlet: measures sent as gauges", "drain", d.ID, "outlet", o.Kind, "minute", rollup.MinuteString(job.Minute),
			"series", job.asGauges, "reason", job.note)
		job.asGauges = 0
	}
	if job.keptOut > 0 {
		s.stats.Drain(d.ID).Add(stats.KeptOut, uint64(job.keptOut))
		s.log.Info("outlet: series kept out of monotonic totals", "drain", d.ID, "outlet", o.Kind, "minute", rollup.MinuteString(job.Minute),
			"series", job.keptOut, "reason", KeptOutReason)
		job.keptOut = 0
	}
	return Step{Action: Finished}
}

func describe(r Result) string {
	if r.Status == 0 {
		return r.Message
	}
	if r.Message == "" {
		return fmt.Sprintf("HTTP %d", r.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", r.Status, r.Message)
}

// Backoff is exponential with jitter over the upper half: the n-th retry
// waits between d/2 and d, d = min(MaxBackoff, MinBackoff·2^(n-1)).
func (s *Sender) Backoff(n int) time.Duration {
	d := s.cfg.MinBackoff << min(max(n-1, 0), 20)
	if d <= 0 || d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}
