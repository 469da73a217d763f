// Package outlet takes closed minutes to where users see them. The core here
// is what every backend shares; the backends beside it (outlet/librato,
// outlet/otlp, outlet/remotewrite, and the log outlet in this package) only
// turn a minute into requests and say what an answer means.
//
// A drain's Destination (from Destinations, by drain id) names it and lists
// its outlets. Each (drain, outlet) pair is a lane: its
// minutes go out strictly in order, one request in flight, each minute's
// requests built once and re-sent identically on retry (Prometheus refuses a
// changed or out-of-order sample, OTLP receivers an out-of-order point). A
// lane keeps its own progress, backoff, pause and counters, so one outlet's
// outage never holds up another's.
//
// What a request's answer means is decided by its backend and acted on here:
// retried with exponential backoff and jitter (honouring Retry-After up to
// MaxRetryAfter), split (a 400 from Librato, a 413 above SplitFloor),
// paused when the outlet's configuration is wrong (refused credentials, a
// wrong URL, a redirect, an HTML page where the API should answer, a 413
// for a small request: one probe every AuthProbe, or at once when the
// configuration changes; the minutes are kept), sent again only after a
// long wait and at most MaxUncertain times when no answer came after the
// request was sent (it may have arrived), or dropped and counted (a
// permanent error, or a minute older than MaxAge).
//
// Two schedulers drive lanes: Engine, in memory, for a single process; and
// the durable poster in package postgres, which leases lanes across dynos.
// Both use Sender for the steps themselves.
package outlet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/internal/text"
	"github.com/drainmeter/drainmeter/rollup"
)

// Kind names a backend.
type Kind string

// The backends.
const (
	Log         Kind = "log"         // rollups printed in logfmt (no credentials needed)
	Librato     Kind = "librato"     // Librato's legacy /v1/metrics API (end-of-life)
	OTLP        Kind = "otlp"        // OTLP/HTTP metrics, protobuf
	RemoteWrite Kind = "remotewrite" // Prometheus remote write 1.0
)

// Kinds lists the backends in the order drainmeter shows them.
var Kinds = []Kind{Librato, OTLP, RemoteWrite, Log}

// Temporality is how an OTLP outlet reports counts and measures.
type Temporality string

// The temporalities.
const (
	Cumulative Temporality = "cumulative" // running totals (Prometheus, Mimir, Grafana Cloud, VictoriaMetrics)
	Delta      Temporality = "delta"      // each minute on its own (Datadog, New Relic, Honeycomb, Dynatrace)
)

// Header is one configured request header (credentials, usually).
type Header struct {
	Name, Value string
}

// Outlet is one configured receiver of a drain's metrics. Its credentials (Token,
// Headers, the userinfo of URL) are secrets: never log or show them; use
// Redacted.
type Outlet struct {
	Kind        Kind
	URL         string   // the endpoint; for Librato the API's base URL; may hold userinfo (Basic auth)
	User, Token string   // Librato's credentials
	Headers     []Header // extra request headers
	Temporality Temporality
	// PercentileGauges (OTLP): each measure also goes out as gauges
	// NAME.p50, .p95, .p99 (PERCENTILES), for receivers that keep only
	// count, sum, min and max of a histogram (Dynatrace).
	PercentileGauges bool
	// MaxBuckets (OTLP): the most buckets a side of an exponential
	// histogram has before it is downscaled (OTLP_MAX_BUCKETS; 0: the
	// OpenTelemetry SDK's 160, DefaultMaxBuckets).
	MaxBuckets int
	// Histograms (remote write): how measures go out, as a Summary
	// (quantile series, the default) or a native histogram.
	Histograms Histograms
	Version    int64 // changes whenever the outlet's configuration does (0: built in)
}

// DefaultMaxBuckets is Outlet.MaxBuckets' default, the OpenTelemetry SDK's.
const DefaultMaxBuckets = 160

// MaxMaxBuckets is the most Outlet.MaxBuckets may be: more than the 1,920
// a side of 10^-9 … 10^9 needs at scale 6.
const MaxMaxBuckets = 4096

