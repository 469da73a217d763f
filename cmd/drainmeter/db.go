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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
)

// openDB connects to DATABASE_URL and checks that it answers.
func openDB(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	return openPool(ctx, dsn, 6, nil)
}

// openPool connects a pool of at most maxConns connections with the given
// session settings.
func openPool(ctx context.Context, dsn string, maxConns int32, settings map[string]string) (*pgxpool.Pool, error) {
	if dsn == "" {
		return nil, errors.New("DATABASE_URL is not set: drains live in Postgres (heroku addons:create heroku-postgresql)")
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

const migrateUsage = `usage: drainmeter migrate

Applies pending database migrations to DATABASE_URL, under an advisory lock
(several dynos may run it at once). The Procfile's release phase runs it on
every deploy; drainmeter web also applies them when it starts. Without
DATABASE_URL there is nothing to do. A DRAINMETER_KEY that is set is checked.
`

// runMigrate applies pending migrations (the Procfile's release phase).
func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, migrateUsage)
			return nil
		}
		return fmt.Errorf("migrate takes no arguments")
	}
	// The release phase runs on config changes too: a bad key fails the
	// release there, before any dyno runs with it.
	if k := os.Getenv("DRAINMETER_KEY"); k != "" {
		if _, err := postgres.ParseKeyring(k); err != nil {
			return fmt.Errorf("config: %w", err)
		}
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

const keysUsage = `usage: drainmeter keys generate

Prints a new DRAINMETER_KEY: 32 random bytes in base64. DRAINMETER_KEY also
takes 64 hex digits, or any secret of at least 32 characters (the AES key is
then derived from it with HKDF-SHA-256), as Heroku's app.json generator makes.
`

// runKeys prints a new DRAINMETER_KEY.
func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 && isHelp(args[0]) || len(args) == 2 && args[0] == "generate" && isHelp(args[1]) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	if len(args) != 1 || args[0] != "generate" {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fmt.Fprintln(stdout, postgres.NewKey())
	return nil
}

const drainsUsage = `usage: drainmeter drains <command> [flags]

  add --name NAME [outlet flags] [--prefix P] [--source-prefix S] [--process-types=false] [route flags] [--url URL]
                 create a drain; prints its URL (with its secret, shown only this once) and the heroku drains:add line
  list [--all]   list drains and their outlets (never secrets, tokens or headers); --all includes removed ones
  rm ID|NAME     remove a drain: its URL stops working within DRAIN_CACHE_TTL
  rotate-secret ID|NAME [--overlap 1h] [--url URL]
                 give a drain a new secret and print its new URL; the old one keeps working for the overlap
  rotate-secret ID|NAME --finish
                 end the overlap now: the old secret stops working within DRAIN_CACHE_TTL
  set ID|NAME [--name N] [outlet flags] [--remove-outlet KIND] [--prefix P] [--source-prefix S] [--process-types=BOOL] [route flags]
                 change a drain's options and outlets; new credentials take effect on every dyno at once
  reencrypt      re-seal every outlet's credentials with the first key of DRAINMETER_KEY (after adding a new key)

` + outletFlagsHelp + routeFlagsHelp + drainsFooter + `
drainmeter drains COMMAND --help shows one command's flags.
`

const outletFlagsHelp = `outlet flags (a drain has at most one outlet of each kind; without any, its rollups are logged):
  --otlp-endpoint URL          what OTEL_EXPORTER_OTLP_ENDPOINT takes: a base URL gets /v1/metrics appended (Grafana
                               Cloud's …/otlp), a URL ending in /v1/metrics is used as is; the final URL is printed
  --otlp-metrics-endpoint URL  the full metrics URL, used as is (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
  --otlp-header K=V            a request header, e.g. Authorization=Basic… (repeatable; replaces the outlet's headers)
  --otlp-temporality T         cumulative (Prometheus, Mimir, Grafana Cloud; the default) or delta (Datadog, New Relic, Honeycomb)
  --otlp-percentile-gauges=BOOL
                               also send each measure's percentiles as gauges NAME.p50 … (Dynatrace keeps only a
                               histogram's count, sum, min and max)
  --otlp-max-buckets N         buckets a side of an exponential histogram (delta) before it is downscaled:
                               160 (the default, the OpenTelemetry SDK's) or up to 4096 if the receiver takes
                               them (1000 keeps scale 6, percentiles within 1 %, for 1 ms to 10 s)
  --remote-write-url URL       Prometheus remote-write URL; userinfo in it is Basic auth
  --remote-write-header K=V    a request header (repeatable; replaces the outlet's headers)
  --remote-write-histograms H  summary (quantile series; the default) or native (one Prometheus native
                               histogram per measure; Prometheus needs --enable-feature=native-histograms)
  --librato-user U --librato-token T
                               Librato credentials (Librato is end-of-life)
  --remove-outlet KIND         remove the drain's otlp, remotewrite or librato outlet (set only; repeatable)

A secret value (a token, a header value, a URL with credentials) may be given as "-" to read it from
standard input (one line) or as "env:NAME" to read it from the environment variable NAME, so that it
stays out of shell history and ps.

`

const routeFlagsHelp = `route flags (per-route latency from the router's lines: router.service, router.requests,
router.status.Nxx per route, with the route as a label, or in the Librato name):
  --routes T1,T2,…             route templates, first match wins: /users/:id (one segment), /api/* (the rest);
                               "" clears them; given alone, they turn route metrics to templates
  --route-metrics MODE         off (the default), templates (other paths count into route "other") or
                               auto (templates first, other paths with ids replaced by :id)

`

const drainsFooter = `Needs DATABASE_URL (pending migrations are applied first), and DRAINMETER_KEY to seal credentials.
Drain URLs start with --url, else DRAINMETER_URL, else, on a dyno with Heroku's dyno metadata
(heroku labs:enable runtime-dyno-metadata -a APP), https://HEROKU_APP_DEFAULT_DOMAIN_NAME.
heroku apps:info -a APP --json | jq -r .app.web_url prints an app's URL.
`

// drainsCmdUsage is each drains command's usage; its flags follow.
var drainsCmdUsage = map[string]string{
	"add": `usage: drainmeter drains add --name NAME [outlet flags] [--prefix P] [--source-prefix S] [--process-types=false] [route flags] [--url URL]

Creates a drain and prints its URL (its secret is shown only this once) and
the heroku drains:add line to run.

` + outletFlagsHelp + routeFlagsHelp,
	"list": `usage: drainmeter drains list [--all]

Lists the drains and their outlets: never secrets, tokens or headers.
`,
	"rm": `usage: drainmeter drains rm ID|NAME

Removes a drain: its URL stops working within DRAIN_CACHE_TTL; minutes
already accepted are still posted.
`,
	"rotate-secret": `usage: drainmeter drains rotate-secret ID|NAME [--overlap 1h] [--url URL]
       drainmeter drains rotate-secret ID|NAME --finish

Gives a drain a new secret and prints its new URL, which works at once on
every dyno. The old secret keeps working for the overlap (at most 168h), so
that no batch is refused while the app's drain is replaced: add the new URL
(heroku drains:add NEW -a APP), then remove the old one (heroku drains:remove
OLD -a APP). --finish ends the overlap now.
`,
	"set": `usage: drainmeter drains set ID|NAME [--name N] [outlet flags] [--remove-outlet KIND] [--prefix P] [--source-prefix S] [--process-types=BOOL] [route flags]

Changes a drain's options and outlets; new credentials take effect on every
dyno at once (route options within DRAIN_CACHE_TTL).

` + outletFlagsHelp + routeFlagsHelp,
	"reencrypt": `usage: drainmeter drains reencrypt

Re-seals every outlet's credentials with the first key of DRAINMETER_KEY
(after putting a new key first: DRAINMETER_KEY=NEW,OLD).
`,
}

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
	for i, kv := range l.v {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			// Not quoted: the value may be a secret.
			return nil, fmt.Errorf("--%s number %d is not NAME=VALUE", flag, i+1)
		}
		v, err := sr.resolve(flag, v)
		if err != nil {
			return nil, err
		}
		h, err := parseHeader(k, v)
		if err != nil {
			return nil, fmt.Errorf("--%s number %d: %w", flag, i+1, err)
		}
		out = append(out, h)
	}
	return out, nil
}

