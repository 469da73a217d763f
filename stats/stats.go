// Package stats holds per-drain counters that every stage of the pipeline
// adds to: the drain (frames, rejects), the rollup (late, future, overflow)
// and the outlet (posted, dropped). A drain's counts are a Counters (atomic);
// a Registry hands out one per drain id. The reasons input is turned away
// are named once, with what the pages say of them (reasons.go); a Recorder
// turns the counters into per-drain deltas (recorder.go).
package stats

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// UnknownDrain is the id under which requests refused for credentials that
// name no drain are counted. Drain ids are "d" and 16 hex digits, the
// built-in drain "default": no drain has this id.
const UnknownDrain = "unknown"

// Counter names one per-drain count.
type Counter int

// The counters. Their names are the keys of the per-minute summary log line
// and of /health.
const (
	Requests         Counter = iota // POSTs accepted
	Duplicates                      // retried batches answered but not counted again
	FramesAccepted                  // frames read with a readable header
	FramesRejected                  // frames rejected: bad header, bad framing, oversized
	MsgCountMismatch                // batches whose Logplex-Msg-Count disagreed with the frames read
	Measurements                    // measurements handed to the rollup
	PairsRejected                   // pairs rejected by the parser (by reason: PairRejects)
	Late                            // measurements for a minute already closed
	Future                          // measurements stamped more than 5 minutes ahead
	Overflow                        // measurements refused by the series guards (series per minute, the drain's memory share), folded into route other by the routes cap, or events past 100 a minute
	KindConflict                    // a name used with two kinds in one minute: the later kind is refused
	LogplexDropped                  // messages logplex or log-shuttle said it dropped (L10, L12)
	LogplexLost                     // messages log-shuttle said it lost (L13)
	Posted                          // measurements the outlet delivered
	PostRejected                    // measurements the backend refused (400) and were dropped
	PostDropped                     // measurements dropped after retrying for too long, or at shutdown
	PartialsDropped                 // measurements in partial minutes dropped while Postgres was unreachable too long
	LateShifted                     // measurements that reached Postgres after their minute was sealed, posted with a later minute
	AsGauges                        // measures a cumulative OTLP outlet sent as gauges (NAME.min, .max, .pNN): their minute had a negative value
	PostUncertain                   // measurements in requests that got no answer after they were sent (a timeout): each may have arrived
	KeptOut                         // series kept out of a monotonic counter by an outlet (running total, OTLP delta Sum): a count minute with a negative total, or a sum not finite

	IDsIgnored // batches whose Logplex-Frame-Id or X-Request-Id was too long to be one (counted as if they had none)
	Busy       // requests answered 503 because the memory budget for request bodies was full (logplex retries them)
	TooLarge   // requests answered 413: a body, decompressed body or parsed batch over its limit

	BadTimestamp // frames whose timestamp could not be read (neither RFC 3339 nor "-"): counted at their receive time

	// Other refusals of requests (see drain/refusal.go; named in Refusals).
	Unauthorized // requests answered 401: no credentials, or wrong ones
	Unsupported  // requests answered 415: a Content-Type or Content-Encoding drainmeter cannot read
	Unavailable  // requests answered 503 because the database could not tell (credentials, batch ids) or unknown ids were looked up too fast
	SlowBody     // requests whose body came slower than the minimum rate: cut, answered 503

	// Frames rejected, by reason (they add up to FramesRejected; named in FrameRejects).
	RejectedBadHeader // the syslog header could not be read
	RejectedOversized // longer than the frame limit (64 KiB): skipped
	RejectedFraming   // after a bad length or a cut frame: the rest of the batch

	// Pairs rejected, by reason (they add up to PairsRejected; named in PairRejects).
	PairsBadValue          // a value that is not a number
	PairsEmptyName         // measure#=1
	PairsEmptyMember       // unique#x=
	PairsLongMember        // a unique member over 128 bytes
	PairsUnterminatedQuote // the line's pairs ended at an open quote
	PairsLongName          // a name, source or unit over 255 bytes

	NumCounters
)

var counterNames = [...]string{
	Requests: "requests", Duplicates: "duplicates", FramesAccepted: "frames", FramesRejected: "frames_rejected",
	MsgCountMismatch: "msg_count_mismatch", Measurements: "measurements", PairsRejected: "pairs_rejected",
	Late: "late", Future: "future", Overflow: "overflow", KindConflict: "kind_conflict",
	LogplexDropped: "logplex_dropped", LogplexLost: "logplex_lost",
	Posted: "posted", PostRejected: "post_rejected", PostDropped: "post_dropped", PartialsDropped: "partials_dropped",
	LateShifted: "late_shifted", AsGauges: "as_gauges", PostUncertain: "post_uncertain", KeptOut: "kept_out", BadTimestamp: "bad_timestamp", IDsIgnored: "ids_ignored", Busy: "busy", TooLarge: "too_large",
	Unauthorized: "unauthorized", Unsupported: "unsupported", Unavailable: "unavailable", SlowBody: "slow_body",
	RejectedBadHeader: "rejected_bad_header", RejectedOversized: "rejected_oversized", RejectedFraming: "rejected_framing",
	PairsBadValue: "pairs_bad_value", PairsEmptyName: "pairs_empty_name", PairsEmptyMember: "pairs_empty_member",
	PairsLongMember: "pairs_long_member", PairsUnterminatedQuote: "pairs_unterminated_quote",
	PairsLongName: "pairs_long_name",
}