// Histograms is how a remote write outlet sends measures
// (REMOTE_WRITE_HISTOGRAMS).
type Histograms string

// The ways.
const (
	SummaryHistograms Histograms = "summary" // name{quantile=…}, name_sum, name_count (also "")
	NativeHistograms  Histograms = "native"  // one Prometheus native histogram series
)

// ParseHistograms reads "native" or "summary" ("" is summary).
func ParseHistograms(s string) (Histograms, error) {
	switch Histograms(s) {
	case "", SummaryHistograms:
		return SummaryHistograms, nil
	case NativeHistograms:
		return NativeHistograms, nil
	}
	return "", fmt.Errorf("remote write histograms %q: native or summary", s)
}

// Native reports whether measures go out as native histograms.
func (o *Outlet) Native() bool { return o.Kind == RemoteWrite && o.Histograms == NativeHistograms }

// ID names the outlet within its drain: a drain has at most one outlet of a
// kind.
func (o *Outlet) ID() string { return string(o.Kind) }

// Redacted describes the outlet for logs and pages: its kind and endpoint
// without credentials or query.
func (o *Outlet) Redacted() string {
	if o.Kind == Log {
		return "log"
	}
	return string(o.Kind) + " " + RedactURL(o.URL)
}

// RedactURL returns u without userinfo, query and fragment.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}

// Secrets returns the outlet's secret values, so that an error message that
// happens to echo one can be scrubbed.
func (o *Outlet) Secrets() []string {
	var s []string
	if o.Token != "" {
		s = append(s, o.Token)
	}
	for _, h := range o.Headers {
		if len(h.Value) >= 4 {
			s = append(s, h.Value)
		}
	}
	if u, err := url.Parse(o.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = append(s, p)
		}
	}
	return s
}

