package postgres

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/internal/tcpproxy"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// cutAfter pauses a proxy (a network partition) as soon as a statement
// containing match has been answered, once: the transaction it is part of
// stays open on the server, holding its locks, while the client hangs.
type cutAfter struct {
	match string
	proxy *tcpproxy.Proxy
	once  sync.Once
}

type sqlKey struct{}

func (c *cutAfter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, sqlKey{}, d.SQL)
}

func (c *cutAfter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	if sql, _ := ctx.Value(sqlKey{}).(string); d.Err == nil && strings.Contains(sql, c.match) {
		c.once.Do(c.proxy.Pause)
	}
}

// cutOffPool is a pool on dsn through a proxy that is paused once a
// statement containing match has been answered.
func cutOffPool(t *testing.T, dsn, match string) (*pgxpool.Pool, *tcpproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = &cutAfter{match: match, proxy: proxy}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, proxy
}

// TestWriterCutOffMidWriteDoesNotBlockSealing: a web cut off from Postgres
// in the middle of writing partials leaves its transaction open on the
// server, holding the drain's row FOR SHARE; in a network partition the
// server does not learn that the client is gone for as long as it lasts
// (or, if the dyno then dies, until TCP keepalive: hours). The sealer, which
// takes the row FOR UPDATE, must not wait for that: Postgres ends the idle
// transaction after idleTxTimeout. The cut-off writer's partial is not
// lost: written again once it is back, it is shifted.
func TestWriterCutOffMidWriteDoesNotBlockSealing(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, true)
	direct := pgtest.MustPool(t, dsn)
	cutPool, proxy := cutOffPool(t, dsn, "FOR SHARE")
	reg, log := stats.NewRegistry(), slog.New(slog.DiscardHandler)
	ctx := context.Background()
	m := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	now := func() time.Time { return m.Add(2 * time.Minute) }
	w1 := NewPartials(PartialsConfig{Writer: "web.1.a", Grace: 0}, direct, reg, log, now)
	w2 := NewPartials(PartialsConfig{Writer: "web.2.b", Grace: 0}, cutPool, reg, log, now)
	for _, w := range []*Partials{w1, w2} {
		if err := w.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w1.Closed([]*rollup.Minute{partialOf("d", m, 3)})
	if err := w1.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// web.2 writes its part of m and is cut off right after locking the row.
	w2.Closed([]*rollup.Minute{partialOf("d", m, 40)})
	w2done := make(chan error, 1)
	go func() { w2done <- w2.Flush(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !proxy.Paused() {
		if time.Now().After(deadline) {
			t.Fatal("web.2's write never reached the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cut := time.Now()

	dests := outlettest.NewDests(&outlet.Destination{ID: "d", Outlets: []outlet.Outlet{{Kind: outlet.Log}}})
	sealer := NewSealer(SealerConfig{Grace: 0, Silence: time.Minute}, direct, dests, reg, log, time.Now)
	var sealed int
	for time.Since(cut) < 25*time.Second && sealed == 0 {
		n, err := sealer.SealReady(ctx)
		if err != nil && !strings.Contains(err.Error(), "lock timeout") {
			t.Fatal(err)
		}
		sealed += n
	}
	took := time.Since(cut)
	proxy.Resume()
	if sealed == 0 {
		t.Fatalf("nothing sealed in %v: the cut-off writer's transaction held the drain's row", took.Round(time.Second))
	}
	if took > idleTxTimeout+8*time.Second {
		t.Errorf("sealed after %v: more than idle_in_transaction_session_timeout (%v) and a lock timeout", took.Round(time.Second), idleTxTimeout)
	}
	t.Logf("sealed %v after the writer was cut off mid-write", took.Round(100*time.Millisecond))

	if err := <-w2done; err == nil {
		t.Fatal("the cut-off write succeeded")
	}
	if err := w2.Flush(ctx); err != nil { // back: the partial is written again, to a later minute
		t.Fatal(err)
	}
	var from, to, measurements int64
	if err := direct.QueryRow(ctx, `SELECT from_minute, to_minute, measurements FROM shifts`).Scan(&from, &to, &measurements); err != nil {
		t.Fatalf("web.2's partial was not shifted: %v", err)
	}
	if from != m.Unix() || to <= from || measurements != 1 {
		t.Fatalf("shift from %d to %d of %d measurements", from, to, measurements)
	}
}
