package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/postgres"
)

// openDB connects to DATABASE_URL and checks that it answers.
func openDB(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	if dsn == "" {
		return nil, errors.New("DATABASE_URL is not set: drains live in Postgres (heroku addons:create heroku-postgresql)")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.MaxConns = 8
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

// runMigrate applies pending migrations (the Procfile's release phase).
func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("migrate takes no arguments")
	}
	if os.Getenv("DATABASE_URL") == "" {
		// The release phase runs this on every deploy, with or without a database.
		fmt.Fprintln(stdout, "DATABASE_URL is not set: nothing to migrate (drainmeter runs in memory)")
		return nil
	}
	pool, err := openDB(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := migrations.Apply(ctx, pool)
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

// runKeys prints a new DRAINMETER_KEY.
func runKeys(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "generate" {
		return errors.New("usage: drainmeter keys generate")
	}
	fmt.Fprintln(stdout, postgres.NewKey())
	return nil
}

const drainsUsage = `usage: drainmeter drains <command> [flags]

  add --name NAME [--librato-user U --librato-token T] [--prefix P] [--source-prefix S] [--process-types=false] [--url URL]
                 create a drain; prints its URL (with its secret, shown only this once) and the heroku drains:add line
  list [--all]   list drains (never secrets or tokens); --all includes removed ones
  rm ID|NAME     remove a drain: its URL stops working within a minute
  rotate-secret ID|NAME [--url URL]
                 give a drain a new secret and print its new URL; the old one stops working within a minute
  set ID|NAME [--name N] [--librato-user U] [--librato-token T] [--prefix P] [--source-prefix S] [--process-types=BOOL]
                 change a drain's options
  reencrypt      re-seal every Librato token with the first key of DRAINMETER_KEY (after adding a new key)

Needs DATABASE_URL, and DRAINMETER_KEY for Librato tokens. The drain URL's host comes from --url or
DRAINMETER_URL (e.g. https://my-drainmeter.herokuapp.com).
`

// optString is a flag that records whether it was set.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }
func (o *optString) ptr() *string {
	if !o.set {
		return nil
	}
	return &o.v
}

type optBool struct {
	v   bool
	set bool
}

func (o *optBool) String() string { return fmt.Sprint(o.v) }
func (o *optBool) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		o.v = true
	case "false", "0", "no", "off":
		o.v = false
	default:
		return fmt.Errorf("%q is not true or false", s)
	}
	o.set = true
	return nil
}
func (o *optBool) IsBoolFlag() bool { return true }