func runDrains(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		if len(args) == 0 {
			fmt.Fprint(stderr, drainsUsage)
			return errUsage
		}
		fmt.Fprint(stdout, drainsUsage)
		return nil
	}
	cmd, args := args[0], args[1:]
	usage, known := drainsCmdUsage[cmd]
	if !known {
		fmt.Fprintf(stderr, "drainmeter: unknown drains command %q\n\n%s", cmd, drainsUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("drains "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below: to stdout when asked for
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, usage)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(stderr)
		}
		fmt.Fprint(w, "\n"+drainsFooter)
	}
	var name, user, token, prefix, sourcePrefix, baseURL, otlpURL, otlpFullURL, otlpTemp, otlpMaxBuckets, rwURL, rwHists, routes, routeMetrics optString
	var otlpHeaders, rwHeaders, remove, attrs, rmAttrs optList
	var processTypes, otlpPctGauges optBool
	var all, finish bool
	var overlap time.Duration
	switch cmd {
	case "add", "set":
		fs.Var(&name, "name", "drain name (usually the Heroku app's name)")
		fs.Var(&user, "librato-user", "Librato account email")
		fs.Var(&token, "librato-token", "Librato API token (- reads stdin, env:NAME the environment)")
		fs.Var(&otlpURL, "otlp-endpoint", "OTLP/HTTP endpoint as OTEL_EXPORTER_OTLP_ENDPOINT takes it: a base URL gets /v1/metrics; one ending in /v1/metrics is used as is")
		fs.Var(&otlpFullURL, "otlp-metrics-endpoint", "OTLP/HTTP metrics URL used as is, as OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
		fs.Var(&otlpHeaders, "otlp-header", "OTLP request header K=V (repeatable)")
		fs.Var(&otlpTemp, "otlp-temporality", "cumulative or delta")
		fs.Var(&otlpPctGauges, "otlp-percentile-gauges", "also send measures' percentiles as gauges NAME.p50 …")
		fs.Var(&otlpMaxBuckets, "otlp-max-buckets", "buckets a side of an exponential histogram before it is downscaled (default 160)")
		fs.Var(&rwHists, "remote-write-histograms", "measures as summary (the default) or native histograms")
		fs.Var(&rwURL, "remote-write-url", "Prometheus remote-write URL")
		fs.Var(&rwHeaders, "remote-write-header", "remote-write request header K=V (repeatable)")
		fs.Var(&prefix, "prefix", "metric name prefix")
		fs.Var(&sourcePrefix, "source-prefix", "source prefix")
		fs.Var(&processTypes, "process-types", "also roll web.1, web.2 … into web (default true)")
		fs.Var(&routes, "routes", "route templates, comma-separated: /users/:id,/api/* (\"\" clears them)")
		fs.Var(&routeMetrics, "route-metrics", "per-route series: off, templates or auto")
		fs.Var(&attrs, "attribute", "the drain's own attribute K=V (repeatable): OTLP resource attribute, remote-write label")
		if cmd == "add" {
			fs.Var(&baseURL, "url", "this app's URL, e.g. https://my-drainmeter-1a2b3c4d5e6f.herokuapp.com (default $DRAINMETER_URL)")
		} else {
			fs.Var(&remove, "remove-outlet", "remove the drain's otlp, remotewrite or librato outlet (repeatable)")
			fs.Var(&rmAttrs, "remove-attribute", "remove the drain's attribute K (repeatable)")
		}
	case "rotate-secret":
		fs.Var(&baseURL, "url", "this app's URL (default $DRAINMETER_URL)")
		fs.DurationVar(&overlap, "overlap", time.Hour, "how long the old secret keeps working (0: within DRAIN_CACHE_TTL; at most 168h)")
		fs.BoolVar(&finish, "finish", false, "end the overlap of the last rotation now (no new secret)")
	case "list":
		fs.BoolVar(&all, "all", false, "include removed drains")
	}
	// Flags may come before or after the drain's id or name.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(stdout)
				return nil
			}
			printUsage(stderr)
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
		printUsage(stderr)
		return errUsage
	}
	conflict := false
	fs.Visit(func(f *flag.Flag) { conflict = conflict || f.Name == "overlap" || f.Name == "url" })
	if finish && conflict {
		return errors.New("rotate-secret --finish takes no --overlap or --url: it ends the last rotation's overlap")
	}
	if overlap < 0 || overlap > postgres.MaxOverlap {
		return fmt.Errorf("--overlap %s: between 0 and %s", overlap, postgres.MaxOverlap)
	}
	if os.Getenv("DATABASE_URL") == "" { // before asking for --url: without it nothing works
		_, err := openDB(ctx, "")
		return err
	}
	var base string
	if cmd == "add" || cmd == "rotate-secret" && !finish {
		var err error
		if base, err = drainBaseURL(baseURL, os.Getenv); err != nil {
			return err
		}
	}
	spec := postgres.Spec{Name: name.ptr(), Prefix: prefix.ptr(), SourcePrefix: sourcePrefix.ptr()}
	if processTypes.set {
		spec.ProcessTypes = &processTypes.v
	}
	if routes.set {
		rs, err := parse.ParseRoutes(routes.v)
		if err != nil {
			return fmt.Errorf("--routes: %w", err)
		}
		if rs == nil {
			rs = []string{}
		}
		spec.Routes = &rs
	}
	if routeMetrics.set {
		mode, err := parse.ParseRouteMode(routeMetrics.v)
		if err != nil {
			return fmt.Errorf("--route-metrics: %w", err)
		}
		spec.RouteMetrics = &mode
	}
	for _, kv := range attrs.v {
		k, v, ok := strings.Cut(kv, "=")
		a := outlet.Attribute{Key: k, Value: v}
		if !ok {
			return fmt.Errorf("--attribute %q: give KEY=VALUE", kv)
		}
		if err := outlet.CheckAttribute(a); err != nil {
			return fmt.Errorf("--attribute: %w", err)
		}
		spec.Attributes = append(spec.Attributes, a)
	}
	spec.RemoveAttributes = rmAttrs.v
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
		if otlpURL.set && otlpFullURL.set {
			return errors.New("give --otlp-endpoint (a base URL, or one ending in /v1/metrics) or --otlp-metrics-endpoint (the full URL, as is), not both")
		}
		if otlpURL.set || otlpFullURL.set || otlpHeaders.set || otlpTemp.set || otlpPctGauges.set || otlpMaxBuckets.set {
			var u string
			var err error
			if otlpFullURL.set {
				u, err = sr.resolve("otlp-metrics-endpoint", otlpFullURL.v)
			} else {
				u, err = sr.resolve("otlp-endpoint", otlpURL.v)
				if otlpURL.set && err == nil && u != "" {
					// What OTEL_EXPORTER_OTLP_ENDPOINT takes: one meaning of "endpoint".
					if full := otlpMetricsURL(u); full != strings.TrimSpace(u) {
						fmt.Fprintf(stderr, "--otlp-endpoint: a base URL: posting to %s (/v1/metrics appended)\n", outlet.RedactURL(full))
						u = full
					}
				}
			}
			if err != nil {
				return err
			}
			if u != "" {
				for _, w := range endpointWarnings(outlet.OTLP, u) {
					fmt.Fprintln(stderr, "warning:", w)
				}
			}
			hs, err := headerFlags("otlp-header", otlpHeaders, sr)
			if err != nil {
				return err
			}
			o := postgres.OutletSpec{Kind: outlet.OTLP, URL: u, Headers: hs,
				Temporality: outlet.Temporality(strings.ToLower(otlpTemp.v))}
			if otlpPctGauges.set {
				o.PercentileGauges = &otlpPctGauges.v
			}
			if otlpMaxBuckets.set {
				n, err := strconv.Atoi(strings.TrimSpace(otlpMaxBuckets.v))
				if err != nil {
					return fmt.Errorf("--otlp-max-buckets %q: a number of buckets, 2 to %d", otlpMaxBuckets.v, outlet.MaxMaxBuckets)
				}
				o.MaxBuckets = &n
			}
			spec.Outlets = append(spec.Outlets, o)
		}
		if rwURL.set || rwHeaders.set || rwHists.set {
			u, err := sr.resolve("remote-write-url", rwURL.v)
			if err != nil {
				return err
			}
			if u != "" {
				for _, w := range endpointWarnings(outlet.RemoteWrite, u) {
					fmt.Fprintln(stderr, "warning:", w)
				}
			}
			hs, err := headerFlags("remote-write-header", rwHeaders, sr)
			if err != nil {
				return err
			}
			o := postgres.OutletSpec{Kind: outlet.RemoteWrite, URL: u, Headers: hs}
			if rwHists.set {
				h, err := outlet.ParseHistograms(strings.ToLower(strings.TrimSpace(rwHists.v)))
				if err != nil {
					return fmt.Errorf("--remote-write-histograms: %w", err)
				}
				o.Histograms = &h
			}
			spec.Outlets = append(spec.Outlets, o)
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
	// As web does: right after Postgres is attached, this may run before
	// any web has started on it.
	applied, err := migrations.ApplyWith(ctx, pool, migrations.Options{Log: newLogger(stderr, "info")})
	for _, v := range applied {
		fmt.Fprintf(stderr, "applied migration %s\n", v)
	}
	if err != nil {
		return err
	}
	drains := postgres.NewDrains(pool, keys)

	switch cmd {
	case "add":
		d, secret, err := drains.Add(ctx, spec)
		if err != nil {
			return drainErr(err, name.v)
		}
		u := drainURL(base, d.ID, secret)
		fmt.Fprintf(stdout, "drain %s (%s) created.\n\n", d.Name, d.ID)
		fmt.Fprintf(stdout, "drain URL (its secret is shown only this once):\n  %s\n\n", u)
		fmt.Fprintf(stdout, "add it to the app:\n  heroku drains:add '%s' -a %s\n", u, d.Name)
		fmt.Fprintf(stdout, "\noutlets: %s\n", outletsDesc(d.Outlets))
		if d.RouteMetrics != parse.RoutesOff {
			fmt.Fprintf(stdout, "routes: %s\n", routesDesc(d))
		}
		if len(d.Attributes) > 0 {
			fmt.Fprintf(stdout, "attributes: %s\n", attributesDesc(d.Attributes))
		}
	case "rotate-secret":
		if finish {
			d, ended, err := drains.FinishRotation(ctx, positional[0])
			if err != nil {
				return drainErr(err, positional[0])
			}
			if !ended {
				fmt.Fprintf(stdout, "drain %s (%s) has no old secret in an overlap: nothing changed\n", d.Name, d.ID)
				return nil
			}
			fmt.Fprintf(stdout, "drain %s (%s): the overlap is over; its old secret stops working within DRAIN_CACHE_TTL\n", d.Name, d.ID)
			return nil
		}
		d, secret, err := drains.RotateSecret(ctx, positional[0], overlap)
		if err != nil {
			return drainErr(err, positional[0])
		}
		printRotation(stdout, d, drainURL(base, d.ID, secret))
	case "list":
		list, err := drains.List(ctx, all)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tOUTLETS\tPREFIX\tSOURCE PREFIX\tPROCESS TYPES\tROUTES\tCREATED\tREMOVED")
		for _, d := range list {
			removed := "-"
			if d.DisabledAt != nil {
				removed = d.DisabledAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", d.ID, d.Name, outletsDesc(d.Outlets), dash(d.Prefix),
				dash(d.SourcePrefix), d.ProcessTypes, routesDesc(d), d.CreatedAt.UTC().Format(time.RFC3339), removed)
		}
		return tw.Flush()
	case "rm":
		d, err := drains.Remove(ctx, positional[0])
		if err != nil {
			return drainErr(err, positional[0])
		}
		fmt.Fprintf(stdout, "drain %s (%s) removed: its URL stops working within DRAIN_CACHE_TTL\n", d.Name, d.ID)
	case "set":
		if !name.set && len(spec.Outlets) == 0 && len(spec.Remove) == 0 && !prefix.set && !sourcePrefix.set && !processTypes.set &&
			!routes.set && !routeMetrics.set && !attrs.set && !rmAttrs.set {
			return errors.New("drains set: nothing to change (see drainmeter drains set --help)")
		}
		d, err := drains.Set(ctx, positional[0], spec)
		if err != nil {
			return drainErr(err, positional[0])
		}
		fmt.Fprintf(stdout, "drain %s (%s) updated; outlets: %s; routes: %s; attributes: %s\n", d.Name, d.ID, outletsDesc(d.Outlets), routesDesc(d), attributesDesc(d.Attributes))
	case "reencrypt":
		n, err := drains.Reencrypt(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d outlet credentials re-sealed with the first key of DRAINMETER_KEY\n", n)
	}
	return nil
}

// printRotation prints the new URL and the steps that replace the app's
// drain without a refused batch.
func printRotation(w io.Writer, d *postgres.Drain, newURL string) {
	fmt.Fprintf(w, "drain %s (%s) has a new secret; it works at once.\n\n", d.Name, d.ID)
	fmt.Fprintf(w, "new drain URL (its secret is shown only this once):\n  %s\n\n", newURL)
	fmt.Fprintf(w, "replace the app's drain, the new one first:\n")
	fmt.Fprintf(w, "  heroku drains:add '%s' -a %s\n", newURL, d.Name)
	fmt.Fprintf(w, "  heroku drains:remove 'OLD-URL' -a %s    # OLD-URL: the other URL with %s that heroku drains -a %s lists\n\n", d.Name, d.ID, d.Name)
	if d.PreviousExpiresAt == nil {
		fmt.Fprintf(w, "No overlap (--overlap 0): the old URL stops working within DRAIN_CACHE_TTL; batches sent to it then are refused.\n")
		return
	}
	fmt.Fprintf(w, "The old URL keeps working until you remove it, or until the overlap ends at %s\n", d.PreviousExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "(drainmeter drains rotate-secret %s --finish ends it now). Between the two heroku commands the app's\n", d.Name)
	fmt.Fprintf(w, "logs go to both URLs and are counted twice: run them one right after the other.\n")
}

// attributesDesc lists a drain's attributes, K=V,… (- for none).
func attributesDesc(as []outlet.Attribute) string {
	if len(as) == 0 {
		return "-"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.Key + "=" + a.Value
	}
	return strings.Join(parts, ",")
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
			opts := string(t)
			if o.PercentileGauges {
				opts += ", percentile gauges"
			}
			if o.MaxBuckets > 0 && o.MaxBuckets != outlet.DefaultMaxBuckets {
				opts += ", max buckets " + strconv.Itoa(o.MaxBuckets)
			}
			parts = append(parts, "otlp("+outlet.RedactURL(o.URL)+", "+opts+")")
		case outlet.RemoteWrite:
			desc := outlet.RedactURL(o.URL)
			if o.Native() {
				desc += ", native histograms"
			}
			parts = append(parts, "remotewrite("+desc+")")
		default:
			parts = append(parts, string(o.Kind)+"("+outlet.RedactURL(o.URL)+")")
		}
	}
	return strings.Join(parts, " ")
}

