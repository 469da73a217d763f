// Package migrations holds drainmeter's Postgres schema as numbered SQL
// files, embedded in the binary and applied in order, each in its own
// transaction, recorded in schema_migrations, under an advisory lock so that
// several dynos can start (or run the release phase) at once.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockKey is the advisory lock that serializes migrations ("drainmtr").
const lockKey = 0x647261696e6d7472

// All returns the migration versions (file names without .sql), in order.
func All() []string {
	entries, _ := fs.Glob(files, "*.sql") // a constant pattern: cannot fail
	sort.Strings(entries)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = strings.TrimSuffix(e, ".sql")
	}
	return out
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Apply applies every pending migration and returns the versions it applied.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return ApplyThrough(ctx, pool, "")
}

// ApplyThrough applies the pending migrations up to and including version
// last ("": all), as an older release would have; upgrade tests use it.
func ApplyThrough(ctx context.Context, pool *pgxpool.Pool, last string) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck // released with the session anyway
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	done, err := applied(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range All() {
		if last != "" && v > last {
			break
		}
		if done[v] {
			continue
		}
		sql, err := files.ReadFile(v + ".sql")
		if err != nil {
			return out, fmt.Errorf("migrate: %s: %w", v, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("migrate: %s: %w", v, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Pending returns the migrations not yet applied.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	done := map[string]bool{}
	if exists {
		if done, err = applied(ctx, conn.Conn()); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, v := range All() {
		if !done[v] {
			out = append(out, v)
		}
	}
	return out, nil
}

func applied(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	done := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		done[v] = true
	}
	return done, rows.Err()
}
