// Package status is what drainmeter tells its users about their drains: the
// status page (GET /), each drain owner's page (GET /drains/{id}), and the
// same data as JSON. A Source gathers a Snapshot (a Report per drain) — in
// memory from this process's counters, or with a database from every dyno's
// counters in Postgres — and the handlers render it.
package status

import (
	"context"
	"time"

	"github.com/drainmeter/drainmeter/internal/connlimit"
	"github.com/drainmeter/drainmeter/outlet"
)

// Snapshot is everything the pages show.
type Snapshot struct {
	Version  string    `json:"version"`
	Store    string    `json:"store"`              // "memory" or "postgres"
	Database string    `json:"database,omitempty"` // postgres only: ok, read_only, write_failing or unreachable (the last writes and pings)
	Dedup    string    `json:"dedup,omitempty"`    // "shared" or "local" (a Postgres outage: retries across dynos may count twice)
	Now      time.Time `json:"generated_at"`
	Window   string    `json:"window"` // what the counters cover, e.g. "24h"
	Dynos    int       `json:"dynos"`  // web processes whose counters are included
	Drains   []Report  `json:"drains"`

	// PartialsQueued is how many partial minutes this dyno holds in memory
	// for Postgres (postgres only).
	PartialsQueued int `json:"partials_queued,omitempty"`
	// NotRecordedSince is the start of the oldest minute this dyno could
	// not write (postgres only, while writes fail): the per-minute figures
	// from it on are not yet recorded, not 0.
	NotRecordedSince *time.Time `json:"not_recorded_since,omitempty"`
	// Unknown counts the requests refused for credentials that name no
	// drain (the status page only).
	Unknown *Refusals `json:"unknown_drain,omitempty"`
	// Connections are this process's connection counts (the status page
	// only; internal/connlimit).
	Connections *connlimit.Stats `json:"connections,omitempty"`
}

// Refusals are requests refused: their counts by kind (unauthorized: 401;
// too_large: 413; unsupported: 415; busy, unavailable, slow_body: 503) and
// when the last one was (to the minute with a database).
type Refusals struct {
	Refused       map[string]uint64 `json:"refused"`
	LastRefusedAt *time.Time        `json:"last_refused_at"`
}

// Report is one drain's status, as the pages show it. The counters cover
// Snapshot.Window, summed over every dyno (a dyno that died still counts).
type Report struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Apps           []string   `json:"apps"`          // the apps seen sending (Basic-auth user names)
	Attributes     []string   `json:"attributes"`    // the drain's own attributes, K=V (OTEL_RESOURCE_ATTRIBUTES, --attribute)
	LastBatchAt    *time.Time `json:"last_batch_at"` // nil: waiting for the first batch
	Frames         uint64     `json:"frames"`
	FramesRejected uint64     `json:"frames_rejected"`
	// Rejected counts rejected frames by reason (bad_header, oversized,
	// framing) and rejected pairs by reason (bad_value, empty_name, …).
	Rejected       map[string]uint64 `json:"rejected"`
	LinesPerMinute []uint64          `json:"lines_per_minute"` // the last 60 minutes, oldest first; the last one is the current minute
	Duplicates     uint64            `json:"duplicates"`
	Late           uint64            `json:"late"`         // measurements for a minute already closed
	LateShifted    uint64            `json:"late_shifted"` // measurements that reached Postgres late, posted with a later minute
	AsGauges       uint64            `json:"as_gauges"`    // measures sent to cumulative OTLP as gauges: their minute had a negative value
	KeptOut        uint64            `json:"kept_out"`     // series kept out of monotonic counters by an outlet: a count minute with a negative total
	Future         uint64            `json:"future"`
	Overflow       uint64            `json:"overflow"`
	KindConflict   uint64            `json:"kind_conflict"`
	LogplexDropped uint64            `json:"logplex_dropped"` // messages logplex or log-shuttle said they dropped (L10, L12)
	LogplexLost    uint64            `json:"logplex_lost"`    // messages log-shuttle said it lost (L13)
	// Refused counts the drain's requests refused, by kind (see Refusals),
	// and LastRefusedAt is when the last one was (to the minute with a
	// database; nil: none in the window).
	Refused       map[string]uint64 `json:"refused"`
	LastRefusedAt *time.Time        `json:"last_refused_at"`
	OpenSeries    int               `json:"open_series"` // series of the open minutes, over all dynos
	Outlets       []Outlet          `json:"outlets"`
	// AddCommand is the `heroku drains:add` line for this drain, its secret
	// elided; set for drains that are still waiting for their first batch.
	AddCommand string `json:"add_command,omitempty"`

	BadTimestamp uint64 `json:"bad_timestamp"` // frames whose timestamp could not be read, counted at their receive time
}

// Outlet is one outlet of a drain.
type Outlet struct {
	Kind   string `json:"kind"`   // log, librato, otlp, remotewrite
	Target string `json:"target"` // the endpoint, without credentials
	Config string `json:"config"` // which configuration the lane runs: its version and options
	// Native: a remote-write outlet sends measures as native histograms.
	Native         bool       `json:"native_histograms,omitempty"`
	State          string     `json:"state"` // ok, retrying, uncertain, paused, giving_up
	LastPostAt     *time.Time `json:"last_post_at"`
	MinutesWaiting int        `json:"minutes_waiting"`
	LastError      string     `json:"last_error"` // never a secret
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	Posted         uint64     `json:"posted"`   // measurements (points) the receiver accepted
	Rejected       uint64     `json:"rejected"` // refused for good
	Dropped        uint64     `json:"dropped"`  // given up on: too old, or shutdown
	// PostUncertain counts measurements in requests that got no answer
	// after they were sent (a timeout): each may have arrived.
	PostUncertain uint64 `json:"post_uncertain"`
	// PauseReason says why a paused outlet is paused (credentials,
	// wrong_url, redirect, not_api, too_large); Fix what to do about it.
	PauseReason string `json:"pause_reason,omitempty"`
	Fix         string `json:"fix,omitempty"`
	// NextAttemptAt is when a retrying, paused or uncertain outlet tries
	// again (a paused one: its probe; at once when its configuration changes).
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// Attributes lists a drain's own attributes as K=V.
func Attributes(d *outlet.Destination) []string {
	out := []string{}
	if d != nil {
		for _, a := range d.Attributes {
			out = append(out, a.Key+"="+a.Value)
		}
	}
	return out
}

// Source gathers snapshots.
type Source interface {
	// Snapshot returns the status of every drain, or of the drain with id
	// only (when id is not empty).
	Snapshot(ctx context.Context, id string) (*Snapshot, error)
}
