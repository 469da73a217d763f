package main

import (
	"bufio"
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
	"github.com/drainmeter/drainmeter/outlet"
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

  add --name NAME [outlet flags] [--prefix P] [--source-prefix S] [--process-types=false] [--url URL]
                 create a drain; prints its URL (with its secret, shown only this once) and the heroku drains:add line
  list [--all]   list drains and their outlets (never secrets, tokens or headers); --all includes removed ones
  rm ID|NAME     remove a drain: its URL stops working within a minute
  rotate-secret ID|NAME [--url URL]
                 give a drain a new secret and print its new URL; the old one stops working within a minute
  set ID|NAME [--name N] [outlet flags] [--remove-outlet KIND] [--prefix P] [--source-prefix S] [--process-types=BOOL]
                 change a drain's options and outlets; new credentials take effect on every dyno at once
  reencrypt      re-seal every outlet's credentials with the first key of DRAINMETER_KEY (after adding a new key)

outlet flags (a drain has at most one outlet of each kind; without any, its rollups are logged):
  --otlp-endpoint URL          OTLP/HTTP metrics endpoint, the full URL (…/v1/metrics, Grafana Cloud's …/otlp/v1/metrics)
  --otlp-header K=V            a request header, e.g. Authorization=Basic… (repeatable; replaces the outlet's headers)
  --otlp-temporality T         cumulative (Prometheus, Mimir, Grafana Cloud; the default) or delta (Datadog, New Relic, Honeycomb)
  --remote-write-url URL       Prometheus remote-write URL; userinfo in it is Basic auth
  --remote-write-header K=V    a request header (repeatable; replaces the outlet's headers)
  --librato-user U --librato-token T
                               Librato credentials (Librato is end-of-life)
  --remove-outlet KIND         remove the drain's otlp, remotewrite or librato outlet (set only; repeatable)

A secret value (a token, a header value, a URL with credentials) may be given as "-" to read it from
standard input (one line) or as "env:NAME" to read it from the environment variable NAME, so that it
stays out of shell history and ps.

Needs DATABASE_URL, and DRAINMETER_KEY to seal credentials. The drain URL's host comes from --url or
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

// optList is a repeatable flag.
type optList struct {
	v   []string
	set bool
}

func (o *optList) String() string     { return strings.Join(o.v, ",") }
func (o *optList) Set(s string) error { o.v, o.set = append(o.v, s), true; return nil }

// secretReader resolves secret flag values: "-" reads a line from stdin
// (once), "env:NAME" reads the environment.
type secretReader struct {
	stdin io.Reader
	used  bool
}

func (r *secretReader) resolve(flag, v string) (string, error) {
	switch {
	case v == "-":
		if r.used {
			return "", fmt.Errorf("--%s: only one value can be read from standard input", flag)
		}
		r.used = true
		line, err := bufio.NewReader(r.stdin).ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return "", fmt.Errorf("--%s: reading standard input: nothing there", flag)
		}
		return strings.TrimRight(line, "\r\n"), nil
	case strings.HasPrefix(v, "env:"):
		name := strings.TrimPrefix(v, "env:")
		val, ok := os.LookupEnv(name)
		if !ok || val == "" {
			return "", fmt.Errorf("--%s: environment variable %s is not set", flag, name)
		}
		return val, nil
	}
	return v, nil
}

// headerFlags reads repeated K=V flags; values may be secrets.
func headerFlags(flag string, l optList, sr *secretReader) ([]outlet.Header, error) {
	if !l.set {
		return nil, nil
	}
	out := []outlet.Header{}
	for _, kv := range l.v {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--%s: %q is not NAME=VALUE", flag, k)
		}
		v, err := sr.resolve(flag, v)
		if err != nil {
			return nil, err
		}
		out = append(out, outlet.Header{Name: strings.TrimSpace(k), Value: v})
	}
	return out, nil
}

func runDrains(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		if len(args) == 0 {
			fmt.Fprint(stderr, drainsUsage)
			return errUsage
		}
		fmt.Fprint(stdout, drainsUsage)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("drains "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, drainsUsage) }
	var name, user, token, prefix, sourcePrefix, baseURL, otlpURL, otlpTemp, rwURL optString
	var otlpHeaders, rwHeaders, remove optList
	var processTypes optBool
	var all bool
	switch cmd {
	case "add", "set":
		fs.Var(&name, "name", "drain name (usually the Heroku app's name)")
		fs.Var(&user, "librato-user", "Librato account email")
		fs.Var(&token, "librato-token", "Librato API token (- reads stdin, env:NAME the environment)")
		fs.Var(&otlpURL, "otlp-endpoint", "OTLP/HTTP metrics endpoint (full URL)")
		fs.Var(&otlpHeaders, "otlp-header", "OTLP request header K=V (repeatable)")
		fs.Var(&otlpTemp, "otlp-temporality", "cumulative or delta")
		fs.Var(&rwURL, "remote-write-url", "Prometheus remote-write URL")
		fs.Var(&rwHeaders, "remote-write-header", "remote-write request header K=V (repeatable)")
		fs.Var(&prefix, "prefix", "metric name prefix")
		fs.Var(&sourcePrefix, "source-prefix", "source prefix")
		fs.Var(&processTypes, "process-types", "also roll web.1, web.2 … into web (default true)")
		if cmd == "add" {
			fs.Var(&baseURL, "url", "this app's URL (default $DRAINMETER_URL)")
		} else {
			fs.Var(&remove, "remove-outlet", "remove the drain's otlp, remotewrite or librato outlet (repeatable)")
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
	spec := postgres.Spec{Name: name.ptr(), Prefix: prefix.ptr(), SourcePrefix: sourcePrefix.ptr()}
	if processTypes.set {
		spec.ProcessTypes = &processTypes.v
	}
	if cmd == "add" || cmd == "set" {
		sr := &secretReader{stdin: stdin}
		if user.set || token.set {
			if cmd == "add" && user.set != token.set {
				return errors.New("give both --librato-user and --librato-token")
			}
			tok, err := sr.resolve("librato-token", token.v)
			if err != nil {
				return err
			}
			spec.Outlets = append(spec.Outlets, postgres.OutletSpec{Kind: outlet.Librato, User: user.v, Token: tok})
		}
		if otlpURL.set || otlpHeaders.set || otlpTemp.set {
			u, err := sr.resolve("otlp-endpoint", otlpURL.v)
			if err != nil {
				return err
			}
			hs, err := headerFlags("otlp-header", otlpHeaders, sr)
			if err != nil {
				return err
			}
			spec.Outlets = append(spec.Outlets, postgres.OutletSpec{Kind: outlet.OTLP, URL: u, Headers: hs,
				Temporality: outlet.Temporality(strings.ToLower(otlpTemp.v))})
		}
		if rwURL.set || rwHeaders.set {
			u, err := sr.resolve("remote-write-url", rwURL.v)
			if err != nil {
				return err
			}
			hs, err := headerFlags("remote-write-header", rwHeaders, sr)
			if err != nil {
				return err
			}
			spec.Outlets = append(spec.Outlets, postgres.OutletSpec{Kind: outlet.RemoteWrite, URL: u, Headers: hs})
		}
		for _, k := range remove.v {
			spec.Remove = append(spec.Remove, outlet.Kind(strings.ToLower(k)))
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

	switch cmd {
	case "add":
		d, secret, err := drains.Add(ctx, spec)
		if err != nil {
			return drainErr(err, name.v)
		}
		printDrainURL(stdout, "created", d, secret, baseURL.v)
		fmt.Fprintf(stdout, "\noutlets: %s\n", outletsDesc(d.Outlets))
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
		fmt.Fprintln(tw, "ID\tNAME\tOUTLETS\tPREFIX\tSOURCE PREFIX\tPROCESS TYPES\tCREATED\tREMOVED")
		for _, d := range list {
			removed := "-"
			if d.DisabledAt != nil {
				removed = d.DisabledAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", d.ID, d.Name, outletsDesc(d.Outlets), dash(d.Prefix),
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
		if !name.set && len(spec.Outlets) == 0 && len(spec.Remove) == 0 && !prefix.set && !sourcePrefix.set && !processTypes.set {
			return errors.New("drains set: nothing to change (see drainmeter drains help)")
		}
		d, err := drains.Set(ctx, positional[0], spec)
		if err != nil {
			return drainErr(err, positional[0])
		}
		fmt.Fprintf(stdout, "drain %s (%s) updated; outlets: %s\n", d.Name, d.ID, outletsDesc(d.Outlets))
	case "reencrypt":
		n, err := drains.Reencrypt(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d outlet credentials re-sealed with the first key of DRAINMETER_KEY\n", n)
	}
	return nil
}

// outletsDesc lists outlets without credentials.
func outletsDesc(os []outlet.Outlet) string {
	if len(os) == 0 {
		return "log"
	}
	var parts []string
	for _, o := range os {
		switch o.Kind {
		case outlet.Librato:
			parts = append(parts, "librato("+o.User+")")
		case outlet.OTLP:
			t := o.Temporality
			if t == "" {
				t = outlet.Cumulative
			}
			parts = append(parts, "otlp("+outlet.RedactURL(o.URL)+", "+string(t)+")")
		default:
			parts = append(parts, string(o.Kind)+"("+outlet.RedactURL(o.URL)+")")
		}
	}
	return strings.Join(parts, " ")
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
