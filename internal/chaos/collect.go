package chaos

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/fakeotlp"
	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
)

// What the run reads back: the sealed minutes (from Postgres, as they are
// sealed: the webs delete them once posted), the shifts, and what each
// outlet received.

// skey is a series in a minute.
type skey struct {
	name, source string
	minute       int64
}

func (k skey) String() string {
	return fmt.Sprintf("%s{source=%s} %s", k.name, k.source, time.Unix(k.minute, 0).UTC().Format("15:04"))
}

// value is a count (value) or a measure's count, sum, min and max, and
// Librato's percentiles.
type value struct {
	measure  bool
	value    float64 // count: the sum
	count    int64
	sum      float64
	min, max float64
	pct      map[float64]float64
	points   int // how many times it arrived
}

// sealedMinute is a minute as sealed: its measurements (every series' count,
// the unit of the shifts table) and its count and measure series.
type sealedMinute struct {
	measurements int
	series       map[skey]*value
}

// sealedMinutes reads the drain's sealed minutes as they appear.
type sealedMinutes struct {
	pool  *pgxpool.Pool
	drain string

	mu      sync.Mutex
	minutes map[int64]*sealedMinute
	last    int64
	failed  int // reads that failed (Postgres down): retried
}

func newSealedMinutes(pool *pgxpool.Pool, drain string) *sealedMinutes {
	return &sealedMinutes{pool: pool, drain: drain, minutes: map[int64]*sealedMinute{}, last: -1}
}

// poll reads new sealed minutes every interval until ctx ends. A minute is
// deleted a minute after every lane posted it: there is time.
func (s *sealedMinutes) poll(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.read(ctx); err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
		}
	}
}

// read reads the minutes sealed since the last read. A drain's minutes are
// sealed in order: a new one is always later than those already sealed.
func (s *sealedMinutes) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	rows, err := s.pool.Query(ctx, `SELECT minute, data FROM minutes WHERE drain_id = $1 AND sealed_at IS NOT NULL AND minute > $2
		ORDER BY minute`, s.drain, last)
	if err != nil {
		return err
	}
	type row struct {
		minute int64
		data   []byte
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.minute, &x.data)
		return x, err
	})
	if err != nil {
		return err
	}
	for _, x := range got {
		m, err := rollup.DecodeMinute(s.drain, x.minute, x.data)
		if err != nil {
			return fmt.Errorf("minute %d: %w", x.minute, err)
		}
		sm := &sealedMinute{series: map[skey]*value{}}
		for _, se := range m.Series {
			if rollup.Marker(se.Source, se.Dims, se.ProcessType) == rollup.RollupApp {
				continue // the app rollup repeats the other series' lines
			}
			sm.measurements += int(se.Count)
			k := skey{se.Name, se.Source, x.minute}
			switch se.Kind {
			case parse.Count:
				sm.series[k] = &value{value: se.Sum, points: 1}
			case parse.Measure:
				sm.series[k] = &value{measure: true, count: se.Count, sum: se.Sum, min: se.Min, max: se.Max, points: 1}
			}
		}
		s.mu.Lock()
		s.minutes[x.minute] = sm
		s.last = max(s.last, x.minute)
		s.mu.Unlock()
	}
	return nil
}

// shift is a row of the shifts table: a partial written after its minute
// was sealed, moved to a later minute.
type shift struct {
	from, to     int64
	measurements int
	writer       string
}

func readShifts(ctx context.Context, pool *pgxpool.Pool, drain string) ([]shift, error) {
	rows, err := pool.Query(ctx, `SELECT from_minute, to_minute, measurements, writer FROM shifts WHERE drain_id = $1 ORDER BY id`, drain)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (shift, error) {
		var s shift
		err := r.Scan(&s.from, &s.to, &s.measurements, &s.writer)
		return s, err
	})
}

