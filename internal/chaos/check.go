package chaos

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
)

// check compares what arrived with what was sent and builds the report.
func (r *run) check(totals *loadgen.Totals, shifts []shift, load time.Duration) *Report {
	batches, attempts, failed := r.load.snapshot()
	r.mu.Lock()
	events := slices.Clone(r.events)
	r.mu.Unlock()
	rep := &Report{Seed: r.cfg.Seed, Webs: r.cfg.Webs, Rate: r.cfg.Rate, FramesPerBatch: r.cfg.Frames, Load: load,
		Duration: time.Since(r.start), Events: events, Batches: len(batches), Frames: totals.Frames,
		Measurements: totals.AllMeasurements(), Minutes: len(totals.Measurements), ErrorLines: map[string]int{}}

	r.checkLoad(rep, attempts, failed)
	kills := r.checkKills(rep, attempts)
	r.checkPartitions(rep, attempts, shifts)

	// What was sent, per series and minute.
	counts, measures := map[string]bool{}, map[string]bool{}
	want := map[skey]*value{}
	values := map[skey][]float64{}
	for k, v := range totals.Counts {
		counts[k.Name] = true
		want[skey{k.Name, k.Source, k.Minute}] = &value{value: v}
	}
	for k, vs := range totals.Measures {
		measures[k.Name] = true
		sorted := slices.Clone(vs)
		slices.Sort(sorted)
		w := &value{measure: true, count: int64(len(vs)), min: sorted[0], max: sorted[len(sorted)-1]}
		for _, v := range vs {
			w.sum += v
		}
		sk := skey{k.Name, k.Source, k.Minute}
		want[sk], values[sk] = w, sorted
	}

	// Minutes joined by shifts, and minutes a kill may have lost lines of,
	// are compared together; every other minute on its own.
	r.sealed.mu.Lock()
	sealed := r.sealed.minutes
	r.sealed.mu.Unlock()
	uf := unionFind{}
	for m := range totals.Measurements {
		uf.add(m)
	}
	for m := range sealed {
		uf.add(m)
	}
	touched := map[int64]bool{}
	in, out := map[int64]int{}, map[int64]int{}
	for _, s := range shifts {
		uf.union(s.from, s.to)
		touched[s.from], touched[s.to] = true, true
		out[s.from] += s.measurements
		in[s.to] += s.measurements
		rep.ShiftedMeasurements += s.measurements
	}
	rep.Shifts = len(shifts)
	rep.ShiftList = summarizeShifts(shifts)
	killOf := map[int64]int{}
	for i, k := range kills {
		for m := range k.minutes {
			uf.add(m)
			touched[m] = true
			killOf[m] = i
		}
	}
	groups := map[int64][]int64{}
	for m := range uf {
		root := uf.find(m)
		groups[root] = append(groups[root], m)
	}

	// Measurements, minute by minute, as sealed: what was sent, less what
	// was shifted out, plus what was shifted in; less, in the minutes of a
	// kill, what that kill lost.
	minutes := make([]int64, 0, len(uf))
	for m := range uf {
		minutes = append(minutes, m)
	}
	slices.Sort(minutes)
	for _, m := range minutes {
		got := 0
		if sm := sealed[m]; sm != nil {
			got = sm.measurements
		}
		lost := totals.Measurements[m] - out[m] + in[m] - got
		if i, ok := killOf[m]; ok {
			kills[i].Lost += lost
			if lost < 0 {
				rep.violate("minute %s (a kill's): %d measurements more than sent (%d sent, %d shifted out, %d in, %d sealed)",
					minuteStr(m), -lost, totals.Measurements[m], out[m], in[m], got)
			}
			continue
		}
		if lost != 0 {
			what := "missing"
			if lost < 0 {
				what, lost = "counted twice", -lost
			}
			rep.violate("minute %s: %d measurements %s (%d sent, %d shifted out, %d shifted in, %d sealed)",
				minuteStr(m), lost, what, totals.Measurements[m], out[m], in[m], got)
		}
	}
	for _, k := range kills {
		rep.Kills = append(rep.Kills, k.KillReport)
		if k.Lost > k.Bound {
			rep.violate("%s: kill -9 lost %d measurements, more than the %d of the batches it accepted in the %v before the kill",
				k.Process, k.Lost, k.Bound, flushInterval+time.Second)
		}
	}

	// Each outlet: once per series and minute, exactly what was sent (per
	// minute, or over a group of joined minutes), and what was sealed.
	for _, p := range []*posted{librato(r.lib, counts, measures, r.fails), otlp(r.otlp, counts, measures, r.fails)} {
		o := OutletReport{Name: p.name, Requests: p.requests, Outage: p.outage, Points: p.points, Duplicates: len(p.duplicates)}
		if len(p.duplicates) > 0 {
			rep.violate("%s: %d points posted more than once, e.g. %s", p.name, len(p.duplicates), strings.Join(first(p.duplicates, 3), "; "))
		}
		if len(p.refused) > 0 {
			rep.violate("%s refused %d requests outside the outage, e.g. %s", p.name, len(p.refused), strings.Join(first(p.refused, 2), "; "))
		}
		byMinute := map[int64][]skey{}
		for k := range want {
			byMinute[k.minute] = append(byMinute[k.minute], k)
		}
		for k := range p.values {
			if want[k] == nil {
				byMinute[k.minute] = append(byMinute[k.minute], k)
			}
		}
		for root, ms := range groups {
			if len(ms) == 1 && !touched[root] {
				o.SeriesMinutes += r.comparePlain(rep, p, byMinute[root], want, values, &o)
				continue
			}
			_, lossy := killOf[root]
			for _, m := range ms {
				_, k := killOf[m]
				lossy = lossy || k
			}
			o.Groups++
			r.compareGroup(rep, p, ms, byMinute, want, lossy)
		}
		compareSealed(rep, p, sealed)
		rep.Outlets = append(rep.Outlets, o)
	}

	r.checkLogs(rep)
	return rep
}

