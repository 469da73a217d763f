package postgres

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
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
	for _, bad := range []string{"short", "YWJj", strings.Repeat("x", MinSecretChars-1), k1 + "," + "tooshort"} {
		_, err := ParseKeyring(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "DRAINMETER_KEY") || !strings.Contains(err.Error(), "at least 32 characters") ||
			strings.Contains(err.Error(), "short") && strings.Contains(err.Error(), "tooshort") {
			t.Errorf("%q: error %q does not name DRAINMETER_KEY and the minimum, or prints the key", bad, err)
		}
	}
	if _, err := (&Keyring{}).Seal([]byte("x"), nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty keyring: %v", err)
	}
}

// TestKeyringFromSecret: Heroku's "generator": "secret" makes an opaque
// string; any secret of at least 32 characters that is not a key in hex or
// base64 gives an AES key by HKDF, the same one every time, and keys in hex
// or base64 keep meaning what they meant.
func TestKeyringFromSecret(t *testing.T) {
	for _, secret := range []string{
		"3c9f1e0a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a", // 44 characters of hex: not a 64-hex key
		"correct horse battery staple and then some"[:40],
		strings.Repeat("z", MinSecretChars),
	} {
		k, err := ParseKeyring(secret)
		if err != nil {
			t.Fatalf("%q: %v", secret, err)
		}
		sealed, err := k.Seal([]byte("tok"), []byte("d1"))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := ParseKeyring(secret) // another dyno, another day
		if plain, err := again.Open(sealed, []byte("d1")); err != nil || string(plain) != "tok" {
			t.Fatalf("%q: a token sealed under a derived key does not open: %q %v", secret, plain, err)
		}
		other, _ := ParseKeyring(secret[:len(secret)-1] + "!")
		if _, err := other.Open(sealed, []byte("d1")); err == nil {
			t.Fatalf("%q: opened with another secret's key", secret)
		}
	}

	// A 64-hex key (what the generator makes today) and a base64 key are
	// the AES key itself, as before: a token sealed with the raw key opens.
	raw := bytes.Repeat([]byte{0xab}, 32)
	block, _ := aes.NewCipher(raw)
	aead, _ := cipher.NewGCM(block)
	id := sha256.Sum256(raw)
	sealed := append([]byte{sealVersion}, id[:4]...)
	sealed = append(sealed, make([]byte, 12)...)
	sealed = aead.Seal(sealed, sealed[5:17], []byte("tok"), []byte("d1"))
	for _, enc := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw)} {
		k, err := ParseKeyring(enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if plain, err := k.Open(sealed, []byte("d1")); err != nil || string(plain) != "tok" {
			t.Fatalf("%s no longer opens what the raw key sealed: %v", enc, err)
		}
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

// TestDrainsStore walks one drain through the store: added, refused specs,
// its secret rotated, its outlets set and listed without credentials, an
// outlet and the drain removed.
func TestDrainsStore(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, secret := drainsStoreAdd(t, ctx, d)
	drainsStoreRefused(t, ctx, d)
	drainsStoreRotate(t, ctx, d, a.ID, secret)
	drainsStoreSet(t, ctx, d, a.ID)
	drainsStoreNothingReadable(t, ctx, d)
	drainsStoreRemove(t, ctx, d, a.ID)
}

// drainsStoreAdd adds the drain "myapp" with a Librato outlet and checks its
// secret works and is not readable in the table.
func drainsStoreAdd(t *testing.T, ctx context.Context, d *Drains) (*Drain, string) {
	t.Helper()
	a, secret, err := d.Add(ctx, Spec{Name: ptr("myapp"), Outlets: []OutletSpec{librato("u@example.com", "tok-123")}, Prefix: ptr("p")})
	if err != nil {
		t.Fatal(err)
	}
	lib, ok := a.outlet(outlet.Librato)
	if !a.CheckSecret(secret, time.Now()) || a.CheckSecret(secret+"x", time.Now()) || !ok || lib.Token != "tok-123" || lib.User != "u@example.com" || !a.ProcessTypes {
		t.Fatalf("drain %+v", a)
	}
	var hash []byte
	if err := d.pool.QueryRow(ctx, "SELECT secret_hash FROM drains WHERE id=$1", a.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(hash, []byte(secret)) {
		t.Fatal("secret readable in the table")
	}
	return a, secret
}

// drainsStoreRefused checks a used name, a bad name and bad outlets are refused.
func drainsStoreRefused(t *testing.T, ctx context.Context, d *Drains) {
	t.Helper()
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
		{Kind: outlet.RemoteWrite, URL: "https://x/api/v1/write", PercentileGauges: ptr(true)},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", MaxBuckets: ptr(1)},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", MaxBuckets: ptr(5000)},
		{Kind: outlet.OTLP, URL: "https://x/v1/metrics", Histograms: ptr(outlet.NativeHistograms)},
		{Kind: outlet.RemoteWrite, URL: "https://x/api/v1/write", MaxBuckets: ptr(1000)},
		{Kind: outlet.RemoteWrite, URL: "https://x/api/v1/write", Histograms: ptr(outlet.Histograms("classic"))},
		{Kind: "statsd", URL: "https://x"},
	} {
		if _, _, err := d.Add(ctx, Spec{Name: ptr("bad-outlet"), Outlets: []OutletSpec{bad}}); err == nil {
			t.Errorf("outlet %+v accepted", bad)
		}
	}
}

// drainsStoreRotate checks a rotated secret replaces the old one.
func drainsStoreRotate(t *testing.T, ctx context.Context, d *Drains, id, secret string) {
	t.Helper()
	_, newSecret, err := d.RotateSecret(ctx, "myapp", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.Get(ctx, id)
	if got.CheckSecret(secret, time.Now()) || !got.CheckSecret(newSecret, time.Now()) {
		t.Fatal("rotation did not replace the secret")
	}
}

// drainsStoreSet checks Set: a new token for Librato (the user stays), an
// OTLP and a remote-write outlet with credentials; then that Set changes
// only what it names, and back to the defaults.
func drainsStoreSet(t *testing.T, ctx context.Context, d *Drains, id string) {
	t.Helper()
	var (
		got *Drain
		err error
	)
	otlp := OutletSpec{Kind: outlet.OTLP, URL: "https://otlp.example.com/otlp/v1/metrics",
		Headers: []outlet.Header{{Name: "Authorization", Value: "Basic c2VjcmV0LWhlYWRlcg=="}}, Temporality: outlet.Delta,
		PercentileGauges: ptr(true), MaxBuckets: ptr(1000)}
	rw := OutletSpec{Kind: outlet.RemoteWrite, URL: "https://rwuser:rw-password@prom.example.com/api/v1/write?tenant=t1",
		Histograms: ptr(outlet.NativeHistograms)}
	if got, err = d.Set(ctx, id, Spec{SourcePrefix: ptr("sp"), ProcessTypes: ptr(false),
		Outlets: []OutletSpec{{Kind: outlet.Librato, Token: "tok-456"}, otlp, rw}}); err != nil {
		t.Fatal(err)
	}
	lib, _ := got.outlet(outlet.Librato)
	o, _ := got.outlet(outlet.OTLP)
	r, _ := got.outlet(outlet.RemoteWrite)
	if got.SourcePrefix != "sp" || got.ProcessTypes || got.Prefix != "p" || lib.Token != "tok-456" || lib.User != "u@example.com" ||
		lib.Version != 2 || o.URL != otlp.URL || o.Headers[0] != otlp.Headers[0] || o.Temporality != outlet.Delta || !o.PercentileGauges || r.URL != rw.URL ||
		o.MaxBuckets != 1000 || !r.Native() {
		t.Fatalf("set: %+v", got)
	}
	// Set changes only what it names: percentile gauges stay on.
	if got, err = d.Set(ctx, id, Spec{Outlets: []OutletSpec{{Kind: outlet.OTLP, Temporality: outlet.Cumulative}}}); err != nil {
		t.Fatal(err)
	}
	if o, _ := got.outlet(outlet.OTLP); !o.PercentileGauges || o.Temporality != outlet.Cumulative || o.URL != otlp.URL || o.MaxBuckets != 1000 {
		t.Fatalf("set temporality: %+v", o)
	}
	if r, _ := got.outlet(outlet.RemoteWrite); !r.Native() {
		t.Fatalf("set kept native histograms: %+v", r)
	}
	// Back to the defaults: 160 buckets, summaries.
	if got, err = d.Set(ctx, id, Spec{Outlets: []OutletSpec{{Kind: outlet.OTLP, MaxBuckets: ptr(160)},
		{Kind: outlet.RemoteWrite, Histograms: ptr(outlet.SummaryHistograms)}}}); err != nil {
		t.Fatal(err)
	}
	o, _ = got.outlet(outlet.OTLP)
	r, _ = got.outlet(outlet.RemoteWrite)
	if o.MaxBuckets != 0 || r.Native() || !o.PercentileGauges {
		t.Fatalf("set defaults: %+v %+v", o, r)
	}
}

// drainsStoreNothingReadable checks nothing secret is readable in any column
// and List shows the outlets without credentials.
func drainsStoreNothingReadable(t *testing.T, ctx context.Context, d *Drains) {
	t.Helper()
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
}

// drainsStoreRemove removes one outlet, then the drain: it is listed only
// with --all, and its name is free again.
func drainsStoreRemove(t *testing.T, ctx context.Context, d *Drains, id string) {
	t.Helper()
	// Remove one outlet.
	if got, err := d.Set(ctx, id, Spec{Remove: []outlet.Kind{outlet.Librato}}); err != nil || len(got.Outlets) != 2 {
		t.Fatalf("remove outlet: %+v %v", got, err)
	}
	if _, err := d.Set(ctx, id, Spec{Remove: []outlet.Kind{outlet.Librato}}); err == nil {
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

// TestRotateSecretOverlap: the old secret stays valid for the overlap,
// then not; a second rotation drops the oldest; --finish ends it at once.
func TestRotateSecretOverlap(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, s1, err := d.Add(ctx, Spec{Name: ptr("app")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r, s2, err := d.RotateSecret(ctx, "app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r.PreviousExpiresAt == nil || r.PreviousExpiresAt.Sub(now) < 59*time.Minute || r.PreviousExpiresAt.Sub(now) > 61*time.Minute {
		t.Fatalf("overlap ends at %v, want an hour from now", r.PreviousExpiresAt)
	}
	got, _ := d.Get(ctx, a.ID)
	for _, c := range []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{s2, now, true}, {s1, now, true}, {s1, now.Add(59 * time.Minute), true},
		{s1, now.Add(61 * time.Minute), false}, {s2, now.Add(61 * time.Minute), true}, {"nope", now, false},
	} {
		if got.CheckSecret(c.secret, c.at) != c.want {
			t.Errorf("secret %.6s… at +%v: %v, want %v", c.secret, c.at.Sub(now).Round(time.Minute), !c.want, c.want)
		}
	}
	// A second rotation: the middle secret is the previous one now, the
	// first is gone.
	if _, _, err := d.RotateSecret(ctx, a.ID, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	got, _ = d.Get(ctx, a.ID)
	if got.CheckSecret(s1, now) || !got.CheckSecret(s2, now) {
		t.Fatal("after a second rotation: want the first secret refused and the second in its overlap")
	}
	if _, ended, err := d.FinishRotation(ctx, "app"); err != nil || !ended {
		t.Fatalf("finish: %v %v", ended, err)
	}
	got, _ = d.Get(ctx, a.ID)
	if got.CheckSecret(s2, now) || got.PreviousSecretHash != nil {
		t.Fatal("the previous secret still works after --finish")
	}
	if _, ended, err := d.FinishRotation(ctx, "app"); err != nil || ended {
		t.Fatalf("second finish: %v %v, want nothing to end", ended, err)
	}
	for _, bad := range []time.Duration{-time.Second, MaxOverlap + time.Second} {
		if _, _, err := d.RotateSecret(ctx, "app", bad); err == nil {
			t.Errorf("overlap %v accepted", bad)
		}
	}
}

// TestDrainCacheRecheck: a secret rotated after the drain was cached works
// at once through Recheck; rechecks of one drain are spaced out and share
// one lookup, and their total is bounded.
func TestDrainCacheRecheck(t *testing.T) {
	d, _ := newDrains(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, _, _ := d.Add(ctx, Spec{Name: ptr("a")})
	c := NewDrainCache(d, 30*time.Second, slog.New(slog.DiscardHandler), time.Now)
	if got, err := c.Lookup(ctx, a.ID); err != nil || got == nil {
		t.Fatalf("lookup: %v %v", got, err)
	}
	_, s2, err := d.RotateSecret(ctx, a.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := c.Lookup(ctx, a.ID)
	if cached.CheckSecret(s2, time.Now()) {
		t.Fatal("the cached entry knows the new secret: the test tests nothing")
	}
	got, err := c.Recheck(ctx, a.ID)
	if err != nil || got == nil || !got.CheckSecret(s2, time.Now()) {
		t.Fatalf("recheck after a rotation: %v %v", got, err)
	}
	if cached, _ := c.Lookup(ctx, a.ID); !cached.CheckSecret(s2, time.Now()) {
		t.Fatal("the recheck did not refresh the cache")
	}

	// Another rotation right away: the next recheck of the drain waits for
	// the interval, then sees it; concurrent rechecks share that lookup.
	_, s3, _ := d.RotateSecret(ctx, a.ID, time.Hour)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.Recheck(ctx, a.ID)
			if err != nil || got == nil || !got.CheckSecret(s3, time.Now()) {
				errs <- fmt.Errorf("recheck: %v %v", got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if took := time.Since(start); took < RecheckInterval/2 || took > 3*RecheckInterval {
		t.Errorf("rechecks right after one took %v, want about RecheckInterval", took)
	}

	// The overall budget: many drains failing at once get ErrRecheckBusy
	// past RecheckRate, and the handler answers 503.
	busy := 0
	var ids []string
	for i := range RecheckRate + 5 {
		x, _, err := d.Add(ctx, Spec{Name: ptr(fmt.Sprintf("b%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x.ID)
		_, _ = c.Lookup(ctx, x.ID)
	}
	c2 := NewDrainCache(d, 30*time.Second, slog.New(slog.DiscardHandler), func() time.Time { return start })
	for _, id := range ids {
		if _, err := c2.Recheck(ctx, id); errors.Is(err, ErrRecheckBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if busy != 5 {
		t.Errorf("%d of %d rechecks refused in one instant, want 5 (budget %d)", busy, len(ids), RecheckRate)
	}

	// The database away: Lookup serves the cached entry, Recheck cannot
	// tell (503, and logplex retries) rather than refuse a new secret.
	d.pool.Close()
	if got, err := c.Recheck(ctx, a.ID); err == nil {
		t.Fatalf("recheck without a database: %v, want an error", got)
	}
	if got, err := c.Lookup(ctx, a.ID); err != nil || got == nil {
		t.Fatalf("lookup without a database: %v %v, want the cached drain", got, err)
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

// TestDrainRoutes: route templates and mode are stored, read back in
// order, changed by Set; routes alone turn an off drain to templates;
// templates mode needs templates; bad templates are refused.
func TestDrainRoutes(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	routes := []string{"/users/:id", "/api/*", "/"}
	a, _, err := d.Add(ctx, Spec{Name: ptr("shop"), Routes: &routes})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.ByID(ctx, a.ID)
	if err != nil || got.RouteMetrics != parse.RoutesTemplates || !slices.Equal(got.Routes, routes) {
		t.Fatalf("added: %v %q %v", got.RouteMetrics, got.Routes, err)
	}
	auto := parse.RoutesAuto
	if got, err = d.Set(ctx, "shop", Spec{RouteMetrics: &auto}); err != nil || got.RouteMetrics != parse.RoutesAuto || !slices.Equal(got.Routes, routes) {
		t.Fatalf("set auto: %v %q %v", got.RouteMetrics, got.Routes, err)
	}
	none := []string{}
	if got, err = d.Set(ctx, "shop", Spec{Routes: &none}); err != nil || got.RouteMetrics != parse.RoutesAuto || len(got.Routes) != 0 {
		t.Fatalf("cleared: %v %q %v", got.RouteMetrics, got.Routes, err)
	}
	tpl := parse.RoutesTemplates
	if _, err := d.Set(ctx, "shop", Spec{RouteMetrics: &tpl}); err == nil {
		t.Error("templates without templates accepted")
	}
	for _, bad := range [][]string{{"users"}, {"/a?b"}, {"/*/x"}} {
		if _, err := d.Set(ctx, "shop", Spec{Routes: &bad}); err == nil {
			t.Errorf("routes %q accepted", bad)
		}
	}
	b, _, err := d.Add(ctx, Spec{Name: ptr("plain")})
	if err != nil || b.RouteMetrics != parse.RoutesOff || len(b.Routes) != 0 {
		t.Fatalf("a drain without routes: %v %q %v", b.RouteMetrics, b.Routes, err)
	}
	list, err := d.List(ctx, false)
	if err != nil || len(list) != 2 || list[1].Name != "shop" || list[1].RouteMetrics != parse.RoutesAuto {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// TestDrainIDSetAfterStart: right after a start, nothing cached, a flood of
// made-up ids spends the lookups of ids outside the set of drain ids, and
// never a drain's: every drain that exists is found at once; one added
// after the load is found within the limited lookups or the next load.
func TestDrainIDSetAfterStart(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		dr, _, err := d.Add(ctx, Spec{Name: ptr(fmt.Sprintf("app-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, dr.ID)
	}
	now := time.Now()
	c := NewDrainCache(d, 30*time.Second, slog.New(slog.DiscardHandler), func() time.Time { return now })
	if err := c.LoadIDs(ctx); err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 500 {
		if _, err := c.Lookup(ctx, fmt.Sprintf("d%016x", 5000+i)); errors.Is(err, ErrLookupLimited) {
			limited++
		}
	}
	if limited < 350 {
		t.Fatalf("%d of 500 made-up ids limited", limited)
	}
	for _, id := range ids {
		if got, err := c.Lookup(ctx, id); err != nil || got == nil || got.ID != id {
			t.Fatalf("drain %s after the flood: %v %v", id, got, err)
		}
	}
	// A drain added after the load: limited like a made-up id until the
	// next load, then found at once.
	late, _, _ := d.Add(ctx, Spec{Name: ptr("late")})
	if _, err := c.Lookup(ctx, late.ID); !errors.Is(err, ErrLookupLimited) {
		t.Fatalf("a drain added after the load, lookups spent: %v", err)
	}
	if err := c.LoadIDs(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Lookup(ctx, late.ID); err != nil || got == nil {
		t.Fatalf("after the next load: %v %v", got, err)
	}
}

// TestNoNameLikeAnID: a drain cannot be named like a drain id, by add or
// set, so that `drains set NAME` never changes another drain.
func TestNoNameLikeAnID(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, _, err := d.Add(ctx, Spec{Name: ptr("a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr(a.ID)}); err == nil || !strings.Contains(err.Error(), "looks like a drain id") {
		t.Fatalf("add named like an id: %v", err)
	}
	if _, err := d.Set(ctx, "a", Spec{Name: ptr("d0123456789abcdef")}); err == nil {
		t.Fatal("set a name like an id")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("d0123456789abcdeg")}); err != nil {
		t.Fatalf("a name that only starts like an id: %v", err)
	}
}