// Fingerprint changes whenever anything about the outlet does, credentials
// included; it is a hash, safe to store and compare.
func (o *Outlet) Fingerprint() string {
	h := sha256.New()
	for _, f := range []string{string(o.Kind), o.URL, o.User, o.Token, string(o.Temporality), strconv.FormatBool(o.PercentileGauges),
		strconv.Itoa(o.MaxBuckets), string(o.Histograms)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	for _, hd := range o.Headers {
		h.Write([]byte(hd.Name))
		h.Write([]byte{1})
		h.Write([]byte(hd.Value))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// EncodingKey changes when the outlet's requests must be built anew: a
// minute built for one key is never sent under another (and, in the
// durable mode, running totals start anew).
func (o *Outlet) EncodingKey() string {
	k := string(o.Kind) + "/" + string(o.Temporality)
	if o.Native() {
		// Running bucket counts: a change of way starts the totals anew.
		k = string(o.Kind) + "/" + string(NativeHistograms)
	}
	if o.PercentileGauges {
		k += "/percentile-gauges"
	}
	if o.Kind == OTLP && o.MaxBuckets > 0 && o.MaxBuckets != DefaultMaxBuckets {
		k += "/max-buckets=" + strconv.Itoa(o.MaxBuckets)
	}
	return k
}

// SameTotals reports whether running totals kept under encoding key a
// still hold under key b: the kind and temporality (for remote write,
// native histograms or not) are the same (options such as percentile
// gauges change the requests, not the totals).
func SameTotals(a, b string) bool {
	totals := func(k string) string {
		kind, rest, _ := strings.Cut(k, "/")
		temp, _, _ := strings.Cut(rest, "/")
		return kind + "/" + temp
	}
	return totals(a) == totals(b)
}

// Destination is what outlets need to know of a drain: who posts (its id,
// name and attributes) and where (its outlets).
type Destination struct {
	ID        string
	Name      string // the app's name: OTLP service.name, Prometheus job
	Namespace string // OTLP service.namespace; empty: none
	// Attributes are the user's own (CheckAttributes): OTLP resource
	// attributes, remote-write labels.
	Attributes []Attribute
	Outlets    []Outlet
}

// Outlet returns the drain's outlet of kind k.
func (d *Destination) Outlet(k Kind) (*Outlet, bool) {
	for i := range d.Outlets {
		if d.Outlets[i].Kind == k {
			return &d.Outlets[i], true
		}
	}
	return nil, false
}

// Destinations finds a drain's current Destination. Implementations cache
// it; a change reaches every process within the cache's TTL.
type Destinations interface {
	Destination(id string) (*Destination, bool)
}

// Request is one request of a minute, built once by a backend.
type Request struct {
	Body        []byte
	ContentType string
	Encoding    string      // Content-Encoding, if any
	Header      http.Header // other fixed headers of the backend
	Points      int         // the measurements (gauges, points, samples) it carries
	Part        any         // what the backend needs to split it

	// Where the request stands in the minute as first built: request
	// origin, less the first offset items (a part of a split). Set by the
	// core, so that a lane taken over after a split resumes exactly there.
	origin, offset int
}

// Outcome is what a request's answer means.
type Outcome int

// The outcomes.
const (
	Accepted  Outcome = iota // done (Rejected may count points the receiver refused)
	Retry                    // try the same body again later
	Split                    // the request is too large, or one of its items is refused: split it
	Pause                    // credentials refused: stop this lane until they change (the core pauses on other answers too)
	Permanent                // refused for good: drop the request's points and go on
)

var outcomeNames = [...]string{"accepted", "retry", "split", "pause", "permanent"}

func (o Outcome) String() string { return outcomeNames[o] }

// Result is a backend's reading of one answer.
type Result struct {
	Outcome    Outcome
	Status     int           // HTTP status; 0 for a network error
	RetryAfter time.Duration // from Retry-After
	Rejected   int           // points refused in an accepted request (OTLP partial_success)
	Message    string        // for logs and the status page; scrubbed of secrets by the core
	Warning    string        // an accepted request's warning (OTLP partial_success refusing nothing); scrubbed too
}

// Encoded is a minute built for one outlet.
type Encoded struct {
	Reqs    []*Request // in the order they must be sent
	Totals  *Totals    // the lane's running state after the minute; nil for a backend that keeps none
	Skipped int        // points left out because the receiver cannot take them (counted as rejected)
	Note    string     // why they were left out
	// AsGauges counts series the receiver's own type cannot hold that went
	// out as gauges instead (cumulative OTLP measures with a negative value).
	AsGauges int
	// KeptOut counts series kept out of a monotonic counter: a count whose
	// minute total is negative (or a sum that is not finite) does not add
	// to a running total, and is not sent as an OTLP delta Sum.
	KeptOut int
}

// KeptOutReason says why series are counted as kept_out.
const KeptOutReason = "a count minute with a negative total (or a sum that is not finite) is kept out of monotonic counters: running totals hold, OTLP delta sends no point"

// Backend turns minutes into requests for one kind of receiver and reads
// its answers.
type Backend interface {
	// Encode builds minute m of drain d for outlet o. prev is the lane's
	// running state after its previous minute (nil: none). Encode must not
	// modify m or prev, and must be deterministic: the same inputs give the
	// same bodies (a durable lane taken over by another dyno rebuilds the
	// minute and resumes where the first stopped).
	Encode(d *Destination, o *Outlet, m *rollup.Minute, prev *Totals) (Encoded, error)
	// Send posts one request with o's current credentials.
	Send(ctx context.Context, o *Outlet, r *Request) Result
}

// Splitter is a backend that can split a request (Split outcome). A request
// that cannot be split further is dropped.
//
// A request is a sequence of items (series, gauges) that Split cuts in
// contiguous runs. Items and Tail let a durable lane resume after a split
// where another dyno stopped: Tail(r, n) is r's items from the n-th on,
// encoded as Split encodes a part, so that the receiver gets every item once.
type Splitter interface {
	Split(r *Request) []*Request
	Items(r *Request) int            // how many items r carries
	Tail(r *Request, n int) *Request // r without its first n items; nil if it cannot
}

// scrub removes the outlet's secrets from a message, and bounds its length.
func scrub(o *Outlet, msg string) string {
	for _, s := range o.Secrets() {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return text.Clip(msg, 300)
}
