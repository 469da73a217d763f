package main

import (
	"slices"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// selfMetrics posts drainmeter's own per-drain counters through each
// drain's outlets, as counts under the drainmeter. prefix, once a minute, so
// that a user can alert on "my drain went quiet" where their metrics are.
// Every dyno adds its own counts to the minute they happened in (they sum
// across dynos like any count); the outlets' minutes waiting are samples,
// one series per outlet kind (source = the kind).
type selfMetrics struct {
	store  *rollup.Store
	dest   outlet.Destinations
	reg    *stats.Registry
	lanes  func() []outlet.Status
	minute int64
	acc    map[string]stats.Snapshot
}

// selfCounts are the counters posted, and their names.
var selfCounts = []struct {
	name     string
	counters []stats.Counter
}{
	{"drainmeter.frames", []stats.Counter{stats.FramesAccepted}},
	{"drainmeter.frames_rejected", []stats.Counter{stats.FramesRejected}},
	{"drainmeter.duplicates", []stats.Counter{stats.Duplicates}},
	{"drainmeter.late", []stats.Counter{stats.Late, stats.Future}},
	{"drainmeter.late_shifted", []stats.Counter{stats.LateShifted}},
	{"drainmeter.overflow", []stats.Counter{stats.Overflow}},
	{"drainmeter.logplex_dropped", []stats.Counter{stats.LogplexDropped, stats.LogplexLost}},
	{"drainmeter.posted", []stats.Counter{stats.Posted}},
	{"drainmeter.post_errors", []stats.Counter{stats.PostRejected, stats.PostDropped, stats.PartialsDropped}},
}

// observe adds the recorder's deltas at now; when now is in a new minute,
// the previous minute's counts go into the store first.
func (s *selfMetrics) observe(now time.Time, deltas []stats.Delta) {
	m := rollup.FloorMinute(now.Unix())
	if s.minute != 0 && m != s.minute {
		s.flush(time.Unix(s.minute+59, 0))
	}
	s.minute = m
	if s.acc == nil {
		s.acc = map[string]stats.Snapshot{}
	}
	for _, d := range deltas {
		a := s.acc[d.Drain]
		for i := range a {
			a[i] += d.Counts[i]
		}
		s.acc[d.Drain] = a
	}
}

// flush adds a minute's self-metrics, stamped at, for every drain this
// process has seen and every drain with a lane (zeros included: a quiet
// drain shows as 0 frames, also after a restart, so that an alert on
// silence keeps firing), except drains whose only outlet is the log (the
// status page shows the same, and `heroku logs` stays readable).
func (s *selfMetrics) flush(at time.Time) {
	waiting := map[string][]outlet.Status{}
	for _, l := range s.lanes() {
		waiting[l.Drain] = append(waiting[l.Drain], l)
	}
	drains := s.reg.All()
	for id := range waiting {
		if !slices.ContainsFunc(drains, func(d *stats.Counters) bool { return d.ID == id }) {
			drains = append(drains, s.reg.Drain(id))
		}
	}
	for _, d := range drains {
		if od, ok := s.dest.Destination(d.ID); !ok || (len(od.Outlets) == 1 && od.Outlets[0].Kind == outlet.Log) {
			continue
		}
		a := s.acc[d.ID]
		var ms []parse.Measurement
		for _, c := range selfCounts {
			var v uint64
			for _, k := range c.counters {
				v += a[k]
			}
			ms = append(ms, parse.Measurement{Kind: parse.Count, Name: []byte(c.name), Value: float64(v), Time: at})
		}
		for _, l := range waiting[d.ID] {
			ms = append(ms, parse.Measurement{Kind: parse.Sample, Name: []byte("drainmeter.outlet.minutes_waiting"),
				Source: []byte(l.Kind), Value: float64(l.Waiting), Time: at})
		}
		s.store.Add(at, d, ms)
	}
	clear(s.acc)
}