// comparePlain compares one minute's series exactly; it returns how many.
func (r *run) comparePlain(rep *Report, p *posted, keys []skey, want map[skey]*value, values map[skey][]float64, o *OutletReport) int {
	n := 0
	for _, k := range keys {
		w, g := want[k], p.values[k]
		switch {
		case w == nil:
			rep.violate("%s: %s posted, never sent: %s", p.name, k, g)
		case g == nil:
			rep.violate("%s: %s missing (sent %s)", p.name, k, w)
		case !same(g, w):
			rep.violate("%s: %s = %s, sent %s", p.name, k, g, w)
		default:
			n++
		}
		if w == nil || g == nil || !w.measure || p.name != "librato" {
			continue
		}
		for _, q := range []float64{0.5, 0.95, 0.99} {
			exact := nearestRank(values[k], q)
			got, ok := g.pct[q]
			if !ok || !near(got, exact, 0.01) {
				rep.violate("%s: %s p%g = %v (posted %v), exact %v: not within 1 %%", p.name, k, q*100, got, ok, exact)
				continue
			}
			o.Percentiles++
		}
	}
	return n
}

// compareGroup compares, per series, the sums over minutes joined by shifts
// (exact: data moved between them, none lost) or touched by a kill (the
// posted can only be less).
func (r *run) compareGroup(rep *Report, p *posted, ms []int64, byMinute map[int64][]skey, want map[skey]*value, lossy bool) {
	type series struct{ name, source string }
	sent, got := map[series]*value{}, map[series]*value{}
	add := func(to map[series]*value, k skey, v *value) {
		s := series{k.name, k.source}
		a := to[s]
		if a == nil {
			a = &value{measure: v.measure, min: math.Inf(1), max: math.Inf(-1)}
			to[s] = a
		}
		a.value += v.value
		a.count += v.count
		a.sum += v.sum
		if v.measure {
			a.min, a.max = math.Min(a.min, v.min), math.Max(a.max, v.max)
		}
	}
	for _, m := range ms {
		for _, k := range byMinute[m] {
			if w := want[k]; w != nil {
				add(sent, k, w)
			}
			if g := p.values[k]; g != nil {
				add(got, k, g)
			}
		}
	}
	names := make([]string, 0, len(ms))
	for _, m := range slices.Sorted(slices.Values(ms)) {
		names = append(names, minuteStr(m))
	}
	where := "minutes " + strings.Join(names, ", ")
	for s, w := range sent {
		g := got[s]
		switch {
		case g == nil && !lossy:
			rep.violate("%s: %s{source=%s} over %s missing (sent %s)", p.name, s.name, s.source, where, w)
		case g == nil:
		case !lossy && !same(g, w):
			rep.violate("%s: %s{source=%s} over %s = %s, sent %s", p.name, s.name, s.source, where, g, w)
		case lossy && (g.value > w.value || g.count > w.count || g.sum > w.sum*(1+1e-9) || g.measure && (g.min < w.min || g.max > w.max)):
			rep.violate("%s: %s{source=%s} over %s (a kill's) = %s, more than sent %s", p.name, s.name, s.source, where, g, w)
		}
	}
	for s, g := range got {
		if sent[s] == nil {
			rep.violate("%s: %s{source=%s} over %s posted, never sent: %s", p.name, s.name, s.source, where, g)
		}
	}
}

