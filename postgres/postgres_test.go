package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/pgtest"
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

func TestDrainsStore(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, secret, err := d.Add(ctx, Spec{Name: ptr("myapp"), LibratoUser: ptr("u@example.com"), LibratoToken: ptr("tok-123"), Prefix: ptr("p")})
	if err != nil {
		t.Fatal(err)
	}
	if !a.CheckSecret(secret) || a.CheckSecret(secret+"x") || a.LibratoToken != "tok-123" || !a.ProcessTypes {
		t.Fatalf("drain %+v", a)
	}
	var raw []byte
	var hash []byte
	if err := d.pool.QueryRow(ctx, "SELECT librato_token, secret_hash FROM drains WHERE id=$1", a.ID).Scan(&raw, &hash); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("tok-123")) || bytes.Contains(hash, []byte(secret)) {
		t.Fatal("token or secret readable in the table")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("myapp")}); !errors.Is(err, ErrNameUsed) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("bad name")}); err == nil {
		t.Fatal("a name with a space was accepted")
	}
	if _, _, err := d.Add(ctx, Spec{Name: ptr("x"), LibratoUser: ptr("u"), LibratoToken: ptr("")}); err == nil {
		t.Fatal("user without token accepted")
	}
	_, newSecret, err := d.RotateSecret(ctx, "myapp")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.Get(ctx, a.ID)
	if got.CheckSecret(secret) || !got.CheckSecret(newSecret) {
		t.Fatal("rotation did not replace the secret")
	}
	if got, err = d.Set(ctx, a.ID, Spec{SourcePrefix: ptr("sp"), ProcessTypes: ptr(false), LibratoToken: ptr("tok-456")}); err != nil ||
		got.SourcePrefix != "sp" || got.ProcessTypes || got.LibratoToken != "tok-456" || got.Prefix != "p" {
		t.Fatalf("set: %+v %v", got, err)
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
	a, _, err := d.Add(ctx, Spec{Name: ptr("a"), LibratoUser: ptr("u"), LibratoToken: ptr("tok")})
	if err != nil {
		t.Fatal(err)
	}
	oldKeys := d.keys
	newKeys, _ := ParseKeyring(NewKey())
	newKeys.keys = append(newKeys.keys, oldKeys.keys...)
	d.keys = newKeys
	if n, err := d.Reencrypt(ctx); err != nil || n != 1 {
		t.Fatalf("reencrypt: %d %v", n, err)
	}
	d.keys = &Keyring{keys: newKeys.keys[:1]} // the old key removed
	if got, err := d.Get(ctx, a.ID); err != nil || got.LibratoToken != "tok" {
		t.Fatalf("after rotation: %+v %v", got, err)
	}
}

func TestDrainCache(t *testing.T) {
	d, _ := newDrains(t)
	ctx := context.Background()
	a, _, _ := d.Add(ctx, Spec{Name: ptr("a")})
	now := time.Now()
	c := NewDrainCache(d, 30*time.Second, slog.New(slog.DiscardHandler), func() time.Time { return now })
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
	now = now.Add(31 * time.Second)
	if got, _ := c.Lookup(ctx, a.ID); got == nil || got.DisabledAt == nil {
		t.Fatal("removal not seen after the TTL")
	}
	// The database goes away: cached entries keep serving, unknown ids error.
	b, _, _ := d.Add(ctx, Spec{Name: ptr("b")})
	if got, _ := c.Lookup(ctx, b.ID); got == nil {
		t.Fatal("b not found")
	}
	d.pool.Close()
	now = now.Add(time.Minute)
	if got, err := c.Lookup(ctx, b.ID); err != nil || got == nil {
		t.Fatalf("stale entry not served while the database is down: %v %v", got, err)
	}
	if _, err := c.Lookup(ctx, "d0000000000000000"); err == nil {
		t.Fatal("no error for an unknown id while the database is down")
	}
}

func TestSharedIDsAcrossDynos(t *testing.T) {
	dsn := pgtest.NewDatabase(t, true)
	log := slog.New(slog.DiscardHandler)
	mk := func() *SharedIDs {
		return NewSharedIDs(pgtest.MustPool(t, dsn), drain.NewRecentIDs(time.Hour, 1000), 20*time.Millisecond, log, time.Now)
	}
	a, b := mk(), mk()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	go b.Run(ctx)
	now := time.Now()
	if !a.Claim("d", "F1", now) {
		t.Fatal("new id refused")
	}
	a.Commit("d", "F1")
	if !a.Claim("d", "F2", now) {
		t.Fatal("new id refused")
	}
	a.Release("d", "F2") // not counted: a retry must count
	deadline := time.Now().Add(5 * time.Second)
	for b.Claim("d", "F1", time.Now()) {
		b.Release("d", "F1")
		if time.Now().After(deadline) {
			t.Fatal("dyno b never learned that dyno a counted F1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !b.Claim("d", "F2", time.Now()) {
		t.Fatal("a released id was shared")
	}
}
