package migrations_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/migrations"
)

func TestApplyConcurrentlyAndOnce(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, false))
	ctx := context.Background()
	if p, err := migrations.Pending(ctx, pool); err != nil || !slices.Equal(p, migrations.All()) {
		t.Fatalf("pending on an empty database: %v %v", p, err)
	}
	// Several dynos migrating at once: the advisory lock lets one apply
	// each migration, the others find nothing to do.
	var wg sync.WaitGroup
	applied := make([][]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = migrations.Apply(ctx, pool)
		}()
	}
	wg.Wait()
	var all []string
	for i := range 4 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		all = append(all, applied[i]...)
	}
	slices.Sort(all)
	if !slices.Equal(all, migrations.All()) {
		t.Fatalf("applied %v, want each of %v once", all, migrations.All())
	}
	if p, err := migrations.Pending(ctx, pool); err != nil || len(p) != 0 {
		t.Fatalf("pending after apply: %v %v", p, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(migrations.All()) {
		t.Fatalf("schema_migrations has %d rows (%v)", n, err)
	}
}
