package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestLockWaitIsBoundedAndSaid: while another session holds the migration
// lock, Apply says so (who holds it) every LogEvery and gives up after
// LockTimeout with an error that says why; once the lock is free it
// migrates.
func TestLockWaitIsBoundedAndSaid(t *testing.T) {
	pool := pgtest.MustPool(t, pgtest.NewDatabase(t, false))
	ctx := context.Background()
	other, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	if _, err := other.Exec(ctx, "SET application_name = 'stuck-release'"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "SELECT pg_advisory_lock(x'647261696e6d7472'::bigint)"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	start := time.Now()
	_, err = migrations.ApplyWith(ctx, pool, migrations.Options{Log: slog.New(slog.NewTextHandler(&logs, nil)),
		LogEvery: 300 * time.Millisecond, LockTimeout: 1500 * time.Millisecond})
	took := time.Since(start)
	if !errors.Is(err, migrations.ErrLockTimeout) || !strings.Contains(err.Error(), "stuck-release") {
		t.Fatalf("err = %v, want ErrLockTimeout naming the holder", err)
	}
	if took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 1.5 s", took)
	}
	if n := strings.Count(logs.String(), "waiting for the migration lock"); n < 2 || !strings.Contains(logs.String(), "stuck-release") {
		t.Errorf("%d waiting lines naming the holder, want several:\n%s", n, logs.String())
	}
	if _, err := other.Exec(ctx, "SELECT pg_advisory_unlock(x'647261696e6d7472'::bigint)"); err != nil {
		t.Fatal(err)
	}
	if applied, err := migrations.ApplyWith(ctx, pool, migrations.Options{LockTimeout: time.Second}); err != nil || !slices.Equal(applied, migrations.All()) {
		t.Fatalf("after the lock was freed: %v %v", applied, err)
	}
}
