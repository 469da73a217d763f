package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
)

func TestKeyring(t *testing.T) {
	k1, k2 := NewKey(), NewKey()
	old, err := ParseKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal([]byte("tok"), []byte("d1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("tok")) {
		t.Fatal("token readable in the ciphertext")
	}
	if _, err := old.Open(sealed, []byte("d2")); err == nil {
		t.Fatal("opened with the wrong drain id")
	}
	rotated, err := ParseKeyring(k2 + "," + k1) // new key first
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := rotated.Open(sealed, []byte("d1")); err != nil || string(plain) != "tok" {
		t.Fatalf("old token after rotation: %q %v", plain, err)
	}
	if rotated.Current(sealed) {
		t.Fatal("an old-key token counts as current")
	}
	onlyNew, _ := ParseKeyring(k2)
	if _, err := onlyNew.Open(sealed, []byte("d1")); err == nil {
		t.Fatal("opened without its key")
	}
	hexKey := strings.Repeat("ab", 32)
	if _, err := ParseKeyring(hexKey); err != nil {
		t.Fatalf("hex key: %v", err)
	}
	for _, bad := range []string{"short", "YWJj"} {
		if _, err := ParseKeyring(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := (&Keyring{}).Seal([]byte("x"), nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty keyring: %v", err)
	}
}

func newDrains(t *testing.T) (*Drains, string) {
	dsn := pgtest.NewDatabase(t, true)
	keys, _ := ParseKeyring(NewKey())
	return NewDrains(pgtest.MustPool(t, dsn), keys), dsn
}

func ptr[T any](v T) *T { return &v }

func librato(user, token string) OutletSpec {
	return OutletSpec{Kind: outlet.Librato, User: user, Token: token}
}

func TestDrainsStore(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, secret, err := d.Add(ctx, Spec{Name: ptr("myapp"), Outlets: []OutletSpec{librato("u@example.com", "tok-123")}, Prefix: ptr("p")})
	if err != nil {
		t.Fatal(err)
	}
	lib, ok := a.outlet(outlet.Librato)
	if !a.CheckSecret(secret) || a.CheckSecret(secret+"x") || !ok || lib.Token != "tok-123" || lib.User != "u@example.com" || !a.ProcessTypes {
		t.Fatalf("drain %+v", a)
	}
	var hash []byte
	if err := d.pool.QueryRow(ctx, "SELECT secret_hash FROM drains WHERE id=$1", a.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(hash, []byte(secret)) {
		t.Fatal("secret readable in the table")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("myapp")}); !errors.Is(err, ErrNameUsed) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("bad name")}); err == nil {
		t.Fatal("a name with a space was accepted")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("x"), Outlets: []OutletSpec{librato("u", "")}}); err == nil {
		t.Fatal("user without token accepted")
	}
	for _, bad := range []OutletSpec{
		{Kind: outlet.OTLP},
		{Kind: outlet.OTLP, URL: "ftp://x/v1/metrics"},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", Temporality: "weekly"},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", Headers: []outlet.Header{{Name: "bad name", Value: "v"}}},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", Headers: []outlet.Header{{Name: "X", Value: "a\r\nInjected: 1"}}},
		{Kind: outlet.RemoteWrite},
		{Kind: "statsd", URL: "https://x"},
	} {
		if _, _, err := d.Add(ctx, Spec{Name: ptr("bad-outlet"), Outlets: []OutletSpec{bad}}); err == nil {
			t.Errorf("outlet %+v accepted", bad)
		}
	}
	_, newSecret, err := d.RotateSecret(ctx, "myapp")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.Get(ctx, a.ID)
	if got.CheckSecret(secret) || !got.CheckSecret(newSecret) {
		t.Fatal("rotation did not replace the secret")
	}

	// Set: a new token for Librato (the user stays), an OTLP and a
	// remote-write outlet with credentials.
	otlp := OutletSpec{Kind: outlet.OTLP, URL: "https://otlp.example.com/otlp/v1/metrics",
		Headers: []outlet.Header{{Name: "Authorization", Value: "Basic c2VjcmV0LWhlYWRlcg=="}}, Temporality: outlet.Delta}
	rw := OutletSpec{Kind: outlet.RemoteWrite, URL: "https://rwuser:rw-password@prom.example.com/api/v1/write?tenant=t1"}
	if got, err = d.Set(ctx, a.ID, Spec{SourcePrefix: ptr("sp"), ProcessTypes: ptr(false),
		Outlets: []OutletSpec{{Kind: outlet.Librato, Token: "tok-456"}, otlp, rw}}); err != nil {
		t.Fatal(err)
	}
	lib, _ = got.outlet(outlet.Librato)
	o, _ := got.outlet(outlet.OTLP)
	r, _ := got.outlet(outlet.RemoteWrite)
	if got.SourcePrefix != "sp" || got.ProcessTypes || got.Prefix != "p" || lib.Token != "tok-456" || lib.User != "u@example.com" ||
		lib.Version != 2 || o.URL != otlp.URL || o.Headers[0] != otlp.Headers[0] || o.Temporality != outlet.Delta || r.URL != rw.URL {
		t.Fatalf("set: %+v", got)
	}
	// Nothing secret is readable in any column.
	var dump string
	if err := d.pool.QueryRow(ctx, `SELECT string_agg(t::text, ' ') FROM (SELECT * FROM outlets) t`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"tok-456", "c2VjcmV0LWhlYWRlcg", "rw-password", "tenant=t1"} {
		if strings.Contains(dump, secret) {
			t.Errorf("%q readable in the outlets table: %s", secret, dump)
		}
	}
	// List shows the outlets without credentials.
	list, err := d.List(ctx, false)
	if err != nil || len(list) != 1 || len(list[0].Outlets) != 3 {
		t.Fatalf("list: %+v %v", list, err)
	}
	for _, o := range list[0].Outlets {
		if o.Token != "" || len(o.Headers) != 0 || strings.Contains(o.URL, "rw-password") {
			t.Errorf("list leaks credentials: %+v", o)
		}
	}
	// Remove one outlet.
	if got, err = d.Set(ctx, a.ID, Spec{Remove: []outlet.Kind{outlet.Librato}}); err != nil || len(got.Outlets) != 2 {
		t.Fatalf("remove outlet: %+v %v", got, err)
	}
	if _, err = d.Set(ctx, a.ID, Spec{Remove: []outlet.Kind{outlet.Librato}}); err == nil {
		t.Fatal("removing a missing outlet succeeded")
	}

	if _, err := d.Remove(ctx, "myapp"); err != nil {
		t.Fatal(err)
	}
	if list, _ := d.List(ctx, false); len(list) != 0 {
		t.Fatalf("removed drain listed: %+v", list[0])
	}
	if list, _ := d.List(ctx, true); len(list) != 1 || list[0].DisabledAt == nil {
		t.Fatal("removed drain missing from list --all")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("myapp")}); err != nil {
		t.Fatalf("name not free after rm: %v", err)
	}
	if _, err := d.Remove(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rm unknown: %v", err)
	}
}

