// Package librato is the Librato outlet: a minute becomes gauges of the
// legacy POST /v1/metrics API, as l2met posted them (a summary gauge per
// measure and value gauges for percentiles, counts, samples and uniques),
// at most 300 a request, and its events (releases, deploys, rollbacks) one
// annotation each (POST /v1/annotations/NAME), after the gauges. Librato is
// end-of-life; this outlet stays for users who still have an account, and
// as one outlet among several.
//
// Answers: 2xx done; network errors, timeouts, 5xx, 429 and the 403
// "API limit" retried; a 400 split to find the one measurement Librato
// refuses, which alone is dropped and never sent again (a 400 naming
// measure_time drops the request); 401 (and other 403s) pause the drain's
// Librato outlet; other 4xx are dropped (an annotation Librato refuses with
// 400 too).
package librato

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
)

// BatchSize is the most gauges per request.
const BatchSize = 300

// DefaultURL is Librato's API.
const DefaultURL = "https://metrics-api.librato.com"

// Backend is the Librato outlet.
type Backend struct {
	client      *outlet.Client
	percentiles []float64
	batch       int

	mu      sync.Mutex
	refused map[string]map[string]bool // drain → lowercased names Librato refused
}

// New returns the backend; percentiles are the ones posted for measures.
func New(client *outlet.Client, percentiles []float64) *Backend {
	return &Backend{client: client, percentiles: percentiles, batch: BatchSize, refused: map[string]map[string]bool{}}
}

type batch struct {
	drain  string
	gauges []Gauge
}

// Annotation is the body of Librato's POST /v1/annotations/NAME: one event
// of the annotation stream NAME.
type Annotation struct {
	Title     string `json:"title"`
	StartTime int64  `json:"start_time"` // unix seconds
}

// annotation is the Part of an annotation request.
type annotation struct {
	stream string // the annotation stream's name, sanitized
}

// Encode turns the minute into gauges, in requests of at most BatchSize,
// and its events into one annotation request each, after the gauges.
// Series whose names Librato takes for one are merged (Summaries); series
// with numbers Librato cannot take, or of another kind than the series
// they would merge with, are left out (and counted as rejected).
func (b *Backend) Encode(d *outlet.Destination, _ *outlet.Outlet, m *rollup.Minute, _ *outlet.Totals) (outlet.Encoded, error) {
	sums, merged := Summaries(m, b.percentiles)
	gauges, skipped, collided := Gauges(m.Start, sums, b.percentiles)
	enc := outlet.Encoded{Skipped: skipped + merged + collided}
	var notes []string
	if skipped > 0 {
		notes = append(notes, "values out of Librato's range (magnitude 1e126 or more)")
	}
	if merged+collided > 0 {
		notes = append(notes, "names that become another series' Librato name, with another kind")
	}
	enc.Note = strings.Join(notes, "; ")
	for len(gauges) > 0 {
		n := min(len(gauges), b.batch)
		r, err := b.request(d.ID, gauges[:n:n])
		if err != nil {
			return outlet.Encoded{}, err
		}
		enc.Reqs = append(enc.Reqs, r)
		gauges = gauges[n:]
	}
	for _, e := range m.SortedEvents() {
		body, err := json.Marshal(Annotation{Title: e.Title, StartTime: e.Time / 1e9})
		if err != nil { // cannot happen: a string and a number
			return outlet.Encoded{}, err
		}
		enc.Reqs = append(enc.Reqs, &outlet.Request{Body: body, ContentType: "application/json", Points: 1,
			Part: &annotation{stream: Sanitize(e.Name)}})
	}
	return enc, nil
}

// withoutRefused returns r without the gauges whose names Librato refused
// before, and how many it left out. (Filtering here rather than in Encode
// keeps Encode a function of the minute alone.)
func (b *Backend) withoutRefused(r *outlet.Request) (*outlet.Request, int, error) {
	p, ok := r.Part.(*batch)
	if !ok {
		return r, 0, nil // an annotation
	}
	b.mu.Lock()
	refused := b.refused[p.drain]
	var kept []Gauge
	if len(refused) > 0 {
		for _, g := range p.gauges {
			if !refused[strings.ToLower(g.Name)] {
				kept = append(kept, g)
			}
		}
	}
	b.mu.Unlock()
	if len(refused) == 0 || len(kept) == len(p.gauges) {
		return r, 0, nil
	}
	left := len(p.gauges) - len(kept)
	if len(kept) == 0 {
		return nil, left, nil
	}
	nr, err := b.request(p.drain, kept)
	return nr, left, err
}

