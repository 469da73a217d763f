package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a chaos run did and found.
type Report struct {
	Seed           uint64
	Webs           int
	Rate           int // batches per second
	FramesPerBatch int
	Duration       time.Duration // the whole run, setup and settling included
	Load           time.Duration
	Events         []Event

	Batches             int
	Immediate           int // copies sent at once to another dyno
	Delayed             int // copies sent 3 s later
	Attempts            int // POSTs, every copy and every retry
	AttemptsFailed      int // not answered 200 (the dyno was going or gone): sent again
	AttemptsPinned      int // kept on one dyno by a window (Postgres down, or the dyno cut off)
	Frames              int
	Measurements        int // in drainmeter's unit (one per series a value goes to)
	Minutes             int // minutes with data
	Shifts              int
	ShiftList           []string
	ShiftedMeasurements int

	Kills      []KillReport
	Partitions []PartitionReport
	Outlets    []OutletReport
	ErrorLines map[string]int // error lines of every process, by message (outages log them)
	Violations []string
	Dir        string // logs, kept when the run failed
}

// Event is something the run did.
type Event struct {
	At   time.Duration // since the run started
	What string
}

// KillReport is a kill -9 and what it lost.
type KillReport struct {
	Process  string
	At       time.Duration
	Accepted int      // batches the process answered 200 within PARTIAL_FLUSH_INTERVAL + 1 s before the kill
	InFlight int      // batches it had in flight at the kill
	Bound    int      // their measurements: the most the kill may lose
	Lost     int      // measurements lost
	Minutes  []string // the minutes those batches' lines are in
}

// PartitionReport is a dyno cut off from Postgres.
type PartitionReport struct {
	Web                  string
	From, To             time.Duration
	Batches              int // sent to it meanwhile
	Refused              int
	P50, P99, Max        time.Duration
	Health               int // GET /health meanwhile
	HealthFailed         int
	HealthP99, HealthMax time.Duration
	Shifts, Shifted      int // its partials written after their minute was sealed, and their measurements
}

// OutletReport is what an outlet received and how it was checked.
type OutletReport struct {
	Name          string
	Requests      int
	Outage        int // requests refused (503) during the outage
	Points        int
	SeriesMinutes int // series compared exactly in minutes no shift or kill touched
	Percentiles   int // percentiles compared (within 1 %)
	Groups        int // groups of minutes joined by shifts or touched by a kill, compared per series
	Duplicates    int
}

// OK reports whether the run found nothing wrong.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Write prints the report.
func (r *Report) Write(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("== drainmeter chaos run: seed %d, %d webs, %d batches/s of %d frames; load %v, whole run %v",
		r.Seed, r.Webs, r.Rate, r.FramesPerBatch, r.Load.Round(time.Second), r.Duration.Round(time.Second))
	p("events:")
	for _, e := range r.Events {
		p("  +%6.1fs  %s", e.At.Seconds(), e.What)
	}
	p("load: %d batches, %d frames, %d measurements over %d minutes", r.Batches, r.Frames, r.Measurements, r.Minutes)
	p("  %d copies at once to another dyno, %d copies 3 s later; %d POSTs, %d not answered 200 (sent again), %d kept on one dyno (Postgres down or the dyno cut off)",
		r.Immediate, r.Delayed, r.Attempts, r.AttemptsFailed, r.AttemptsPinned)
	p("shifts: %d partials (%d measurements) written after their minute was sealed, posted with a later minute", r.Shifts, r.ShiftedMeasurements)
	for _, s := range r.ShiftList {
		p("  %s", s)
	}
	for _, pr := range r.Partitions {
		p("partition of %s (+%.0fs..+%.0fs): %d batches to it, p50 %v p99 %v max %v, %d refused; /health ×%d p99 %v max %v, %d failed; %d of its partials shifted (%d measurements)",
			pr.Web, pr.From.Seconds(), pr.To.Seconds(), pr.Batches, ms(pr.P50), ms(pr.P99), ms(pr.Max), pr.Refused,
			pr.Health, ms(pr.HealthP99), ms(pr.HealthMax), pr.HealthFailed, pr.Shifts, pr.Shifted)
	}
	for _, k := range r.Kills {
		p("kill -9 of %s at +%.1fs: lost %d measurements; bound %d (%d batches answered 200 in the %v before, %d in flight; minutes %s)",
			k.Process, k.At.Seconds(), k.Lost, k.Bound, k.Accepted, flushInterval+time.Second, k.InFlight, strings.Join(k.Minutes, ", "))
	}
	for _, o := range r.Outlets {
		pct := fmt.Sprintf("%d percentiles within 1 %%", o.Percentiles)
		if o.Name == "otlp" {
			pct = "percentiles checked on Librato's" // delta histograms are downscaled past 160 buckets
		}
		p("outlet %s: %d requests (%d refused during its outage), %d points, %d duplicates; %d series-minutes exact, %s, %d groups of shifted or killed minutes compared per series",
			o.Name, o.Requests, o.Outage, o.Points, o.Duplicates, o.SeriesMinutes, pct, o.Groups)
	}
	if len(r.ErrorLines) > 0 {
		p("error lines logged (expected during the outages):")
		for _, msg := range slices.Sorted(maps.Keys(r.ErrorLines)) {
			p("  %4d  %s", r.ErrorLines[msg], msg)
		}
	}
	if r.Dir != "" {
		p("logs: %s", r.Dir)
	}
	if r.OK() {
		p("OK: nothing lost beyond the kill -9 bound, nothing counted twice, each minute posted once per outlet")
		return
	}
	p("FAILED: %d violations", len(r.Violations))
	for _, v := range first(r.Violations, 50) {
		p("  - %s", v)
	}
	if len(r.Violations) > 50 {
		p("  … and %d more", len(r.Violations)-50)
	}
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
