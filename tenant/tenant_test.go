package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/status"
)

func ptr[T any](v T) *T { return &v }

// newTable returns the drains table of a new database and a cache over it
// (ids loaded; entries kept for an hour, so that only Reload and Recheck
// read a cached drain again).
func newTable(t *testing.T) (*postgres.Drains, *postgres.DrainCache) {
	drains, cache, _ := newTableOn(t)
	return drains, cache
}

// newTableOn is newTable, and the pool of its database.
func newTableOn(t *testing.T) (*postgres.Drains, *postgres.DrainCache, *pgxpool.Pool) {
	t.Helper()
	keys, err := postgres.ParseKeyring(postgres.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, true))
	drains := postgres.NewDrains(pool, keys)
	return drains, postgres.NewDrainCache(drains, time.Hour, slog.New(slog.DiscardHandler), time.Now), pool
}

func TestLooksLikeDrainID(t *testing.T) {
	for s, want := range map[string]bool{
		"d0123456789abcdef":  true,
		"dffffffffffffffff":  true,
		"d0123456789ABCDEF":  false, // ids are lower case
		"d0123456789abcde":   false, // 15 digits
		"d0123456789abcdef0": false, // 17 digits
		"e0123456789abcdef":  false,
		"d0123456789abcdeg":  false,
		"default":            false,
		"":                   false,
		"shop":               false,
	} {
		if got := looksLikeDrainID(s); got != want {
			t.Errorf("looksLikeDrainID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestBuiltinApp: the user name of the built-in drain's URL names the app,
// as the status page shows it; no user name is the drain's own name.
func TestBuiltinApp(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, c := range []struct{ user, want string }{
		{"", status.BuiltinDrainName},
		{"shop", "shop"},
		{"shop-staging.web", "shop-staging.web"},
		{"bad\x00name\n", "bad?name?"},
	} {
		if got := builtinApp(c.user); got != c.want {
			t.Errorf("builtinApp(%q) = %q, want %q", c.user, got, c.want)
		}
	}
	got := builtinApp(long)
	if len(got) > drain.MaxLoggedNameBytes || !strings.HasPrefix(got, "aaaa") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("builtinApp of 100 bytes = %q (%d bytes), want it cut to at most %d, ending in …", got, len(got), drain.MaxLoggedNameBytes)
	}
}

// TestBuiltinDrain: the drain of the config vars takes any user name, which
// names the sending app unless APP_NAME names the drain; its outlets are
// the config's (the log outlet when none); its id is always
// status.BuiltinDrainID. Without a database, no table drain exists.
func TestBuiltinDrain(t *testing.T) {
	ctx := context.Background()
	otlp := outlet.Outlet{Kind: outlet.OTLP, URL: "https://otlp.example.com/v1/metrics"}
	attrs := []outlet.Attribute{{Key: "deployment.environment", Value: "production"}}
	tn := New(Config{Builtin: &drain.Caller{ID: "ignored", Prefix: "p", SourcePrefix: "sp", ProcessTypes: true,
		RouteMetrics: parse.RoutesTemplates, Routes: []string{"/users/:id"}},
		Secret: "s3cret", Outlets: []outlet.Outlet{otlp}, Attributes: attrs})

	if got := tn.BuiltinID(); got != status.BuiltinDrainID {
		t.Fatalf("BuiltinID = %q, want %q", got, status.BuiltinDrainID)
	}
	c, ok, err := tn.Authenticate(ctx, "shop", "s3cret")
	want := drain.Caller{ID: status.BuiltinDrainID, Prefix: "p", SourcePrefix: "sp", ProcessTypes: true,
		RouteMetrics: parse.RoutesTemplates, Routes: []string{"/users/:id"}, App: "shop"}
	if !ok || err != nil || !sameCaller(c, want) {
		t.Fatalf("the right secret: %+v %v %v, want %+v", c, ok, err, want)
	}
	if c, ok, _ := tn.Authenticate(ctx, "", "s3cret"); !ok || c.App != status.BuiltinDrainName {
		t.Errorf("no user name: %+v %v, want the app %q", c, ok, status.BuiltinDrainName)
	}
	// A user name shaped like a drain id is an app's name like any other
	// on the built-in drain, without a database.
	if c, ok, _ := tn.Authenticate(ctx, "d0123456789abcdef", "s3cret"); !ok || c.ID != status.BuiltinDrainID || c.App != "d0123456789abcdef" {
		t.Errorf("an id-shaped user name: %+v %v", c, ok)
	}
	// A refusal is counted on the built-in drain (any user name is its).
	for _, user := range []string{"shop", "d0123456789abcdef", ""} {
		if c, ok, err := tn.Authenticate(ctx, user, "wrong"); ok || err != nil || c.ID != status.BuiltinDrainID || c.App != "" {
			t.Errorf("a wrong secret for %q: %+v %v %v, want a refusal named %q", user, c, ok, err, status.BuiltinDrainID)
		}
	}

	d, ok := tn.Destination(status.BuiltinDrainID)
	if !ok || d.ID != status.BuiltinDrainID || d.Name != status.BuiltinDrainName || !slices.Equal(d.Attributes, attrs) ||
		!slices.EqualFunc(d.Outlets, []outlet.Outlet{otlp}, sameOutlet) {
		t.Fatalf("Drain(builtin) = %+v %v", d, ok)
	}
	d.Outlets[0].URL = "https://changed.example.com"
	if d := tn.Builtin(); d.Outlets[0].URL != otlp.URL {
		t.Errorf("a caller's change to the outlets reached the config: %q", d.Outlets[0].URL)
	}
	if d, ok, err := tn.Reload(ctx, status.BuiltinDrainID); !ok || err != nil || d.Outlets[0].URL != otlp.URL {
		t.Errorf("Reload(builtin) = %+v %v %v", d, ok, err)
	}
	if ok, err := tn.Owner(ctx, status.BuiltinDrainID, "s3cret"); !ok || err != nil {
		t.Errorf("the owner of the built-in drain: %v %v", ok, err)
	}
	if ok, err := tn.Owner(ctx, status.BuiltinDrainID, "wrong"); ok || err != nil {
		t.Errorf("a wrong secret on the built-in drain's page: %v %v", ok, err)
	}

	// Without a database, an id names no drain, whatever the secret.
	const id = "d0123456789abcdef"
	if d, ok := tn.Destination(id); ok || d != nil {
		t.Errorf("Drain(%s) without a database: %+v", id, d)
	}
	if d, ok, err := tn.Reload(ctx, id); ok || d != nil || err != nil {
		t.Errorf("Reload(%s) without a database: %+v %v %v", id, d, ok, err)
	}
	if ok, err := tn.Owner(ctx, id, "s3cret"); ok || err != nil {
		t.Errorf("Owner(%s) without a database: %v %v", id, ok, err)
	}
	for _, id := range []string{"shop", ""} {
		if d, ok := tn.Destination(id); ok || d != nil {
			t.Errorf("Drain(%q): %+v", id, d)
		}
	}

	// APP_NAME names the drain: no app per request.
	named := New(Config{Builtin: &drain.Caller{}, Secret: "s3cret", AppName: "web-shop"})
	if c, ok, _ := named.Authenticate(ctx, "shop", "s3cret"); !ok || c.App != "" {
		t.Errorf("with APP_NAME: %+v %v, want no app", c, ok)
	}
	if d := named.Builtin(); d.Name != "web-shop" || !slices.EqualFunc(d.Outlets, []outlet.Outlet{{Kind: outlet.Log}}, sameOutlet) {
		t.Errorf("with APP_NAME and no outlets: %+v, want the name and the log outlet", d)
	}

	// An empty DRAIN_SECRET takes any password.
	open := New(Config{Builtin: &drain.Caller{}})
	if c, ok, err := open.Authenticate(ctx, "shop", "anything"); !ok || err != nil || c.ID != status.BuiltinDrainID {
		t.Errorf("no DRAIN_SECRET: %+v %v %v", c, ok, err)
	}

	// No built-in drain (a database and no DRAIN_SECRET): it takes no
	// requests and opens no page, but its outlets still post (self-metrics).
	none := New(Config{Outlets: []outlet.Outlet{otlp}})
	if got := none.BuiltinID(); got != "" {
		t.Errorf("BuiltinID without a built-in drain = %q", got)
	}
	if c, ok, err := none.Authenticate(ctx, "shop", ""); ok || err != nil || c.ID != "" {
		t.Errorf("no built-in drain: %+v %v %v, want a refusal that names no drain", c, ok, err)
	}
	if ok, err := none.Owner(ctx, status.BuiltinDrainID, ""); ok || err != nil {
		t.Errorf("no built-in drain, its page: %v %v", ok, err)
	}
	if d, ok := none.Destination(status.BuiltinDrainID); !ok || d.Outlets[0].URL != otlp.URL {
		t.Errorf("no built-in drain, its outlets: %+v %v", d, ok)
	}
}

// TestSecretsCompareWhole: a password is accepted only when it is the whole
// secret (compared in constant time over hashes of the whole strings): a
// prefix, an extension, another case or another length of the right one is
// refused, on the built-in drain and a table drain alike.
func TestSecretsCompareWhole(t *testing.T) {
	ctx := context.Background()
	drains, cache := newTable(t)
	d, secret, err := drains.Add(ctx, postgres.Spec{Name: ptr("shop")})
	if err != nil {
		t.Fatal(err)
	}
	const builtinSecret = "Correct-Horse-Battery-Staple"
	tn := New(Config{Builtin: &drain.Caller{}, Secret: builtinSecret, Cache: cache})
	near := func(s string) []string {
		return []string{"", s[:1], s[:len(s)-1], s + "x", s + "\x00", "x" + s, strings.ToUpper(s), strings.ToLower(s),
			s[1:], strings.Repeat("a", len(s)), s[:len(s)-1] + string(s[len(s)-1]^1)}
	}
	for _, c := range []struct {
		user, secret string
		id           string
		requests     int // a table drain's refusal re-reads it, once a second: a few
	}{{"shop", builtinSecret, status.BuiltinDrainID, 100}, {d.ID, secret, d.ID, 3}} {
		if got, ok, err := tn.Authenticate(ctx, c.user, c.secret); !ok || err != nil || got.ID != c.id {
			t.Fatalf("%s, the right secret: %+v %v %v", c.user, got, ok, err)
		}
		if ok, err := tn.Owner(ctx, c.id, c.secret); !ok || err != nil {
			t.Fatalf("the page of %s, the right secret: %v %v", c.id, ok, err)
		}
		for i, p := range near(c.secret) {
			if p == c.secret { // the lower case of a hex secret
				continue
			}
			if i < c.requests {
				if got, ok, err := tn.Authenticate(ctx, c.user, p); ok || err != nil {
					t.Errorf("%s, %q: %+v %v %v, want a refusal", c.user, p, got, ok, err)
				}
			}
			if ok, err := tn.Owner(ctx, c.id, p); ok || err != nil {
				t.Errorf("the page of %s opened with %q: %v %v", c.id, p, ok, err)
			}
		}
	}
}

// TestTableDrains: with a database, a drain of the table is named by its id
// and its secret; its caller and its destination are its row's (Librato
// outlets at LIBRATO_URL, the log outlet when it has none); the built-in
// drain's secret still takes any user name.
func TestTableDrains(t *testing.T) {
	ctx := context.Background()
	drains, cache := newTable(t)
	attrs := []outlet.Attribute{{Key: "team", Value: "checkout"}}
	shop, secret, err := drains.Add(ctx, postgres.Spec{Name: ptr("shop"), Prefix: ptr("p"), SourcePrefix: ptr("sp"), ProcessTypes: ptr(true),
		RouteMetrics: ptr(parse.RoutesTemplates), Routes: &[]string{"/users/:id"}, Attributes: attrs,
		Outlets: []postgres.OutletSpec{{Kind: outlet.Librato, User: "u@example.com", Token: "tok"},
			{Kind: outlet.OTLP, URL: "https://otlp.example.com/v1/metrics"}}})
	if err != nil {
		t.Fatal(err)
	}
	bare, bareSecret, err := drains.Add(ctx, postgres.Spec{Name: ptr("bare")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.LoadIDs(ctx); err != nil {
		t.Fatal(err)
	}
	const libratoURL = "https://librato.example.com"
	tn := New(Config{Builtin: &drain.Caller{Prefix: "builtin"}, Secret: "s3cret", Cache: cache, LibratoURL: libratoURL})

	c, ok, err := tn.Authenticate(ctx, shop.ID, secret)
	want := drain.Caller{ID: shop.ID, Prefix: "p", SourcePrefix: "sp", ProcessTypes: true,
		RouteMetrics: parse.RoutesTemplates, Routes: []string{"/users/:id"}}
	if !ok || err != nil || !sameCaller(c, want) {
		t.Fatalf("shop: %+v %v %v, want %+v", c, ok, err, want)
	}
	if c, ok, err := tn.Authenticate(ctx, bare.ID, bareSecret); !ok || err != nil || c.ID != bare.ID || c.App != "" {
		t.Fatalf("bare: %+v %v %v", c, ok, err)
	}
	// One drain's secret does not open another.
	if c, ok, err := tn.Authenticate(ctx, bare.ID, secret); ok || err != nil || c.ID != bare.ID {
		t.Errorf("bare with shop's secret: %+v %v %v, want a refusal counted on bare", c, ok, err)
	}
	// The built-in drain's secret takes any user name, a table drain's id
	// too: the id is then an app's name on the built-in drain.
	if c, ok, err := tn.Authenticate(ctx, shop.ID, "s3cret"); !ok || err != nil || c.ID != status.BuiltinDrainID || c.App != shop.ID || c.Prefix != "builtin" {
		t.Errorf("shop's id with the built-in secret: %+v %v %v", c, ok, err)
	}
	// A wrong secret for a user name that is no drain id is the built-in
	// drain's refusal; for a table drain's id, that drain's.
	if c, ok, err := tn.Authenticate(ctx, "shop", secret); ok || err != nil || c.ID != status.BuiltinDrainID {
		t.Errorf("a name that is no id: %+v %v %v", c, ok, err)
	}

	d, ok := tn.Destination(shop.ID)
	wantOutlets := []outlet.Outlet{{Kind: outlet.Librato, URL: libratoURL, User: "u@example.com", Token: "tok"},
		{Kind: outlet.OTLP, URL: "https://otlp.example.com/v1/metrics"}}
	if !ok || d.ID != shop.ID || d.Name != "shop" || !slices.Equal(d.Attributes, attrs) || !slices.EqualFunc(d.Outlets, wantOutlets, sameOutlet) {
		t.Fatalf("Drain(shop) = %+v %v, want the Librato outlet at LIBRATO_URL and the OTLP one", d, ok)
	}
	d.Outlets[0].URL = "https://changed.example.com"
	if d, _ := tn.Destination(shop.ID); d.Outlets[0].URL != libratoURL {
		t.Errorf("a caller's change to the outlets reached the cache: %q", d.Outlets[0].URL)
	}
	if d, ok := tn.Destination(bare.ID); !ok || d.Name != "bare" || !slices.EqualFunc(d.Outlets, []outlet.Outlet{{Kind: outlet.Log}}, sameOutlet) {
		t.Errorf("Drain(bare) = %+v %v, want the log outlet", d, ok)
	}
	if ok, err := tn.Owner(ctx, shop.ID, secret); !ok || err != nil {
		t.Errorf("shop's owner: %v %v", ok, err)
	}
	if ok, err := tn.Owner(ctx, shop.ID, bareSecret); ok || err != nil {
		t.Errorf("shop's page with bare's secret: %v %v", ok, err)
	}
	// The built-in secret opens only the built-in drain's page.
	if ok, err := tn.Owner(ctx, shop.ID, "s3cret"); ok || err != nil {
		t.Errorf("shop's page with the built-in secret: %v %v", ok, err)
	}

	// A removed drain is refused (counted on it), opens no page, but its
	// outlets are still found: its last minutes still go out.
	if _, err := drains.Remove(ctx, shop.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := tn.Reload(ctx, shop.ID); !ok || err != nil {
		t.Fatalf("Reload(removed shop): %v %v", ok, err)
	}
	if c, ok, err := tn.Authenticate(ctx, shop.ID, secret); ok || err != nil || c.ID != shop.ID {
		t.Errorf("removed shop: %+v %v %v, want a refusal counted on it", c, ok, err)
	}
	if ok, err := tn.Owner(ctx, shop.ID, secret); ok || err != nil {
		t.Errorf("removed shop's page: %v %v", ok, err)
	}
	if d, ok := tn.Destination(shop.ID); !ok || len(d.Outlets) != 2 {
		t.Errorf("Drain(removed shop) = %+v %v, want its outlets", d, ok)
	}
}

// TestReloadAfterChange: a drain's outlets set in the table reach Drain
// within the cache's TTL, and at once through Reload; a secret rotated
// after the drain was cached works at once (a re-check).
func TestReloadAfterChange(t *testing.T) {
	ctx := context.Background()
	drains, cache := newTable(t)
	d, secret, err := drains.Add(ctx, postgres.Spec{Name: ptr("shop"),
		Outlets: []postgres.OutletSpec{{Kind: outlet.OTLP, URL: "https://old.example.com/v1/metrics"}}})
	if err != nil {
		t.Fatal(err)
	}
	tn := New(Config{Cache: cache})
	if got, ok := tn.Destination(d.ID); !ok || got.Outlets[0].URL != "https://old.example.com/v1/metrics" {
		t.Fatalf("Drain = %+v %v", got, ok)
	}
	if _, err := drains.Set(ctx, d.ID, postgres.Spec{Name: ptr("shop2"),
		Outlets: []postgres.OutletSpec{{Kind: outlet.OTLP, URL: "https://new.example.com/v1/metrics"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := tn.Destination(d.ID); got.Outlets[0].URL != "https://old.example.com/v1/metrics" {
		t.Fatalf("within the TTL, Drain read the table again: %+v", got)
	}
	got, ok, err := tn.Reload(ctx, d.ID)
	if !ok || err != nil || got.Name != "shop2" || got.Outlets[0].URL != "https://new.example.com/v1/metrics" {
		t.Fatalf("Reload = %+v %v %v, want the new name and URL", got, ok, err)
	}
	if got, _ := tn.Destination(d.ID); got.Name != "shop2" || got.Outlets[0].URL != "https://new.example.com/v1/metrics" {
		t.Errorf("Drain after Reload = %+v, want the new outlets", got)
	}

	if _, ok, _ := tn.Authenticate(ctx, d.ID, secret); !ok {
		t.Fatal("the secret before the rotation")
	}
	if _, _, err := drains.RotateSecret(ctx, d.ID, 0); err != nil {
		t.Fatal(err)
	}
	_, rotated, err := drains.RotateSecret(ctx, d.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, err := tn.Authenticate(ctx, d.ID, rotated); !ok || err != nil || c.ID != d.ID {
		t.Errorf("the rotated secret, at once: %+v %v %v", c, ok, err)
	}
	if ok, err := tn.Owner(ctx, d.ID, rotated); !ok || err != nil {
		t.Errorf("the page with the rotated secret: %v %v", ok, err)
	}
	if _, ok, _ := tn.Authenticate(ctx, d.ID, secret); ok {
		t.Error("the secret of two rotations ago still works")
	}
}

// TestUnknownID: an id that names no drain gets a refusal that names no
// drain (counted as unknown), even with a built-in drain; no destination,
// no reload, no page. While the database cannot tell, the answer is an
// error (503: logplex retries), not a refusal.
func TestUnknownID(t *testing.T) {
	ctx := context.Background()
	drains, cache, pool := newTableOn(t)
	if err := cache.LoadIDs(ctx); err != nil {
		t.Fatal(err)
	}
	const unknown = "dffffffffffffff00"
	for _, tn := range []*Tenants{New(Config{Cache: cache}), New(Config{Builtin: &drain.Caller{}, Secret: "s3cret", Cache: cache})} {
		if c, ok, err := tn.Authenticate(ctx, unknown, "whatever"); ok || err != nil || c.ID != "" {
			t.Errorf("builtin %q: Authenticate(unknown) = %+v %v %v, want a refusal naming no drain", tn.BuiltinID(), c, ok, err)
		}
		if d, ok := tn.Destination(unknown); ok || d != nil {
			t.Errorf("Drain(unknown) = %+v", d)
		}
		if d, ok, err := tn.Reload(ctx, unknown); ok || d != nil || err != nil {
			t.Errorf("Reload(unknown) = %+v %v %v", d, ok, err)
		}
		if ok, err := tn.Owner(ctx, unknown, "whatever"); ok || err != nil {
			t.Errorf("Owner(unknown) = %v %v", ok, err)
		}
	}
	// A user name that is no drain id and not the built-in drain's secret
	// names no drain without a built-in one.
	if c, ok, err := New(Config{Cache: cache}).Authenticate(ctx, "shop", "x"); ok || err != nil || c.ID != "" {
		t.Errorf("no built-in drain, a name: %+v %v %v", c, ok, err)
	}

	// The database goes away: a drain not cached cannot be told.
	d, _, err := drains.Add(ctx, postgres.Spec{Name: ptr("late")})
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	tn := New(Config{Cache: postgres.NewDrainCache(drains, time.Hour, slog.New(slog.DiscardHandler), time.Now)})
	if c, ok, err := tn.Authenticate(ctx, d.ID, "x"); ok || err == nil || c.ID != "" {
		t.Errorf("database down: Authenticate = %+v %v %v, want an error", c, ok, err)
	}
	if _, err := tn.Owner(ctx, d.ID, "x"); err == nil {
		t.Error("database down: Owner told")
	}
	if d, ok := tn.Destination(d.ID); ok || d != nil {
		t.Errorf("database down: Drain = %+v", d)
	}
}

// TestCredentialFailuresTellNoIDs: while made-up ids are being refused
// for their rate (a flood), a wrong secret on a drain that exists gets the
// same answer as an id that does not ("busy": 503 after the refusal
// delay), so the flood cannot tell which ids exist; the right secret still
// gets in. Before the flood, both are plain refusals.
func TestCredentialFailuresTellNoIDs(t *testing.T) {
	ctx := context.Background()
	keys, _ := postgres.ParseKeyring(postgres.NewKey())
	drains := postgres.NewDrains(pgtest.MustPool(t, pgtest.NewDatabase(t, true)), keys)
	name := "shop"
	d, secret, err := drains.Add(ctx, postgres.Spec{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now() // the cache's clock stands still: no budget refills during the flood
	cache := postgres.NewDrainCache(drains, time.Minute, slog.New(slog.DiscardHandler), func() time.Time { return at })
	if err := cache.LoadIDs(ctx); err != nil {
		t.Fatal(err)
	}
	tn := New(Config{Cache: cache, Now: time.Now})
	const unknown = "dffffffffffffff00"
	for _, id := range []string{d.ID, unknown} {
		if _, ok, err := tn.Authenticate(ctx, id, "wrong"); ok || err != nil {
			t.Fatalf("before the flood, %s: %v %v, want a plain refusal", id, ok, err)
		}
	}
	for i := range postgres.UnknownLookupBurst + 10 { // made-up ids: their lookups run out
		_, _, _ = tn.Authenticate(ctx, fmt.Sprintf("d%016x", i+1), "x")
	}
	var answers []string
	for _, id := range []string{d.ID, unknown} {
		_, ok, err := tn.Authenticate(ctx, id, "wrong")
		if ok || !errors.Is(err, drain.ErrBusy) {
			t.Errorf("during the flood, %s: %v %v, want busy as for every id", id, ok, err)
		}
		if err != nil {
			answers = append(answers, err.Error())
			if strings.Contains(err.Error(), id) {
				t.Errorf("during the flood, the error names the id: %v", err)
			}
		}
	}
	if len(answers) == 2 && answers[0] != answers[1] {
		t.Errorf("during the flood, a drain that exists and one that does not get different errors: %q, %q", answers[0], answers[1])
	}
	if got, ok, err := tn.Authenticate(ctx, d.ID, secret); !ok || err != nil || got.ID != d.ID {
		t.Errorf("during the flood, the right secret: %+v %v %v", got, ok, err)
	}
}

func sameCaller(a, b drain.Caller) bool {
	return a.ID == b.ID && a.Prefix == b.Prefix && a.SourcePrefix == b.SourcePrefix && a.ProcessTypes == b.ProcessTypes &&
		a.RouteMetrics == b.RouteMetrics && slices.Equal(a.Routes, b.Routes) && a.App == b.App
}

// sameOutlet compares the fields the tests set.
func sameOutlet(a, b outlet.Outlet) bool {
	return a.Kind == b.Kind && a.URL == b.URL && a.User == b.User && a.Token == b.Token
}