func (b *Backend) request(drain string, gauges []Gauge) (*outlet.Request, error) {
	body, err := json.Marshal(struct {
		Gauges []Gauge `json:"gauges"`
	}{gauges})
	if err != nil { // cannot happen: Gauges holds only finite numbers and strings
		return nil, err
	}
	return &outlet.Request{Body: body, ContentType: "application/json", Points: len(gauges),
		Part: &batch{drain: drain, gauges: gauges}}, nil
}

var _ outlet.Splitter = (*Backend)(nil) // a 400 splits; a takeover resumes inside a split

// Split halves a request that Librato answered 400; a single gauge cannot
// be split: its name is remembered and never sent again.
func (b *Backend) Split(r *outlet.Request) []*outlet.Request {
	p, ok := r.Part.(*batch)
	if !ok {
		return nil // an annotation
	}
	if len(p.gauges) < 2 {
		b.mu.Lock()
		if b.refused[p.drain] == nil {
			b.refused[p.drain] = map[string]bool{}
		}
		if len(b.refused[p.drain]) < 10000 {
			b.refused[p.drain][strings.ToLower(p.gauges[0].Name)] = true
		}
		b.mu.Unlock()
		return nil
	}
	half := len(p.gauges) / 2
	r1, err1 := b.request(p.drain, p.gauges[:half:half])
	r2, err2 := b.request(p.drain, p.gauges[half:])
	if err1 != nil || err2 != nil {
		return nil
	}
	return []*outlet.Request{r1, r2}
}

// Items returns how many gauges a request carries: the unit of Split.
func (b *Backend) Items(r *outlet.Request) int {
	if p, ok := r.Part.(*batch); ok {
		return len(p.gauges)
	}
	return 0
}

// Tail rebuilds a request without its first n gauges, encoded as Split
// encodes a part.
func (b *Backend) Tail(r *outlet.Request, n int) *outlet.Request {
	p, ok := r.Part.(*batch)
	if !ok || n < 0 || n >= len(p.gauges) {
		return nil
	}
	t, err := b.request(p.drain, p.gauges[n:])
	if err != nil {
		return nil
	}
	return t
}

// Send posts the gauges with the outlet's credentials.
func (b *Backend) Send(ctx context.Context, o *outlet.Outlet, r *outlet.Request) outlet.Result {
	r, left, err := b.withoutRefused(r)
	if err != nil {
		return outlet.Result{Outcome: outlet.Permanent, Message: err.Error()}
	}
	if r == nil {
		return outlet.Result{Outcome: outlet.Accepted, Rejected: left, Message: "names Librato refused before"}
	}
	url := strings.TrimRight(o.URL, "/") + "/v1/metrics"
	ann, isAnnotation := r.Part.(*annotation)
	if isAnnotation {
		url = strings.TrimRight(o.URL, "/") + "/v1/annotations/" + ann.stream
	}
	resp, err := b.client.Post(ctx, url, r, func(req *http.Request) { req.SetBasicAuth(o.User, o.Token) })
	if err != nil {
		return outlet.Result{Outcome: outlet.Retry, Message: err.Error()}
	}
	res := outlet.Result{Status: resp.Status, RetryAfter: resp.RetryAfter, Message: outlet.Excerpt(resp.Body)}
	switch s := resp.Status; {
	case s >= 200 && s < 300:
		res.Outcome = outlet.Accepted
		if left > 0 {
			res.Rejected, res.Message = left, "names Librato refused before"
		}
	case s == http.StatusTooManyRequests || s >= 500 ||
		(s == http.StatusForbidden && bytes.Contains(resp.Body, []byte("API limit"))):
		res.Outcome = outlet.Retry
	case s == http.StatusBadRequest && (isAnnotation || bytes.Contains(resp.Body, []byte("measure_time"))):
		res.Outcome = outlet.Permanent // an annotation, or the minute's time itself, refused: splitting cannot help
	case s == http.StatusBadRequest:
		res.Outcome = outlet.Split
		if p := r.Part.(*batch); len(p.gauges) == 1 {
			res.Message = "name " + p.gauges[0].Name + " refused (not sent again): " + res.Message
		}
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		res.Outcome = outlet.Pause
	default:
		res.Outcome = outlet.Permanent
	}
	return res
}
