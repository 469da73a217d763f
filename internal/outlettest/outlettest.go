// Package outlettest has what the outlet backends' tests share: a
// Destinations that tests change, and the benchmark of posting a big
// minute.
package outlettest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Dests is an outlet.Destinations over drains that a test changes as
// `drains set` would. It hands out copies.
type Dests struct {
	mu sync.Mutex
	m  map[string]*outlet.Destination
}

// NewDests returns destinations holding the drains.
func NewDests(drains ...*outlet.Destination) *Dests {
	d := &Dests{m: map[string]*outlet.Destination{}}
	for _, dr := range drains {
		d.m[dr.ID] = dr
	}
	return d
}

// Destination returns a copy of drain id's destination.
func (d *Dests) Destination(id string) (*outlet.Destination, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dr, ok := d.m[id]
	if !ok {
		return nil, false
	}
	c := *dr
	c.Outlets = slices.Clone(dr.Outlets)
	return &c, true
}

// Reload is Destination (postgres.Reloader).
func (d *Dests) Reload(_ context.Context, id string) (*outlet.Destination, bool, error) {
	dr, ok := d.Destination(id)
	return dr, ok, nil
}

// Put adds or replaces a drain.
func (d *Dests) Put(dr *outlet.Destination) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[dr.ID] = dr
}

// Update changes drain id in place.
func (d *Dests) Update(id string, f func(*outlet.Destination)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.m[id])
}

// BenchmarkPostMinute100k times posting a minute of 100 000 series (a
// quarter of each kind) with be to a receiver on loopback that accepts
// everything: building every request and sending them one after another,
// as a lane does. o is the outlet with a URL path only (the receiver's
// address is prepended).
func BenchmarkPostMinute100k(b *testing.B, be outlet.Backend, o outlet.Outlet) {
	mn := loadgen.Minute("d", time.Now().Truncate(time.Minute).Add(-2*time.Minute), 100_000)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	o.URL = sink.URL + o.URL
	d := &outlet.Destination{ID: "d", Name: "shop"}
	ctx := context.Background()
	var reqs, bytes int
	for b.Loop() {
		enc, err := be.Encode(d, &o, mn, nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs, bytes = len(enc.Reqs), 0
		for _, r := range enc.Reqs {
			bytes += len(r.Body)
			if res := be.Send(ctx, &o, r); res.Outcome != outlet.Accepted {
				b.Fatalf("%v: %s", res.Outcome, res.Message)
			}
		}
	}
	b.ReportMetric(float64(reqs), "requests/op")
	b.ReportMetric(float64(bytes), "body_bytes/op")
}

// Client is an outlet client for benchmarks.
func Client() *outlet.Client { return outlet.NewClient("drainmeter/bench", time.Minute, time.Now) }

// MinuteOf builds the closed minute of measurements through a real store.
func MinuteOf(tb testing.TB, drain string, start time.Time, ms []parse.Measurement) *rollup.Minute {
	tb.Helper()
	s := rollup.NewStore(rollup.Config{Grace: time.Hour, MaxSeriesPerDrain: 1 << 20})
	s.Add(start, stats.NewRegistry().Drain(drain), ms)
	out := s.FlushAll()
	if len(out) != 1 {
		tb.Fatalf("%d minutes", len(out))
	}
	return out[0]
}

// Meas is a measurement of a series.
func Meas(kind parse.Kind, name, src string, v float64, at time.Time) parse.Measurement {
	return parse.Measurement{Kind: kind, Name: []byte(name), Source: []byte(src), Value: v, Time: at}
}

// WithType marks a dyno's measurement for the process-type rollup too.
func WithType(m parse.Measurement, typ string) parse.Measurement {
	m.TypeSource = []byte(typ)
	return m
}

// WaitFor polls cond every 5 ms until it holds, and fails the test if it
// does not within 30 s (an engine under -race on a busy machine).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