func runDrains(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(stderr, drainsUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("drains "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, drainsUsage) }
	var name, user, token, prefix, sourcePrefix, baseURL optString
	var processTypes optBool
	var all bool
	switch cmd {
	case "add", "set":
		fs.Var(&name, "name", "drain name (usually the Heroku app's name)")
		fs.Var(&user, "librato-user", "Librato account email")
		fs.Var(&token, "librato-token", "Librato API token")
		fs.Var(&prefix, "prefix", "metric name prefix")
		fs.Var(&sourcePrefix, "source-prefix", "source prefix")
		fs.Var(&processTypes, "process-types", "also roll web.1, web.2 … into web (default true)")
		if cmd == "add" {
			fs.Var(&baseURL, "url", "this app's URL (default $DRAINMETER_URL)")
		}
	case "rotate-secret":
		fs.Var(&baseURL, "url", "this app's URL (default $DRAINMETER_URL)")
	case "list":
		fs.BoolVar(&all, "all", false, "include removed drains")
	case "rm", "reencrypt":
	default:
		fmt.Fprintf(stderr, "drainmeter: unknown drains command %q\n\n%s", cmd, drainsUsage)
		return errUsage
	}
	// Flags may come before or after the drain's id or name.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	needTarget := cmd == "rm" || cmd == "rotate-secret" || cmd == "set"
	if needTarget && len(positional) != 1 || !needTarget && len(positional) != 0 {
		fmt.Fprint(stderr, drainsUsage)
		return errUsage
	}
	if !baseURL.set {
		baseURL.v = os.Getenv("DRAINMETER_URL")
		if baseURL.v == "" && os.Getenv("HEROKU_APP_NAME") != "" {
			baseURL.v = "https://" + os.Getenv("HEROKU_APP_NAME") + ".herokuapp.com"
		}
	}
	if cmd == "add" || cmd == "rotate-secret" {
		if err := checkBaseURL(baseURL.v); err != nil {
			return err
		}
	}

	keys, err := postgres.ParseKeyring(os.Getenv("DRAINMETER_KEY"))
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	if pending, err := migrations.Pending(ctx, pool); err != nil {
		return err
	} else if len(pending) > 0 {
		return fmt.Errorf("the database needs migrations %s: run drainmeter migrate", strings.Join(pending, ", "))
	}
	drains := postgres.NewDrains(pool, keys)
	spec := postgres.Spec{Name: name.ptr(), LibratoUser: user.ptr(), LibratoToken: token.ptr(),
		Prefix: prefix.ptr(), SourcePrefix: sourcePrefix.ptr()}
	if processTypes.set {
		spec.ProcessTypes = &processTypes.v
	}

	switch cmd {
	case "add":
		if user.set != token.set {
			return errors.New("give both --librato-user and --librato-token, or neither (the drain's rollups are then logged)")
		}
		d, secret, err := drains.Add(ctx, spec)
		if err != nil {
			return drainErr(err, name.v)
		}
		printDrainURL(stdout, "created", d, secret, baseURL.v)
	case "rotate-secret":
		d, secret, err := drains.RotateSecret(ctx, positional[0])
		if err != nil {
			return drainErr(err, positional[0])
		}
		printDrainURL(stdout, "has a new secret", d, secret, baseURL.v)
		fmt.Fprintln(stdout, "The old URL stops working within a minute: replace the drain on the app (heroku drains:remove OLD-URL, then the line above).")
	case "list":
		list, err := drains.List(ctx, all)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tLIBRATO USER\tPREFIX\tSOURCE PREFIX\tPROCESS TYPES\tCREATED\tREMOVED")
		for _, d := range list {
			removed := "-"
			if d.DisabledAt != nil {
				removed = d.DisabledAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", d.ID, d.Name, dash(d.LibratoUser), dash(d.Prefix),
				dash(d.SourcePrefix), d.ProcessTypes, d.CreatedAt.UTC().Format(time.RFC3339), removed)
		}
		return tw.Flush()
	case "rm":
		d, err := drains.Remove(ctx, positional[0])
		if err != nil {
			return drainErr(err, positional[0])
		}
		fmt.Fprintf(stdout, "drain %s (%s) removed: its URL stops working within a minute\n", d.Name, d.ID)
	case "set":
		if !name.set && !user.set && !token.set && !prefix.set && !sourcePrefix.set && !processTypes.set {
			return errors.New("drains set: nothing to change (see drainmeter drains help)")
		}
		d, err := drains.Set(ctx, positional[0], spec)
		if err != nil {
			return drainErr(err, positional[0])
		}
		fmt.Fprintf(stdout, "drain %s (%s) updated\n", d.Name, d.ID)
	case "reencrypt":
		n, err := drains.Reencrypt(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d tokens re-sealed with the first key of DRAINMETER_KEY\n", n)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func drainErr(err error, which string) error {
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		return fmt.Errorf("no drain %q (drainmeter drains list shows them)", which)
	case errors.Is(err, postgres.ErrNameUsed):
		return fmt.Errorf("a drain named %q exists already", which)
	}
	return err
}

func checkBaseURL(s string) error {
	if s == "" {
		return errors.New("where is this app? pass --url https://my-drainmeter.herokuapp.com or set DRAINMETER_URL")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--url %q is not an http(s) URL", s)
	}
	return nil
}

func printDrainURL(w io.Writer, what string, d *postgres.Drain, secret, base string) {
	u, _ := url.Parse(base) // checked by checkBaseURL
	u.User = url.UserPassword(d.ID, secret)
	u.Path = strings.TrimRight(u.Path, "/") + "/logs"
	fmt.Fprintf(w, "drain %s (%s) %s.\n\n", d.Name, d.ID, what)
	fmt.Fprintf(w, "drain URL (its secret is shown only this once):\n  %s\n\n", u)
	fmt.Fprintf(w, "add it to the app:\n  heroku drains:add '%s' -a %s\n", u, d.Name)
}