// routesDesc is a drain's route options: "off", or the mode and templates.
func routesDesc(d *postgres.Drain) string {
	if d.RouteMetrics == parse.RoutesOff {
		return "off"
	}
	if len(d.Routes) == 0 {
		return d.RouteMetrics.String()
	}
	return d.RouteMetrics.String() + " " + strings.Join(d.Routes, ",")
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

// drainBaseURL is the address drain URLs start with: --url, else
// DRAINMETER_URL, else, on a dyno with Heroku's dyno metadata, the app's
// default domain. Apps created since June 2023 are named
// APP-<hex>.herokuapp.com: the app's name alone does not tell it.
func drainBaseURL(flagURL optString, getenv func(string) string) (string, error) {
	from, raw := "--url", flagURL.v
	if !flagURL.set {
		switch {
		case getenv("DRAINMETER_URL") != "":
			from, raw = "DRAINMETER_URL", getenv("DRAINMETER_URL")
		case getenv("HEROKU_APP_DEFAULT_DOMAIN_NAME") != "":
			from, raw = "HEROKU_APP_DEFAULT_DOMAIN_NAME", "https://"+getenv("HEROKU_APP_DEFAULT_DOMAIN_NAME")
		default:
			app := getenv("HEROKU_APP_NAME")
			if app == "" {
				app = "APP"
			}
			return "", fmt.Errorf("where is this app? Drain URLs need its address: pass --url https://%s-1a2b3c4d5e6f.herokuapp.com "+
				"(heroku apps:info -a %s --json | jq -r .app.web_url prints it), set DRAINMETER_URL, or let Heroku tell it to dynos: "+
				"heroku labs:enable runtime-dyno-metadata -a %s, then heroku run again", app, app, app)
		}
	}
	u, err := normalizeBaseURL(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return u, nil
}

// normalizeBaseURL reads the app's address: a URL with or without its
// scheme (https is assumed) and with or without the drain's path (…/logs,
// …/logs/, …/ are all the app), and returns it without a trailing slash.
func normalizeBaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("%q is not the app's http(s) URL", outlet.RedactURL(s))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: give the app's URL alone, without credentials, query or fragment", outlet.RedactURL(s))
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimRight(strings.TrimSuffix(p, "/logs"), "/")
	return u.Scheme + "://" + u.Host + p, nil
}

// drainURL is a drain's URL: base (normalized) + /logs, with the drain's
// credentials.
func drainURL(base, id, secret string) string {
	u, _ := url.Parse(base + "/logs") // normalized: cannot fail
	u.User = url.UserPassword(id, secret)
	return u.String()
}