// settle waits until every minute of the load is sealed and posted by
// every lane.
func (r *run) settle(ctx context.Context, totals *loadgen.Totals) error {
	var last int64
	for m := range totals.Measurements {
		last = max(last, m)
	}
	notBefore := time.Unix(last+60, 0).Add(grace + 3*time.Second)
	deadline := time.Now().Add(settleTimeout)
	why := ""
	for {
		if time.Now().After(notBefore) {
			var done bool
			if done, why = r.posted(ctx); done {
				r.event("every minute sealed and posted by every lane")
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not everything was posted %v after the load: %s", settleTimeout, why)
		}
		if !sleepUntil(ctx, time.Now().Add(2*time.Second)) {
			return ctx.Err()
		}
	}
}

// posted reports whether no partial waits and every lane has posted every
// sealed minute.
func (r *run) posted(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var partials, lanes, behind int
	err := r.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM partials),
		(SELECT count(*) FROM lanes WHERE drain_id = $1),
		(SELECT count(*) FROM lanes l WHERE l.drain_id = $1 AND EXISTS (SELECT 1 FROM minutes m
			WHERE m.drain_id = l.drain_id AND m.sealed_at IS NOT NULL AND m.minute > coalesce(l.posted_through, -1)))`,
		r.drainID).Scan(&partials, &lanes, &behind)
	if err != nil {
		return false, err.Error()
	}
	why := fmt.Sprintf("%d partials waiting, %d lanes, %d behind", partials, lanes, behind)
	return partials == 0 && lanes == 2 && behind == 0, why
}

// posted is what an outlet received, per series and minute.
type posted struct {
	name       string
	values     map[skey]*value
	duplicates []string
	requests   int
	refused    []string // requests refused outside the outlets' outage
	outage     int      // requests refused during it (503)
	points     int
}

// librato reads the fake Librato. Count series are gauges whose value is
// the sum; measures carry count, sum, min and max, and their percentiles
// are gauges NAME.median, NAME.perc95, NAME.perc99.
func librato(fake *fakelibrato.Server, counts, measures map[string]bool, fails []window) *posted {
	p := &posted{name: "librato", values: map[skey]*value{}}
	pcts := map[string]float64{"median": 0.5, "perc95": 0.95, "perc99": 0.99}
	for _, m := range fake.Measurements() {
		p.points++
		k := skey{m.Name, m.Source, m.MeasureTime}
		switch {
		case counts[m.Name] && m.Value != nil:
			v := p.at(k)
			v.points++
			v.value = *m.Value
		case measures[m.Name] && m.Count != nil:
			v := p.at(k)
			v.points++
			v.measure, v.count, v.sum, v.min, v.max = true, *m.Count, deref(m.Sum), deref(m.Min), deref(m.Max)
		default:
			i := strings.LastIndexByte(m.Name, '.')
			if i < 0 || !measures[m.Name[:i]] || m.Value == nil {
				continue
			}
			q, ok := pcts[m.Name[i+1:]]
			if !ok {
				continue
			}
			v := p.at(skey{m.Name[:i], m.Source, m.MeasureTime})
			if v.pct == nil {
				v.pct = map[float64]float64{}
			}
			v.pct[q] = *m.Value
		}
	}
	for _, d := range fake.Duplicates() {
		p.duplicates = append(p.duplicates, skey{d.Name, d.Source, d.MeasureTime}.String())
	}
	for _, req := range fake.Requests() {
		p.requests++
		switch {
		case req.Status == 200:
		case req.Status == 503 && inAny(fails, req.At):
			p.outage++
		default:
			p.refused = append(p.refused, fmt.Sprintf("%d at %s: %.200s", req.Status, req.At.Format(time.TimeOnly), req.Body))
		}
	}
	return p
}

// otlp reads the fake OTLP receiver (delta): count series are delta Sums,
// measures exponential histograms with count, sum, min and max.
func otlp(fake *fakeotlp.Server, counts, measures map[string]bool, fails []window) *posted {
	p := &posted{name: "otlp", values: map[skey]*value{}}
	seen := map[string]int{}
	for _, pt := range fake.Points() {
		p.points++
		if pt.Attrs["drainmeter.rollup"] == rollup.RollupApp {
			continue // the app rollup repeats the other series' lines
		}
		k := skey{pt.Metric, pt.Attrs["source"], int64(pt.Time/1e9) - 60}
		id := fmt.Sprintf("%s\x00%s\x00%s\x00%d", pt.Metric, pt.Attrs["source"], pt.Attrs["drainmeter.rollup"], pt.Time)
		if seen[id]++; seen[id] == 2 {
			p.duplicates = append(p.duplicates, k.String())
		}
		switch {
		case counts[pt.Metric] && pt.Type == fakeotlp.Sum:
			v := p.at(k)
			v.points++
			v.value = pt.Value
		case measures[pt.Metric] && pt.Exp != nil:
			v := p.at(k)
			v.points++
			v.measure, v.count, v.sum, v.min, v.max = true, int64(pt.Exp.Count), pt.Exp.GetSum(), pt.Exp.GetMin(), pt.Exp.GetMax()
		}
	}
	for _, req := range fake.Requests() {
		p.requests++
		switch {
		case req.Status == 200 && req.Rejected == 0:
		case req.Status == 503 && inAny(fails, req.At):
			p.outage++
		default:
			p.refused = append(p.refused, fmt.Sprintf("%d at %s: %s (%d rejected)", req.Status, req.At.Format(time.TimeOnly), req.Error, req.Rejected))
		}
	}
	return p
}

func (p *posted) at(k skey) *value {
	v := p.values[k]
	if v == nil {
		v = &value{}
		p.values[k] = v
	}
	return v
}

func deref(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

func inAny(ws []window, t time.Time) bool {
	for _, w := range ws {
		if w.contains(t) {
			return true
		}
	}
	return false
}
