package main

import (
	"context"
	"fmt"
	"io"

	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/postgres"
)

const migrateUsage = `usage: drainmeter migrate

Applies pending database migrations to DATABASE_URL, under an advisory lock
(several dynos may run it at once). The Procfile's release phase runs it on
every deploy; drainmeter web also applies them when it starts. Without
DATABASE_URL there is nothing to do. A DRAINMETER_KEY that is set is checked.
`

// runMigrate applies pending migrations (the Procfile's release phase).
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, migrateUsage)
			return nil
		}
		return fmt.Errorf("migrate takes no arguments")
	}
	env := readCLIEnv(getenv)
	// The release phase runs on config changes too: a bad key fails the
	// release there, before any dyno runs with it.
	if env.key != "" {
		if _, err := postgres.ParseKeyring(env.key); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if env.databaseURL == "" {
		// The release phase runs this on every deploy, with or without a database.
		fmt.Fprintln(stdout, "DATABASE_URL is not set: nothing to migrate (drainmeter runs in memory)")
		return nil
	}
	pool, err := openDB(ctx, env.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := migrations.ApplyWith(ctx, pool, migrations.Options{Log: newLogger(stdout, "info")})
	for _, v := range applied {
		fmt.Fprintf(stdout, "applied %s\n", v)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	return nil
}
