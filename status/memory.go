package status

import (
	"cmp"
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/stats"
)

// FillCounters sets a drain's counters from a snapshot of them.
func FillCounters(d *Report, s stats.Snapshot) {
	d.Frames = s[stats.FramesAccepted]
	d.FramesRejected = s[stats.FramesRejected]
	d.Duplicates = s[stats.Duplicates]
	d.Late = s[stats.Late]
	d.LateShifted = s[stats.LateShifted]
	d.AsGauges = s[stats.AsGauges]
	d.KeptOut = s[stats.KeptOut]
	d.BadTimestamp = s[stats.BadTimestamp]
	d.Future = s[stats.Future]
	d.Overflow = s[stats.Overflow]
	d.KindConflict = s[stats.KindConflict]
	d.LogplexDropped = s[stats.LogplexDropped]
	d.LogplexLost = s[stats.LogplexLost]
	d.Refused = RefusedCounts(s)
	d.Rejected = s.Rejected()
}

// RefusedCounts returns the refusal counters of a snapshot that are not
// zero, by name.
func RefusedCounts(s stats.Snapshot) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range stats.RefusalCounters {
		if s[c] > 0 {
			out[c.String()] = s[c]
		}
	}
	return out
}

// FromLane converts an outlet lane's status.
func FromLane(st outlet.Status) Outlet {
	o := Outlet{Kind: string(st.Kind), Target: st.Target, State: string(st.State), MinutesWaiting: st.Waiting,
		LastError: st.LastError, Posted: st.Posted, Rejected: st.Rejected, Dropped: st.Dropped,
		LastPostAt: timePtr(st.LastPostAt), LastErrorAt: timePtr(st.LastErrorAt), PostUncertain: st.Uncertain}
	switch st.State {
	case outlet.StatePaused:
		o.PauseReason = cmp.Or(st.PauseReason, outlet.PauseCredentials)
		o.Fix = outlet.PauseFix(o.PauseReason)
		o.NextAttemptAt = timePtr(st.NextAttempt)
	case outlet.StateRetrying, outlet.StateUncertain:
		o.NextAttemptAt = timePtr(st.NextAttempt)
	}
	if o.State == "" {
		o.State = string(outlet.StateOK)
	}
	return o
}

// FromConfig is an outlet that has posted nothing yet.
func FromConfig(o *outlet.Outlet) Outlet {
	return Outlet{Kind: string(o.Kind), Target: o.Redacted(), State: string(outlet.StateOK)}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// History keeps the frames accepted per drain and minute for the last hour.
type History struct {
	mu     sync.Mutex
	drains map[string]*[60]slot
}

type slot struct {
	minute int64
	frames uint64
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{drains: map[string]*[60]slot{}} }

// Add records frames accepted at t.
func (h *History) Add(drain string, t time.Time, frames uint64) {
	if frames == 0 {
		return
	}
	m := t.Unix() / 60
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.drains[drain]
	if r == nil {
		r = &[60]slot{}
		h.drains[drain] = r
	}
	s := &r[m%60]
	if s.minute != m {
		*s = slot{minute: m}
	}
	s.frames += frames
}

// Last60 returns the frames of the last 60 minutes up to now's, oldest first.
func (h *History) Last60(drain string, now time.Time) []uint64 {
	out := make([]uint64, 60)
	m := now.Unix() / 60
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.drains[drain]
	if r == nil {
		return out
	}
	for i := range 60 {
		want := m - 59 + int64(i)
		if s := r[want%60]; s.minute == want {
			out[i] = s.frames
		}
	}
	return out
}

// Memory is the Source of a process without a database: its own counters
// since it started.
type Memory struct {
	Version string
	Reg     *stats.Registry
	History *History
	Dests   outlet.Destinations
	Builtin string                 // the built-in drain's id ("" if there is none)
	Lanes   func() []outlet.Status // the outlet lanes
	Open    func() map[string]int  // open series per drain
	Now     func() time.Time
}

// Snapshot returns every drain's status, or drain id's.
func (m *Memory) Snapshot(_ context.Context, id string) (*Snapshot, error) {
	now := m.Now()
	snap := &Snapshot{Version: m.Version, Store: "memory", Now: now.UTC(), Window: "since start", Dynos: 1}
	ids := map[string]bool{}
	if m.Builtin != "" {
		ids[m.Builtin] = true
	}
	for _, d := range m.Reg.All() {
		ids[d.ID] = true
	}
	lanes := map[string][]outlet.Status{}
	for _, l := range m.Lanes() {
		lanes[l.Drain] = append(lanes[l.Drain], l)
	}
	open := m.Open()
	for did := range ids {
		if id != "" && did != id {
			continue
		}
		ds := m.Reg.Drain(did)
		if did == stats.UnknownDrain {
			snap.Unknown = &Refusals{Refused: RefusedCounts(ds.Snapshot()), LastRefusedAt: timePtr(ds.LastRefused())}
			continue
		}
		d := Report{ID: did, Name: did, Apps: ds.Apps(), LastBatchAt: timePtr(ds.LastBatch()), LastRefusedAt: timePtr(ds.LastRefused()),
			LinesPerMinute: m.History.Last60(did, now), OpenSeries: open[did]}
		if d.Apps == nil {
			d.Apps = []string{}
		}
		FillCounters(&d, ds.Snapshot())
		od, _ := m.Dests.Destination(did)
		if od != nil && od.Name != "" {
			d.Name = od.Name
		}
		d.Outlets = Outlets(od, lanes[did])
		d.Attributes = Attributes(od)
		snap.Drains = append(snap.Drains, d)
	}
	sort.Slice(snap.Drains, func(i, j int) bool { return snap.Drains[i].Name < snap.Drains[j].Name })
	return snap, nil
}

// Outlets lists a drain's outlets: lanes where they exist, configured
// outlets (that have posted nothing yet) otherwise.
func Outlets(d *outlet.Destination, lanes []outlet.Status) []Outlet {
	out := []Outlet{}
	seen := map[outlet.Kind]bool{}
	for _, l := range lanes {
		if d != nil {
			if _, ok := d.Outlet(l.Kind); !ok {
				continue // an outlet removed since
			}
		}
		seen[l.Kind] = true
		out = append(out, FromLane(l))
	}
	if d != nil {
		for i := range d.Outlets {
			if !seen[d.Outlets[i].Kind] {
				out = append(out, FromConfig(&d.Outlets[i]))
			}
		}
	}
	if d != nil {
		for i := range out {
			if o, ok := d.Outlet(outlet.Kind(out[i].Kind)); ok {
				out[i].Config, out[i].Native = ConfigDesc(o), o.Native()
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// ConfigDesc says which configuration of an outlet is in use: the version
// drains set gave it (every dyno runs it within DRAIN_CACHE_TTL), or the
// config vars of the built-in drain, and its options. Never a credential.
func ConfigDesc(o *outlet.Outlet) string {
	var s string
	switch {
	case o.Version > 0:
		s = "version " + strconv.FormatInt(o.Version, 10)
	case o.Kind == outlet.Log:
		s = "no outlet set: rollups logged"
	default:
		s = "config vars"
	}
	if o.Kind == outlet.OTLP {
		t := o.Temporality
		if t == "" {
			t = outlet.Cumulative
		}
		s += ", " + string(t)
		if o.PercentileGauges {
			s += ", percentile gauges"
		}
		if o.MaxBuckets > 0 && o.MaxBuckets != outlet.DefaultMaxBuckets {
			s += ", max buckets " + strconv.Itoa(o.MaxBuckets)
		}
	}
	if o.Native() {
		s += ", native histograms"
	}
	return s
}
