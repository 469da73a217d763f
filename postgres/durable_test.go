package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// partialOf makes a one-series partial: count "hits" of n at minute start.
func partialOf(drain string, start time.Time, n float64) *rollup.Minute {
	s := rollup.NewStore(rollup.Config{Grace: time.Hour})
	s.Add(start, stats.NewRegistry().Drain(drain), []parse.Measurement{{Kind: parse.Count, Name: []byte("hits"),
		Source: []byte("web.1"), Value: n, Time: start}})
	return s.FlushAll()[0]
}

// recBackend records what each lane posted: one request per minute per
// chunk (Chunks requests a minute), the body naming the minute, the chunk
// and the minute's hits. fail answers Retry while it returns true; pause
// answers Pause for a token.
type recBackend struct {
	Chunks int

	mu    sync.Mutex
	got   []string // "drain/kind minute chunk hits"
	fail  func(o *outlet.Outlet) bool
	sends int
}

func (b *recBackend) Encode(d *outlet.Destination, o *outlet.Outlet, m *rollup.Minute, prev *outlet.Totals) (outlet.Encoded, error) {
	hits := 0.0
	for _, s := range m.Series {
		hits += s.Sum
	}
	n := max(b.Chunks, 1)
	var reqs []*outlet.Request
	for i := range n {
		reqs = append(reqs, &outlet.Request{Body: fmt.Appendf(nil, "%s/%s %d %d %g", d.ID, o.Kind, m.Start, i, hits), Points: 1})
	}
	return outlet.Encoded{Reqs: reqs, Totals: prev.Advance(m, 3600)}, nil
}

func (b *recBackend) Send(_ context.Context, o *outlet.Outlet, r *outlet.Request) outlet.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends++
	if o.Token == "bad" {
		return outlet.Result{Outcome: outlet.Pause, Status: 401, Message: "token bad refused"}
	}
	if b.fail != nil && b.fail(o) {
		return outlet.Result{Outcome: outlet.Retry, Status: 503}
	}
	b.got = append(b.got, string(r.Body))
	return outlet.Result{Outcome: outlet.Accepted}
}

func (b *recBackend) posted() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

type durableRig struct {
	t       *testing.T
	pool    *pgxpool.Pool
	reg     *stats.Registry
	log     *slog.Logger
	backend *recBackend
	dests   *outlettest.Dests
	sender  *outlet.Sender
}

func newRig(t *testing.T, kinds ...outlet.Kind) *durableRig {
	t.Helper()
	r := &durableRig{t: t, pool: pgtest.MustPool(t, pgtest.NewDatabase(t, true)), reg: stats.NewRegistry(),
		log: slog.New(slog.DiscardHandler), backend: &recBackend{}, dests: outlettest.NewDests()}
	var outs []outlet.Outlet
	for _, k := range kinds {
		outs = append(outs, outlet.Outlet{Kind: k})
	}
	r.dests.Put(&outlet.Destination{ID: "d", Outlets: outs})
	backends := map[outlet.Kind]outlet.Backend{}
	for _, k := range outlet.Kinds {
		backends[k] = r.backend
	}
	cfg := outlet.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, AuthProbe: time.Hour, Timeout: time.Second}
	r.sender = outlet.NewSender(cfg, backends, r.reg, r.log, time.Now)
	return r
}