// CounterByName returns the counter with that name.
func CounterByName(name string) (Counter, bool) {
	for c, n := range counterNames {
		if n == name {
			return Counter(c), true
		}
	}
	return 0, false
}

func (c Counter) String() string { return counterNames[c] }

// Counters is the set of counters of one drain.
type Counters struct {
	ID        string
	c         [NumCounters]atomic.Uint64
	lastBatch atomic.Int64 // unix nanoseconds of the last batch counted
	lastRefus atomic.Int64 // unix nanoseconds of the last request refused (401, 413, 415, 503)

	mu   sync.Mutex
	apps []string // the Basic-auth user names seen: the apps that send to this drain
}

// maxApps bounds the app names remembered per drain.
const maxApps = 32

// SeenApp records the name of an app that sent to this drain.
func (d *Counters) SeenApp(app string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.apps {
		if a == app {
			return
		}
	}
	if len(d.apps) < maxApps {
		d.apps = append(d.apps, app)
	}
}

// Apps returns the app names seen, in the order first seen.
func (d *Counters) Apps() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.apps...)
}

// Batch records that a batch was counted at t.
func (d *Counters) Batch(t time.Time) {
	n := t.UnixNano()
	for {
		old := d.lastBatch.Load()
		if n <= old || d.lastBatch.CompareAndSwap(old, n) {
			return
		}
	}
}

// LastBatch returns when the last batch was counted (zero: never).
func (d *Counters) LastBatch() time.Time {
	n := d.lastBatch.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Refused counts a request refused at t under c (one of RefusalCounters).
func (d *Counters) Refused(c Counter, t time.Time) {
	d.c[c].Add(1)
	n := t.UnixNano()
	for {
		old := d.lastRefus.Load()
		if n <= old || d.lastRefus.CompareAndSwap(old, n) {
			return
		}
	}
}

// LastRefused returns when a request was last refused (zero: never).
func (d *Counters) LastRefused() time.Time {
	n := d.lastRefus.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Add adds n to counter c.
func (d *Counters) Add(c Counter, n uint64) {
	if n != 0 {
		d.c[c].Add(n)
	}
}

// Get returns the current value of c.
func (d *Counters) Get(c Counter) uint64 { return d.c[c].Load() }

// Snapshot is a copy of a drain's counters.
type Snapshot [NumCounters]uint64

// Snapshot copies the counters.
func (d *Counters) Snapshot() Snapshot {
	var s Snapshot
	for i := range s {
		s[i] = d.c[i].Load()
	}
	return s
}

// Sub returns s - prev, counter by counter.
func (s Snapshot) Sub(prev Snapshot) Snapshot {
	for i := range s {
		s[i] -= prev[i]
	}
	return s
}

// IsZero reports whether every counter is zero.
func (s Snapshot) IsZero() bool { return s == Snapshot{} }

// Registry hands out the counters of each drain.
type Registry struct {
	mu     sync.RWMutex
	drains map[string]*Counters

	logMu  sync.Mutex
	logged map[string]Snapshot // what the last summary lines covered
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{drains: make(map[string]*Counters)} }

// Drain returns the counters of drain id, creating them on first use.
func (r *Registry) Drain(id string) *Counters {
	r.mu.RLock()
	d := r.drains[id]
	r.mu.RUnlock()
	if d != nil {
		return d
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d = r.drains[id]; d == nil {
		d = &Counters{ID: id}
		r.drains[id] = d
	}
	return d
}

// Lookup returns the counters of drain id if it has any.
func (r *Registry) Lookup(id string) (*Counters, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.drains[id]
	return d, ok
}

// All returns every drain's counters, ordered by id.
func (r *Registry) All() []*Counters {
	r.mu.RLock()
	out := make([]*Counters, 0, len(r.drains))
	for _, d := range r.drains {
		out = append(out, d)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LogEvery logs one line per drain with what changed in the last interval,
// until ctx is done. Drains with no activity are not logged.
func (r *Registry) LogEvery(ctx context.Context, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.LogSummary(log)
		}
	}
}

// LogSummary logs, for every drain, what changed since the last summary
// lines (the last interval of LogEvery, or since the start): every line is
// a change, so that lines add up, the one at shutdown included.
func (r *Registry) LogSummary(log *slog.Logger) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logged == nil {
		r.logged = map[string]Snapshot{}
	}
	for _, d := range r.All() {
		snap := d.Snapshot()
		delta := snap.Sub(r.logged[d.ID])
		r.logged[d.ID] = snap
		if delta.IsZero() {
			continue
		}
		attrs := []any{"drain", d.ID}
		for c := Counter(0); c < NumCounters; c++ {
			if delta[c] != 0 || c == Requests || c == FramesAccepted || c == Measurements {
				attrs = append(attrs, c.String(), delta[c])
			}
		}
		log.Info("drain summary", attrs...)
	}
}
