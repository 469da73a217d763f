// Package migrations holds drainmeter's Postgres schema as numbered SQL
// files, embedded in the binary and applied in order, each in its own
// transaction, recorded in schema_migrations, under an advisory lock so that
// several dynos can start (or run the release phase) at once.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

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

// Options tune how Apply waits for the migration lock.
type Options struct {
	// Log, if set, gets a line every LogEvery while another process holds
	// the lock (which one, and for how long we have waited).
	Log      *slog.Logger
	LogEvery time.Duration // default 10 s
	// LockTimeout is how long to wait for the lock before giving up with
	// an error that says so (default DefaultLockTimeout).
	LockTimeout time.Duration
}

// DefaultLockTimeout is how long Apply waits for the migration lock.
const DefaultLockTimeout = 5 * time.Minute

// lockPoll is how often a waiting Apply tries the lock again.
const lockPoll = 250 * time.Millisecond

// ErrLockTimeout is returned when another process held the migration lock
// for longer than Options.LockTimeout.
var ErrLockTimeout = errors.New("another process holds the migration lock")

// Apply applies every pending migration and returns the versions it applied.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return ApplyWith(ctx, pool, Options{})
}

// ApplyWith is Apply, waiting for the lock as opts say.
func ApplyWith(ctx context.Context, pool *pgxpool.Pool, opts Options) ([]string, error) {
	return applyThrough(ctx, pool, "", opts)
}

// ApplyThrough applies the pending migrations up to and including version
// last ("": all), as an older release would have; upgrade tests use it.
func ApplyThrough(ctx context.Context, pool *pgxpool.Pool, last string) ([]string, error) {
	return applyThrough(ctx, pool, last, Options{})
}

// lock takes the migration lock on conn, trying again every lockPoll (a
// plain pg_advisory_lock would wait forever, without a word, behind a
// process stuck in a migration), logging who holds it every LogEvery, and
// giving up after LockTimeout.
func lock(ctx context.Context, conn *pgxpool.Conn, opts Options) error {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	start := time.Now()
	lastLog := start
	for {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(lockKey)).Scan(&got); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if got {
			if opts.Log != nil && time.Since(start) >= opts.LogEvery {
				opts.Log.Info("migration lock taken", "waited", time.Since(start).Round(time.Second))
			}
			return nil
		}
		waited := time.Since(start)
		if waited >= opts.LockTimeout {
			return fmt.Errorf("migrate: %w (%s): gave up after %s; if it is stuck, end it: SELECT pg_terminate_backend(pid)",
				ErrLockTimeout, holder(ctx, conn), opts.LockTimeout)
		}
		if opts.Log != nil && time.Since(lastLog) >= opts.LogEvery {
			lastLog = time.Now()
			opts.Log.Warn("waiting for the migration lock: another process is migrating the database",
				"holder", holder(ctx, conn), "waited", waited.Round(time.Second), "gives_up_after", opts.LockTimeout)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("migrate: lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// holder describes the session that holds the migration lock.
func holder(ctx context.Context, conn *pgxpool.Conn) string {
	key := uint64(lockKey)
	var pid int32
	var app string
	var since time.Time
	err := conn.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.backend_start, now())
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 LIMIT 1`,
		uint32(key>>32), uint32(key)).Scan(&pid, &app, &since)
	if err != nil {
		return "held by a session not visible here"
	}
	d := fmt.Sprintf("held by Postgres pid %d, connected %s ago", pid, time.Since(since).Round(time.Second))
	if app != "" {
		d += fmt.Sprintf(" (application_name %q)", app)
	}
	return d
}

func applyThrough(ctx context.Context, pool *pgxpool.Pool, last string, opts Options) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	if err := lock(ctx, conn, opts); err != nil {
		return nil, err
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