func (r *durableRig) writer(id string, at time.Time) *Partials {
	w := NewPartials(PartialsConfig{Writer: id, Grace: 0}, r.pool, r.reg, r.log, func() time.Time { return at })
	if err := w.Register(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return w
}

func (r *durableRig) sealer(now time.Time) *Sealer {
	return NewSealer(SealerConfig{Grace: 0, Silence: time.Minute}, r.pool, r.dests, r.reg, r.log, func() time.Time { return now })
}

func (r *durableRig) poster(owner string, lease time.Duration) *Poster {
	return NewPoster(PosterConfig{Owner: owner, Lease: lease, Workers: 1, Poll: 10 * time.Millisecond}, r.pool, r.sender, r.dests, r.reg, r.log, time.Now)
}

// drainLanes runs a poster's worker loop until no lane has work.
func (r *durableRig) drainLanes(p *Poster) {
	r.t.Helper()
	ctx := context.Background()
	stop := make(chan struct{})
	for range 100 {
		lc, err := p.claim(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if lc == nil {
			return
		}
		p.post(ctx, stop, lc)
	}
	r.t.Fatal("lanes never ran dry")
}

// claimedBy seals a minute of drain d (7 hits, ten minutes ago) and lets
// a poster of owner claim its lane with a lease of 500 ms: a dyno about to
// die holding it.
func (r *durableRig) claimedBy(owner string) (time.Time, *Poster, *laneClaim) {
	r.t.Helper()
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w := r.writer(owner, m)
	w.Closed([]*rollup.Minute{partialOf("d", m, 7)})
	w.Swept(m.Add(61 * time.Second))
	r.flush(w)
	if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
		r.t.Fatal(err)
	}
	p := r.poster(owner, 500*time.Millisecond)
	lc, err := p.claim(ctx)
	if err != nil || lc == nil {
		r.t.Fatalf("claim: %v %v", lc, err)
	}
	return m, p, lc
}

func (r *durableRig) flush(ws ...*Partials) {
	r.t.Helper()
	for _, w := range ws {
		if err := w.Flush(context.Background()); err != nil {
			r.t.Fatal(err)
		}
	}
}

// TestSealedWhenEveryWriterHasWritten: a minute is sealed only once every
// live writer's watermark has passed it, and then holds every writer's data.
func TestSealedWhenEveryWriterHasWritten(t *testing.T) {
	r := newRig(t, outlet.Log)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w1 := r.writer("web.1.a", m) // registered while m was open
	w2 := r.writer("web.2.b", m)
	w1.Closed([]*rollup.Minute{partialOf("d", m, 3)})
	w1.Closed([]*rollup.Minute{partialOf("d", m, 5)}) // a second flush of the same dyno
	w1.Swept(m.Add(61 * time.Second))                 // web.1 has closed m
	w2.Closed([]*rollup.Minute{partialOf("d", m, 4)}) // web.2 wrote a part but has not closed m
	r.flush(w1, w2)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 0 {
		t.Fatalf("sealed %d minutes (%v) before web.2 closed the minute", n, err)
	}
	w2.Closed([]*rollup.Minute{partialOf("d", m, 100)}) // web.2's last lines of m
	w2.Swept(m.Add(61 * time.Second))
	r.flush(w2)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 1 {
		t.Fatalf("sealed %d minutes (%v), want 1", n, err)
	}
	p := r.poster("web.1.a", time.Minute)
	r.drainLanes(p)
	want := []string{fmt.Sprintf("d/log %d 0 112", m.Unix())}
	if got := r.backend.posted(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("posted %q, want %q", got, want)
	}
	var partials int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM partials`).Scan(&partials); err != nil || partials != 0 {
		t.Fatalf("%d partials left (%v)", partials, err)
	}
}

// TestSilentWriterLateDataShifted: a writer silent for longer than
// WRITER_TIMEOUT holds nothing back; what it writes later for a sealed
// minute goes, whole, into the drain's next minute (late_shifted), is
// posted after what was posted, and nothing is counted twice or lost.
func TestSilentWriterLateDataShifted(t *testing.T) {
	r := newRig(t, outlet.Log)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w1 := r.writer("web.1.a", m)
	lost := r.writer("web.2.b", m)
	if _, err := r.pool.Exec(ctx, `UPDATE writers SET heartbeat_at = now() - interval '2 minutes' WHERE id = 'web.2.b'`); err != nil {
		t.Fatal(err)
	}
	w1.Closed([]*rollup.Minute{partialOf("d", m, 3)})
	w1.Swept(m.Add(61 * time.Second))
	r.flush(w1)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 1 {
		t.Fatalf("sealed %d (%v): a silent writer held the minute back", n, err)
	}
	p := r.poster("web.1.a", time.Minute)
	r.drainLanes(p)

	// The silent writer comes back with data for the posted minute.
	lost.Closed([]*rollup.Minute{partialOf("d", m, 40)})
	r.flush(lost)
	if got := r.reg.Drain("d").Get(stats.LateShifted); got != 1 {
		t.Fatalf("late_shifted = %d, want 1", got)
	}
	var from, to int64
	if err := r.pool.QueryRow(ctx, `SELECT from_minute, to_minute FROM shifts`).Scan(&from, &to); err != nil {
		t.Fatal(err)
	}
	if from != m.Unix() || to <= m.Unix() {
		t.Fatalf("shifted from %d to %d", from, to)
	}
	lost.Swept(time.Now())
	w1.Swept(time.Now())
	r.flush(lost, w1)
	if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
		t.Fatal(err)
	}
	r.drainLanes(p)
	want := []string{fmt.Sprintf("d/log %d 0 3", m.Unix()), fmt.Sprintf("d/log %d 0 40", to)}
	if got := r.backend.posted(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("posted %q, want %q", got, want)
	}
}

// TestGoneWriterHoldsNothingBack: a writer that shut down cleanly does not
// hold minutes back, however recent its heartbeat.
func TestGoneWriterHoldsNothingBack(t *testing.T) {
	r := newRig(t, outlet.Log)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w1 := r.writer("web.1.a", m)
	gone := r.writer("web.2.b", m)
	if err := gone.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w1.Closed([]*rollup.Minute{partialOf("d", m, 3)})
	w1.Swept(m.Add(61 * time.Second))
	r.flush(w1)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 1 {
		t.Fatalf("sealed %d (%v)", n, err)
	}
}

// TestLanesInOrderOnceEach: two dynos race for the lanes of a drain with
// two outlets; each outlet gets every minute exactly once, in order; one
// outlet failing for a while does not hold up the other.
func TestLanesInOrderOnceEach(t *testing.T) {
	r := newRig(t, outlet.OTLP, outlet.RemoteWrite)
	ctx := context.Background()
	m0 := time.Now().Truncate(time.Minute).Add(-20 * time.Minute)
	w := r.writer("web.1.a", m0)
	for i := range 8 {
		w.Closed([]*rollup.Minute{partialOf("d", m0.Add(time.Duration(i)*time.Minute), float64(i+1))})
	}
	w.Swept(m0.Add(9 * time.Minute))
	r.flush(w)
	if n, err := r.sealer(time.Now()).SealReady(ctx); err != nil || n != 8 {
		t.Fatalf("sealed %d (%v)", n, err)
	}
	var failing sync.Mutex
	failOTLP := true
	r.backend.fail = func(o *outlet.Outlet) bool {
		failing.Lock()
		defer failing.Unlock()
		return o.Kind == outlet.OTLP && failOTLP
	}
	c1, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, owner := range []string{"web.1.a", "web.2.b"} {
		wg.Add(1)
		go func() { defer wg.Done(); r.poster(owner, time.Minute).Run(c1, stop) }()
	}
	waitUntil(t, "remote write current while OTLP fails", func() bool {
		return strings.Count(fmt.Sprint(r.backend.posted()), "remotewrite") == 8
	})
	if strings.Contains(fmt.Sprint(r.backend.posted()), "otlp") {
		t.Fatal("OTLP posted while failing")
	}
	failing.Lock()
	failOTLP = false
	failing.Unlock()
	waitUntil(t, "OTLP catches up", func() bool { return strings.Count(fmt.Sprint(r.backend.posted()), "otlp") == 8 })
	close(stop)
	wg.Wait()
	for _, kind := range []string{"otlp", "remotewrite"} {
		var minutes []int64
		for _, p := range r.backend.posted() {
			var k string
			var minute int64
			var chunk int
			var hits float64
			fmt.Sscanf(p, "%s %d %d %g", &k, &minute, &chunk, &hits)
			if k == "d/"+kind {
				if want := float64((minute-m0.Unix())/60 + 1); hits != want {
					t.Errorf("%s minute %d: hits %g, want %g", kind, minute, hits, want)
				}
				minutes = append(minutes, minute)
			}
		}
		if len(minutes) != 8 || !sort.SliceIsSorted(minutes, func(i, j int) bool { return minutes[i] < minutes[j] }) {
			t.Errorf("%s: minutes %v, want 8 ascending", kind, minutes)
		}
		for i := 1; i < len(minutes); i++ {
			if minutes[i] == minutes[i-1] {
				t.Errorf("%s: minute %d posted twice", kind, minutes[i])
			}
		}
	}
}

// TestTakeoverResumesAtTheRecordedRequest: a dyno dies after the receiver
// accepted two of a minute's four requests; once its lease expires another
// dyno sends the other two, not the first two again.
func TestTakeoverResumesAtTheRecordedRequest(t *testing.T) {
	r := newRig(t, outlet.OTLP)
	r.backend.Chunks = 4
	ctx := context.Background()
	m, dead, lc := r.claimedBy("web.1.a")
	// What the dead dyno did before it died: two requests accepted and recorded.
	d, _ := r.dests.Destination("d")
	mn, _ := dead.nextMinute(ctx, lc)
	job, _ := r.sender.Build(d, &d.Outlets[0], mn, nil)
	var st outlet.Status
	for range 2 {
		r.sender.Step(ctx, d, &d.Outlets[0], job, &st, 0)
		if err := dead.progress(lc.key, laneUpdate{chunkMinute: &job.Minute, chunk: job.Next, encoding: d.Outlets[0].EncodingKey(), state: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	// Another dyno cannot take the lane while the lease holds ...
	live := r.poster("web.2.b", time.Minute)
	if lc2, _ := live.claim(ctx); lc2 != nil {
		t.Fatal("a leased lane was claimed")
	}
	time.Sleep(600 * time.Millisecond) // ... and can once it expired.
	r.drainLanes(live)
	want := []string{}
	for i := range 4 {
		want = append(want, fmt.Sprintf("d/otlp %d %d 7", m.Unix(), i))
	}
	if got := r.backend.posted(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("posted %q\nwant %q", got, want)
	}
}

// splitBackend sends a minute as one request of N items; the receiver
// takes at most two items a request (413 above that, split in halves) and
// answers 503 while fail is set.
type splitBackend struct {
	N int

	mu   sync.Mutex
	got  []string // items accepted, in order
	fail bool
}

func (b *splitBackend) Encode(d *outlet.Destination, o *outlet.Outlet, m *rollup.Minute, prev *outlet.Totals) (outlet.Encoded, error) {
	var items []string
	for i := range b.N {
		items = append(items, fmt.Sprintf("%d.%d", m.Start, i))
	}
	return outlet.Encoded{Reqs: []*outlet.Request{b.req(items)}}, nil
}

func (b *splitBackend) req(items []string) *outlet.Request {
	return &outlet.Request{Body: []byte(strings.Join(items, " ")), Points: len(items), Part: items}
}

func (b *splitBackend) Split(r *outlet.Request) []*outlet.Request {
	items := r.Part.([]string)
	h := len(items) / 2
	return []*outlet.Request{b.req(items[:h:h]), b.req(items[h:])}
}

func (b *splitBackend) Items(r *outlet.Request) int { return len(r.Part.([]string)) }

func (b *splitBackend) Tail(r *outlet.Request, n int) *outlet.Request {
	return b.req(r.Part.([]string)[n:])
}

func (b *splitBackend) Send(_ context.Context, o *outlet.Outlet, r *outlet.Request) outlet.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch items := r.Part.([]string); {
	case len(items) > 2:
		return outlet.Result{Outcome: outlet.Split, Status: 413}
	case b.fail:
		return outlet.Result{Outcome: outlet.Retry, Status: 503}
	default:
		b.got = append(b.got, items...)
		return outlet.Result{Outcome: outlet.Accepted}
	}
}

// TestTakeoverResumesInsideASplitRequest: the receiver answered 413 and the
// minute's one request was split; the dyno died after the receiver accepted
// a part of it and while the next part was failing. The dyno that takes the
// lane over rebuilds the minute unsplit and sends exactly the items the
// receiver does not have: none twice, none lost.
func TestTakeoverResumesInsideASplitRequest(t *testing.T) {
	r := newRig(t, outlet.OTLP)
	sb := &splitBackend{N: 8}
	r.sender = outlet.NewSender(outlet.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		AuthProbe: time.Hour, Timeout: time.Second, SplitFloor: 1}, map[outlet.Kind]outlet.Backend{outlet.OTLP: sb}, r.reg, r.log, time.Now)
	ctx := context.Background()
	m, dead, lc := r.claimedBy("web.1.a")
	// The dead dyno: 8 items split to 4+4, then 2+2+4; the first 2 accepted;
	// then the receiver fails and the dyno records where it stands and dies.
	d, _ := r.dests.Destination("d")
	o := &d.Outlets[0]
	mn, _ := dead.nextMinute(ctx, lc)
	job, _ := r.sender.Build(d, o, mn, nil)
	var st outlet.Status
	for len(sb.got) < 2 {
		if step := r.sender.Step(ctx, d, o, job, &st, 0); step.Action != outlet.Continue {
			t.Fatalf("step %v", step)
		}
	}
	sb.fail = true
	if step := r.sender.Step(ctx, d, o, job, &st, 0); step.Action != outlet.Wait {
		t.Fatalf("step %v, want a wait", step)
	}
	u := laneUpdate{chunkMinute: &job.Minute, encoding: o.EncodingKey(), state: "retrying"}
	u.chunk, u.chunkItems = job.Position()
	if u.chunk != 0 || u.chunkItems != 2 {
		t.Fatalf("position %d/%d, want request 0 less 2 items", u.chunk, u.chunkItems)
	}
	if err := dead.progress(lc.key, u); err != nil {
		t.Fatal(err)
	}
	sb.fail = false
	time.Sleep(600 * time.Millisecond) // the lease expires
	r.drainLanes(r.poster("web.2.b", time.Minute))
	var want []string
	for i := range 8 {
		want = append(want, fmt.Sprintf("%d.%d", m.Unix(), i))
	}
	if fmt.Sprint(sb.got) != fmt.Sprint(want) {
		t.Fatalf("receiver got %v\nwant %v", sb.got, want)
	}
}

// TestPausedLaneResumesOnNewCredentials: a lane paused on refused
// credentials is tried again as soon as its outlet's version changes, long
// before the next probe, on any dyno.
func TestPausedLaneResumesOnNewCredentials(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	keys := mustKeys(t)
	d, _, err := NewDrains(r.pool, keys).Add(ctx, Spec{Name: ptr("shop"), Outlets: []OutletSpec{librato("u", "bad")}})
	if err != nil {
		t.Fatal(err)
	}
	r.dests.Put(&outlet.Destination{ID: d.ID, Outlets: []outlet.Outlet{{Kind: outlet.Librato, User: "u", Token: "bad", Version: 1}}})
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w := r.writer("web.1.a", m)
	w.Closed([]*rollup.Minute{partialOf(d.ID, m, 9)})
	w.Swept(m.Add(61 * time.Second))
	r.flush(w)
	if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
		t.Fatal(err)
	}
	p := r.poster("web.1.a", time.Minute)
	r.drainLanes(p)
	var state string
	if err := r.pool.QueryRow(ctx, `SELECT state FROM lanes WHERE drain_id = $1`, d.ID).Scan(&state); err != nil || state != "paused" {
		t.Fatalf("state %q %v", state, err)
	}
	// drains set --librato-token: a new version in the table and the cache.
	if _, err := NewDrains(r.pool, keys).Set(ctx, d.ID, Spec{Outlets: []OutletSpec{{Kind: outlet.Librato, Token: "good"}}}); err != nil {
		t.Fatal(err)
	}
	r.dests.Update(d.ID, func(d *outlet.Destination) { d.Outlets[0].Token, d.Outlets[0].Version = "good", 2 })
	r.drainLanes(r.poster("web.2.b", time.Minute))
	if got := r.backend.posted(); len(got) != 1 || !strings.HasSuffix(got[0], " 9") {
		t.Fatalf("posted %q", got)
	}
}

func mustKeys(t *testing.T) *Keyring {
	k, err := ParseKeyring(NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