// compareSealed checks that the outlet got exactly what was sealed.
func compareSealed(rep *Report, p *posted, sealed map[int64]*sealedMinute) {
	bad := 0
	for m, sm := range sealed {
		for k, s := range sm.series {
			if g := p.values[k]; g == nil || !same(g, s) {
				if bad++; bad <= 5 {
					rep.violate("%s: %s = %s, sealed %s (minute %s)", p.name, k, g, s, minuteStr(m))
				}
			}
		}
	}
	for k, g := range p.values {
		if sm := sealed[k.minute]; sm == nil || sm.series[k] == nil {
			if bad++; bad <= 5 {
				rep.violate("%s: %s = %s posted, never sealed", p.name, k, g)
			}
		}
	}
	if bad > 5 {
		rep.violate("%s: %d points in all differ from what was sealed", p.name, bad)
	}
}

// checkLoad checks that every batch was accepted, within logplex's 5 s.
func (r *run) checkLoad(rep *Report, attempts []*attempt, failed []*batch) {
	copies := map[[2]any]bool{}
	var slow []string
	for _, a := range attempts {
		rep.Attempts++
		if a.status != 200 {
			rep.AttemptsFailed++
		}
		if a.pinned {
			rep.AttemptsPinned++
		}
		if a.kind != "first" && !copies[[2]any{a.b, a.kind}] {
			copies[[2]any{a.b, a.kind}] = true
			if a.kind == "immediate" {
				rep.Immediate++
			} else {
				rep.Delayed++
			}
		}
		if took := a.end.Sub(a.start); took > 5*time.Second || strings.Contains(a.err, "Client.Timeout") {
			slow = append(slow, fmt.Sprintf("batch %s to %s at +%.1fs: %v %s", a.b.id, a.inst, r.off(a.start), took.Round(time.Millisecond), a.err))
		}
	}
	if len(slow) > 0 {
		rep.violate("%d attempts not answered within logplex's 5 s, e.g. %s", len(slow), strings.Join(first(slow, 3), "; "))
	}
	for _, b := range first(failed, 5) {
		rep.violate("batch %s (+%.1fs) was never accepted", b.id, r.off(b.at))
	}
	if len(failed) > 5 {
		rep.violate("%d batches in all were never accepted", len(failed))
	}
}

// killInfo is a kill, what it can have lost, and which minutes.
type killInfo struct {
	KillReport
	minutes map[int64]bool
}

// checkKills works out each kill's bound: the batches the killed process
// answered 200 within PARTIAL_FLUSH_INTERVAL + 1 s before the kill, and
// those it had in flight at the kill (it may have counted them, and claimed
// their ids, before it died).
func (r *run) checkKills(rep *Report, attempts []*attempt) []*killInfo {
	var out []*killInfo
	for _, k := range r.kills {
		ki := &killInfo{KillReport: KillReport{Process: k.inst.String(), At: k.at.Sub(r.start)}, minutes: map[int64]bool{}}
		from := k.at.Add(-(flushInterval + time.Second))
		seen := map[*batch]bool{}
		for _, a := range attempts {
			if a.inst != k.inst || a.start.After(k.at) || a.end.Before(from) {
				continue
			}
			if !a.end.After(k.at) {
				if a.status != 200 {
					continue // refused before the kill: not counted
				}
				ki.Accepted++
			} else {
				ki.InFlight++
			}
			if !seen[a.b] {
				seen[a.b] = true
				ki.Bound += a.b.measurements
				ki.minutes[minuteOf(a.b.at)] = true
				ki.minutes[minuteOf(a.b.at.Add(time.Duration(a.b.frames)*time.Microsecond))] = true
			}
		}
		for m := range ki.minutes {
			ki.Minutes = append(ki.Minutes, minuteStr(m))
		}
		slices.Sort(ki.Minutes)
		out = append(out, ki)
	}
	return out
}

