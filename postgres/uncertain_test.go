package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
)

// gatewayTimeout is a receiver behind a gateway that gives up before it
// answers (504): each request may have been stored.
type gatewayTimeout struct{ recBackend }

func (b *gatewayTimeout) Send(_ context.Context, _ *outlet.Outlet, r *outlet.Request) outlet.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends++
	b.got = append(b.got, string(r.Body))
	return outlet.Result{Outcome: outlet.Retry, Status: 504, Message: "gateway timeout"}
}

// TestUncertainBoundAcrossDynos: a request that got no answer is sent at
// most MaxUncertain+1 times in all, whichever dynos work the lane (the
// count is kept with the lane), and never before the long wait; then it is
// given up, counted as post_uncertain (not dropped), and the lane goes on.
func TestUncertainBoundAcrossDynos(t *testing.T) {
	r := newRig(t, outlet.OTLP)
	gw := &gatewayTimeout{}
	r.sender = outlet.NewSender(outlet.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		AuthProbe: time.Hour, Timeout: time.Second}, map[outlet.Kind]outlet.Backend{outlet.OTLP: gw}, r.reg, r.log, time.Now)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w := r.writer("web.1.a", m)
	w.Closed([]*rollup.Minute{partialOf("d", m, 7)})
	w.Swept(m.Add(61 * time.Second))
	r.flush(w)
	if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
		t.Fatal(err)
	}
	lane := func() (state string, uncertain int, postUncertain, dropped int64, through *int64, wait time.Duration) {
		t.Helper()
		var ms float64
		if err := r.pool.QueryRow(ctx, `SELECT state, uncertain, post_uncertain, dropped, posted_through,
			extract(epoch FROM next_attempt - now()) * 1000 FROM lanes WHERE drain_id = 'd'`).Scan(
			&state, &uncertain, &postUncertain, &dropped, &through, &ms); err != nil {
			t.Fatal(err)
		}
		return state, uncertain, postUncertain, dropped, through, time.Duration(ms) * time.Millisecond
	}
	posters := []*Poster{r.poster("web.1.a", time.Minute), r.poster("web.2.b", time.Minute), r.poster("web.3.c", time.Minute)}
	for i, p := range posters {
		r.drainLanes(p) // posts once, then the lane waits
		state, unc, pu, dropped, through, wait := lane()
		if len(gw.posted()) != i+1 {
			t.Fatalf("after dyno %d: the receiver got %d copies", i+1, len(gw.posted()))
		}
		if i < 2 {
			if state != "uncertain" || unc != i+1 || pu != int64(i+1) || through != nil || wait < 3*time.Second {
				t.Fatalf("after dyno %d: state %s uncertain %d post_uncertain %d through %v next attempt in %v", i+1, state, unc, pu, through, wait)
			}
			// The long wait passes.
			if _, err := r.pool.Exec(ctx, `UPDATE lanes SET next_attempt = now()`); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if unc != 0 || pu != 3 || dropped != 0 || through == nil || *through != m.Unix() {
			t.Fatalf("after dyno 3: state %s uncertain %d post_uncertain %d dropped %d through %v", state, unc, pu, dropped, through)
		}
	}
	if got := gw.posted(); len(got) != 3 || got[0] != got[1] || got[1] != got[2] {
		t.Fatalf("the receiver got %q", got)
	}
}

// TestPauseReasonRecorded: a lane paused on a wrong URL records why, for
// every dyno's status page; the reason goes when the lane posts again.
func TestPauseReasonRecorded(t *testing.T) {
	r := newRig(t, outlet.OTLP)
	wrong := &statusBackend{status: 404}
	r.sender = outlet.NewSender(outlet.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		AuthProbe: time.Hour, Timeout: time.Second}, map[outlet.Kind]outlet.Backend{outlet.OTLP: wrong}, r.reg, r.log, time.Now)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	w := r.writer("web.1.a", m)
	w.Closed([]*rollup.Minute{partialOf("d", m, 7)})
	w.Swept(m.Add(61 * time.Second))
	r.flush(w)
	if _, err := r.sealer(time.Now()).SealReady(ctx); err != nil {
		t.Fatal(err)
	}
	r.drainLanes(r.poster("web.1.a", time.Minute))
	ss := &StatusSource{pool: r.pool}
	lanes, err := ss.laneStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := lanes["d"][0]
	if st.State != outlet.StatePaused || st.PauseReason != outlet.PauseWrongURL || st.Waiting != 1 || st.NextAttempt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("lane %+v", st)
	}
	wrong.status = 200
	if _, err := r.pool.Exec(ctx, `UPDATE lanes SET next_attempt = now()`); err != nil { // the probe is due
		t.Fatal(err)
	}
	r.drainLanes(r.poster("web.2.b", time.Minute))
	lanes, _ = ss.laneStatuses(ctx)
	if st := lanes["d"][0]; st.State != outlet.StateOK || st.PauseReason != "" || st.Posted != 1 || !st.NextAttempt.IsZero() {
		t.Fatalf("lane %+v", st)
	}
}

// statusBackend answers every request with one status.
type statusBackend struct{ status int }

func (b *statusBackend) Encode(d *outlet.Destination, o *outlet.Outlet, m *rollup.Minute, prev *outlet.Totals) (outlet.Encoded, error) {
	return outlet.Encoded{Reqs: []*outlet.Request{{Body: []byte("minute"), Points: 1}}}, nil
}

func (b *statusBackend) Send(context.Context, *outlet.Outlet, *outlet.Request) outlet.Result {
	if b.status == 200 {
		return outlet.Result{Outcome: outlet.Accepted, Status: 200}
	}
	return outlet.Result{Outcome: outlet.Permanent, Status: b.status, Message: "404 page not found"}
}
