// Package pgtest gives tests a real, empty, migrated Postgres database of
// their own, on the server that scripts/with-postgres started
// (TEST_DATABASE_URL). Without TEST_DATABASE_URL the test is skipped, except
// under CI=true, where it fails: CI must run the database tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/migrations"
)

// ServerURL returns TEST_DATABASE_URL, skipping (or, in CI, failing) the test
// when it is not set.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("TEST_DATABASE_URL is not set: run the tests with ./scripts/test (it starts Postgres)")
		}
		tb.Skip("TEST_DATABASE_URL is not set: run ./scripts/test to start a Postgres for these tests")
	}
	return u
}

// NewDatabase creates an empty database, dropped when the test ends, and
// returns its URL. With migrate, the migrations are applied.
func NewDatabase(tb testing.TB, migrate bool) string {
	tb.Helper()
	server := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, server); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	dsn := u.String()
	if migrate {
		pool := MustPool(tb, dsn)
		if _, err := migrations.Apply(ctx, pool); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	return dsn
}

// MustPool opens a pool on dsn, closed when the test ends.
func MustPool(tb testing.TB, dsn string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
