package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cliEnv is what the database commands (migrate, drains) read from the
// environment: Config's variables of the same names, taken as they are,
// without web's checks (a bad PORT does not stop drains list), and getenv
// for the rest.
type cliEnv struct {
	databaseURL string              // DATABASE_URL
	key         string              // DRAINMETER_KEY
	getenv      func(string) string // the app's address (drainBaseURL) and env:NAME secret values
}

// readCLIEnv reads the commands' variables through getenv (os.Getenv in
// the binary).
func readCLIEnv(getenv func(string) string) cliEnv {
	return cliEnv{databaseURL: getenv("DATABASE_URL"), key: getenv("DRAINMETER_KEY"), getenv: getenv}
}

// errNoDatabase is what a command that needs Postgres says without
// DATABASE_URL.
var errNoDatabase = errors.New("DATABASE_URL is not set: drains live in Postgres (heroku addons:create heroku-postgresql)")

// requireDB checks, before anything else is asked for, that DATABASE_URL
// is set: without it nothing works.
func (e cliEnv) requireDB() error {
	if e.databaseURL == "" {
		return errNoDatabase
	}
	return nil
}

// openDB connects to DATABASE_URL and checks that it answers.
func openDB(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	return openPool(ctx, dsn, 6, nil)
}

// openPool connects a pool of at most maxConns connections with the given
// session settings.
func openPool(ctx context.Context, dsn string, maxConns int32, settings map[string]string) (*pgxpool.Pool, error) {
	if dsn == "" {
		return nil, errNoDatabase
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.MaxConns = maxConns
	for k, v := range settings {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}
