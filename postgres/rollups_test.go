package postgres

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// recorder is a Deliverer that records what it was given; with hold set it
// never calls done (a worker that dies mid-post).
type recorder struct {
	mu     sync.Mutex
	got    []*rollup.Minute
	hold   bool
	result bool
}

func (r *recorder) Deliver(m *rollup.Minute, done func(final bool)) {
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	if !r.hold {
		done(r.result)
	}
}

func (r *recorder) minutes() []*rollup.Minute {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*rollup.Minute(nil), r.got...)
}

// partialOf makes a one-series partial: count "hits" of n at minute start.
func partialOf(drain string, start time.Time, n float64) *rollup.Minute {
	s := rollup.NewStore(rollup.Config{Grace: time.Hour})
	s.Add(start, stats.NewRegistry().Drain(drain), []parse.Measurement{{Kind: parse.Count, Name: []byte("hits"),
		Source: []byte("web.1"), Value: n, Time: start}})
	return s.FlushAll()[0]
}

func hits(m *rollup.Minute) float64 {
	return m.Summaries(nil)[0].Value
}

func TestPartialsClaimMergeAndLate(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	reg := stats.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	start := time.Now().Truncate(time.Minute).Add(-5 * time.Minute) // long over: ready at once
	w1 := NewPartials(PartialsConfig{Writer: "web.1.a"}, pool, reg, log)
	w2 := NewPartials(PartialsConfig{Writer: "web.2.b"}, pool, reg, log)
	w1.Closed([]*rollup.Minute{partialOf("d", start, 3)})
	w2.Closed([]*rollup.Minute{partialOf("d", start, 4)})
	w1.Closed([]*rollup.Minute{partialOf("d", start, 5)}) // a second flush of the same dyno
	for _, w := range []*Partials{w1, w2} {
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Two workers race for the minute: exactly one delivers it, merged.
	r1, r2 := &recorder{result: true}, &recorder{result: true}
	p1 := NewPoster(PosterConfig{Owner: "web.1.a"}, pool, r1, reg, log)
	p2 := NewPoster(PosterConfig{Owner: "web.2.b"}, pool, r2, reg, log)
	var wg sync.WaitGroup
	for _, p := range []*Poster{p1, p2} {
		wg.Add(1)
		go func() { defer wg.Done(); p.claimAll(ctx); p.record(ctx) }()
	}
	wg.Wait()
	got := append(r1.minutes(), r2.minutes()...)
	if len(got) != 1 || hits(got[0]) != 12 {
		t.Fatalf("delivered %d minutes (want 1 with hits=12): %v", len(got), got)
	}

	// A partial for the posted minute is late: counted, not stored, never posted.
	w2.Closed([]*rollup.Minute{partialOf("d", start, 100)})
	if err := w2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if late := reg.Drain("d").Get(stats.Late); late != 1 {
		t.Fatalf("late = %d, want 1", late)
	}
	p1.claimAll(ctx)
	if n := len(r1.minutes()) + len(r2.minutes()); n != 1 {
		t.Fatalf("the minute was delivered again (%d deliveries)", n)
	}
	var partials, latePartials int
	var outcome string
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM partials), late_partials, outcome FROM minutes`).Scan(&partials, &latePartials, &outcome); err != nil {
		t.Fatal(err)
	}
	if partials != 0 || latePartials != 1 || outcome != "posted" {
		t.Fatalf("partials %d, late_partials %d, outcome %q", partials, latePartials, outcome)
	}
}

func TestLeaseTakeoverAndRelease(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	reg := stats.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	start := time.Now().Truncate(time.Minute).Add(-5 * time.Minute)
	w := NewPartials(PartialsConfig{Writer: "web.1.a"}, pool, reg, log)
	w.Closed([]*rollup.Minute{partialOf("d", start, 7)})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// A worker claims the minute and dies (never reports back).
	dead := &recorder{hold: true}
	pd := NewPoster(PosterConfig{Owner: "dead", Lease: 300 * time.Millisecond}, pool, dead, reg, log)
	pd.claimAll(ctx)
	if len(dead.minutes()) != 1 {
		t.Fatal("the minute was not claimed")
	}
	// While the lease holds, nobody else gets it; after it, another does.
	alive := &recorder{result: false} // interrupted: hands it back
	pa := NewPoster(PosterConfig{Owner: "alive"}, pool, alive, reg, log)
	pa.claimAll(ctx)
	if len(alive.minutes()) != 0 {
		t.Fatal("claimed a leased minute")
	}
	time.Sleep(400 * time.Millisecond)
	pa.claimAll(ctx)
	pa.record(ctx)
	if len(alive.minutes()) != 1 || hits(alive.minutes()[0]) != 7 {
		t.Fatal("the expired lease was not taken over")
	}
	// Handed back: not done, retried after a backoff, not at once.
	var done *time.Time
	var next time.Time
	if err := pool.QueryRow(ctx, `SELECT done_at, next_attempt FROM minutes`).Scan(&done, &next); err != nil {
		t.Fatal(err)
	}
	if done != nil || !next.After(time.Now()) {
		t.Fatalf("released minute: done %v, next attempt %v", done, next)
	}
	pa.claimAll(ctx)
	if len(alive.minutes()) != 1 {
		t.Fatal("a released minute was retried before its backoff")
	}
}

// TestClaimsUnderContention: eight workers claim forty ready minutes at
// once; each minute is delivered exactly once.
func TestClaimsUnderContention(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	reg := stats.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	w := NewPartials(PartialsConfig{Writer: "w"}, pool, reg, log)
	base := time.Now().Truncate(time.Minute).Add(-time.Hour)
	for i := range 40 {
		w.Closed([]*rollup.Minute{partialOf("d", base.Add(time.Duration(i)*time.Minute), 1)})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var recs []*recorder
	var wg sync.WaitGroup
	for i := range 8 {
		r := &recorder{result: true}
		recs = append(recs, r)
		p := NewPoster(PosterConfig{Owner: string(rune('a' + i)), PerDrain: 40, MaxInFlight: 40}, pool, r, reg, log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				p.claimAll(ctx)
				p.record(ctx)
			}
		}()
	}
	wg.Wait()
	seen := map[int64]int{}
	for _, r := range recs {
		for _, m := range r.minutes() {
			seen[m.Start]++
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d of 40 minutes delivered", len(seen))
	}
	for start, n := range seen {
		if n != 1 {
			t.Errorf("minute %d delivered %d times", start, n)
		}
	}
}