func TestReencrypt(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, _, err := d.Add(ctx, Spec{Name: ptr("a"), Outlets: []OutletSpec{librato("u", "tok"),
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", Headers: []outlet.Header{{Name: "api-key", Value: "k1"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	oldKeys := d.keys
	newKeys, _ := ParseKeyring(NewKey())
	newKeys.keys = append(newKeys.keys, oldKeys.keys...)
	d.keys = newKeys
	if n, err := d.Reencrypt(ctx); err != nil || n != 2 {
		t.Fatalf("reencrypt: %d %v", n, err)
	}
	d.keys = &Keyring{keys: newKeys.keys[:1]} // the old key removed
	got, err := d.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	lib, _ := got.outlet(outlet.Librato)
	o, _ := got.outlet(outlet.OTLP)
	if lib.Token != "tok" || o.Headers[0].Value != "k1" {
		t.Fatalf("after rotation: %+v", got)
	}
}

// TestMigratedLibratoToken: a token sealed by drainmeter 0.1 in the drains
// table is an outlet after the migration.
func TestMigratedLibratoToken(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	pool := pgtest.MustPool(t, dsn)
	ctx := context.Background()
	keys, _ := ParseKeyring(NewKey())
	if _, err := migrations.ApplyThrough(ctx, pool, "0003_durable_rollups"); err != nil {
		t.Fatal(err)
	}
	sealed, _ := keys.Seal([]byte("old-token"), []byte("d0123456789abcdef"))
	if _, err := pool.Exec(ctx, `INSERT INTO drains (id, name, secret_hash, librato_user, librato_token) VALUES ($1, 'old', $2, 'u@x', $3)`,
		"d0123456789abcdef", hashSecret("s"), sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	got, err := NewDrains(pool, keys).Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if lib, ok := got.outlet(outlet.Librato); !ok || lib.User != "u@x" || lib.Token != "old-token" {
		t.Fatalf("migrated: %+v", got)
	}
}

func TestDrainCache(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, _, _ := d.Add(ctx, Spec{Name: ptr("a")})
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := NewDrainCache(d, 30*time.Second, slog.New(slog.DiscardHandler), clock)
	if got, err := c.Lookup(ctx, a.ID); err != nil || got == nil {
		t.Fatalf("lookup: %v %v", got, err)
	}
	if got, _ := c.Lookup(ctx, "dffffffffffffffff"); got != nil {
		t.Fatal("unknown id found")
	}
	if _, err := d.Remove(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Lookup(ctx, a.ID); got == nil || got.DisabledAt != nil {
		t.Fatal("cache expired early")
	}
	advance(31 * time.Second)
	// After the TTL the stale entry is served while it is refreshed in the
	// background; the removal shows within a lookup.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := c.Lookup(ctx, a.ID)
		if got == nil {
			t.Fatal("a known drain vanished")
		}
		if got.DisabledAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("removal not seen after the TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A flood of unknown ids does not evict a known drain.
	b, _, _ := d.Add(ctx, Spec{Name: ptr("b")})
	if got, _ := c.Lookup(ctx, b.ID); got == nil {
		t.Fatal("b not found")
	}
	for i := range 50 {
		_, _ = c.Lookup(ctx, fmt.Sprintf("d%016x", i))
	}
	if _, ok := c.Cached(b.ID); !ok {
		t.Fatal("unknown ids evicted a known drain")
	}
	// Lookups of ids not cached are limited (the burst is spent after
	// about a hundred); a known drain is not; the rate comes back.
	limited := 0
	for i := range 200 {
		if _, err := c.Lookup(ctx, fmt.Sprintf("d%016x", 1000+i)); errors.Is(err, ErrLookupLimited) {
			limited++
		}
	}
	if limited < 150 {
		t.Fatalf("%d of 200 unknown ids limited", limited)
	}
	if got, err := c.Lookup(ctx, b.ID); err != nil || got == nil {
		t.Fatalf("a known drain while unknown ids are limited: %v %v", got, err)
	}
	advance(time.Second)
	if _, err := c.Lookup(ctx, "d00000000000000ff"); err != nil {
		t.Fatalf("a second later: %v", err)
	}
	// The database goes away: cached entries keep serving, unknown ids error.
	d.pool.Close()
	advance(time.Minute)
	if got, err := c.Lookup(ctx, b.ID); err != nil || got == nil {
		t.Fatalf("stale entry not served while the database is down: %v %v", got, err)
	}
	if _, err := c.Lookup(ctx, "d0000000000000000"); err == nil {
		t.Fatal("no error for an unknown id while the database is down")
	}
}

// TestClaimsAcrossDynos: a batch id is claimed once across dynos, even by
// concurrent claims; ids claimed in one dyno's memory during an outage are
// written when Postgres is back.
func TestClaimsAcrossDynos(t *testing.T) {
	dsn := pgtest.NewDatabase(t, true)
	log := slog.New(slog.DiscardHandler)
	mk := func() *Claims { // a generous timeout: 1 000 claims at once under the race detector
		return NewClaims(ClaimsConfig{Timeout: 10 * time.Second}, pgtest.MustPool(t, dsn), drain.NewRecentIDs(time.Hour, 1000), log, time.Now)
	}
	a, b := mk(), mk()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	go b.Run(ctx)
	now := time.Now()
	// 20 copies of each of 50 batches race on two dynos at once: each is
	// claimed exactly once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	for i := range 50 {
		for copyN := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := a
				if copyN%2 == 1 {
					c = b
				}
				id := fmt.Sprintf("F%02d", i)
				fresh, err := c.Claim(ctx, "d", id, now)
				if err != nil {
					t.Error(err)
				}
				if fresh {
					mu.Lock()
					wins[id]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for i := range 50 {
		if id := fmt.Sprintf("F%02d", i); wins[id] != 1 {
			t.Errorf("%s claimed %d times", id, wins[id])
		}
	}
	if fresh, _ := a.Claim(ctx, "other", "F00", now); !fresh {
		t.Fatal("ids are per drain")
	}
}

// TestClaimsDuringOutage: while Postgres does not answer, claims are
// decided in memory (and say so); once it is back they are written, so
// the other dynos see them.
func TestClaimsDuringOutage(t *testing.T) {
	pg := pgtest.NewServer(t)
	log := slog.New(slog.DiscardHandler)
	pool := pgtest.MustPool(t, pg.URL)
	if _, err := migrations.Apply(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	a := NewClaims(ClaimsConfig{Timeout: 300 * time.Millisecond}, pool, drain.NewRecentIDs(time.Hour, 1000), log, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	pg.Stop()
	if fresh, err := a.Claim(ctx, "d", "X1", time.Now()); !fresh || err != nil {
		t.Fatalf("claim during the outage: %v %v", fresh, err)
	}
	if !a.Degraded() {
		t.Fatal("not degraded during the outage")
	}
	if fresh, _ := a.Claim(ctx, "d", "X1", time.Now()); fresh {
		t.Fatal("the same id claimed twice in memory")
	}
	pg.Start()
	waitUntil(t, "claims back in Postgres", func() bool { return !a.Degraded() })
	b := NewClaims(ClaimsConfig{}, pgtest.MustPool(t, pg.URL), drain.NewRecentIDs(time.Hour, 1000), log, time.Now)
	go b.Run(ctx)
	if fresh, err := b.Claim(ctx, "d", "X1", time.Now()); fresh || err != nil {
		t.Fatalf("another dyno claimed an id counted during the outage: %v %v", fresh, err)
	}
}
