package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

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
	tn := &tenants{cache: cache, drains: drains, now: time.Now}
	const unknown = "dffffffffffffff00"
	for _, id := range []string{d.ID, unknown} {
		if _, ok, err := tn.Authenticate(ctx, id, "wrong"); ok || err != nil {
			t.Fatalf("before the flood, %s: %v %v, want a plain refusal", id, ok, err)
		}
	}
	for i := range postgres.UnknownLookupBurst + 10 { // made-up ids: their lookups run out
		_, _, _ = tn.Authenticate(ctx, fmt.Sprintf("d%016x", i+1), "x")
	}
	for _, id := range []string{d.ID, unknown} {
		if _, ok, err := tn.Authenticate(ctx, id, "wrong"); ok || !errors.Is(err, drain.ErrBusy) {
			t.Errorf("during the flood, %s: %v %v, want busy as for every id", id, ok, err)
		}
	}
	if got, ok, err := tn.Authenticate(ctx, d.ID, secret); !ok || err != nil || got.ID != d.ID {
		t.Errorf("during the flood, the right secret: %+v %v %v", got, ok, err)
	}
}