// checkPartitions reports how fast the cut-off dyno answered meanwhile, and
// what it shifted afterwards.
func (r *run) checkPartitions(rep *Report, attempts []*attempt, shifts []shift) {
	r.mu.Lock()
	parts, probes := slices.Clone(r.parts), slices.Clone(r.probes)
	r.mu.Unlock()
	for _, p := range parts {
		pr := PartitionReport{Web: p.web.name, From: p.from.Sub(r.start), To: p.to.Sub(r.start)}
		var lat []time.Duration
		for _, a := range attempts {
			if a.inst == p.inst && !a.start.Before(p.from) && a.start.Before(p.to) {
				lat = append(lat, a.end.Sub(a.start))
				if a.status != 200 {
					pr.Refused++
				}
			}
		}
		pr.Batches = len(lat)
		pr.P50, pr.P99, pr.Max = percentiles(lat)
		var hl []time.Duration
		for _, h := range probes {
			if !h.at.Before(p.from) && h.at.Before(p.to) {
				hl = append(hl, h.latency)
				if h.status != 200 {
					pr.HealthFailed++
				}
			}
		}
		pr.Health = len(hl)
		_, pr.HealthP99, pr.HealthMax = percentiles(hl)
		for _, s := range shifts { // its partials of the minute it was cut off in
			if strings.HasPrefix(s.writer, p.web.name+".") && s.from == minuteOf(p.from) {
				pr.Shifts++
				pr.Shifted += s.measurements
			}
		}
		if pr.Batches == 0 {
			rep.violate("partition of %s: it received no batch meanwhile (nothing measured)", p.web.name)
		}
		if pr.Refused > 0 {
			rep.violate("partition of %s: %d batches not accepted by it meanwhile", p.web.name, pr.Refused)
		}
		if pr.HealthFailed > 0 || pr.HealthMax > 5*time.Second {
			rep.violate("partition of %s: /health failed %d times, slowest %v", p.web.name, pr.HealthFailed, pr.HealthMax)
		}
		rep.Partitions = append(rep.Partitions, pr)
	}
}

var msgRe = regexp.MustCompile(`msg="([^"]*)"|msg=(\S+)`)

// checkLogs counts the error lines of every process, and checks that each
// clean shutdown (SIGTERM) exited 0 and logged no error.
func (r *run) checkLogs(rep *Report) {
	clean := map[*instance]bool{}
	r.mu.Lock()
	for _, i := range r.terms {
		clean[i] = true
	}
	r.mu.Unlock()
	for _, inst := range r.c.instances() {
		out := inst.output()
		shutting := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `msg="shutting down"`) {
				shutting = true
			}
			if strings.Contains(line, "partials for a sealed minute") {
				rep.violate("%s: %s", inst, line)
			}
			if !strings.Contains(line, "level=ERROR") {
				continue
			}
			msg := line
			if m := msgRe.FindStringSubmatch(line); m != nil {
				msg = m[1] + m[2]
			}
			rep.ErrorLines[msg]++
			if shutting && clean[inst] {
				rep.violate("%s logged an error while shutting down cleanly: %s", inst, line)
			}
		}
		if clean[inst] {
			if inst.exitErr != nil {
				rep.violate("%s: exit %v after SIGTERM", inst, inst.exitErr)
			}
			if !strings.Contains(out, `msg="shutdown complete"`) {
				rep.violate("%s: no \"shutdown complete\" after SIGTERM:\n%s", inst, tail(out, 10))
			}
		}
	}
}

// same reports whether two values agree: counts exactly, measures' count,
// min and max exactly and their sums to 1e-9 (merged in another order).
func same(a, b *value) bool {
	if a.measure != b.measure {
		return false
	}
	if !a.measure {
		return a.value == b.value
	}
	return a.count == b.count && near(a.sum, b.sum, 1e-9) && a.min == b.min && a.max == b.max
}

func (v *value) String() string {
	if v == nil {
		return "nothing"
	}
	if !v.measure {
		return fmt.Sprintf("count %v", v.value)
	}
	return fmt.Sprintf("count %d sum %v min %v max %v", v.count, v.sum, v.min, v.max)
}

func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// nearestRank is the ceil(q·n)-th smallest value.
func nearestRank(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func percentiles(ds []time.Duration) (p50, p99, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)]
	}
	return at(0.5), at(0.99), ds[len(ds)-1]
}

func minuteOf(t time.Time) int64 { return t.Unix() - t.Unix()%60 }

func minuteStr(m int64) string { return time.Unix(m, 0).UTC().Format("15:04") }

func first[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// summarizeShifts lists the shifts by (from, to).
func summarizeShifts(shifts []shift) []string {
	type ft struct{ from, to int64 }
	sum, n := map[ft]int{}, map[ft]int{}
	for _, s := range shifts {
		sum[ft{s.from, s.to}] += s.measurements
		n[ft{s.from, s.to}]++
	}
	keys := make([]ft, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ft) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s → %s: %d partials, %d measurements", minuteStr(k.from), minuteStr(k.to), n[k], sum[k]))
	}
	return out
}

// unionFind joins minutes.
type unionFind map[int64]int64

func (u unionFind) add(m int64) {
	if _, ok := u[m]; !ok {
		u[m] = m
	}
}

func (u unionFind) find(m int64) int64 {
	u.add(m)
	for u[m] != m {
		u[m] = u[u[m]]
		m = u[m]
	}
	return m
}

func (u unionFind) union(a, b int64) { u[u.find(a)] = u.find(b) }
