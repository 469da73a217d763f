package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/drainmeter/drainmeter/migrations"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
)

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

// drainsCmd is what every drains command shares: the environment (read
// once, through cliEnv) and the streams. Each command is a method in its
// own file, drains_NAME.go, with its own FlagSet.
type drainsCmd struct {
	env    cliEnv
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	drains  *postgres.Drains // the drains table, once open
	closeDB func()           // closes its connections; runDrains calls it
}

// drainsCommands are the drains commands by name.
var drainsCommands = map[string]func(*drainsCmd, context.Context, []string) error{
	"add":           (*drainsCmd).add,
	"list":          (*drainsCmd).list,
	"rm":            (*drainsCmd).rm,
	"rotate-secret": (*drainsCmd).rotateSecret,
	"set":           (*drainsCmd).set,
	"reencrypt":     (*drainsCmd).reencrypt,
}

// runDrains runs drainmeter drains COMMAND.
func runDrains(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		if len(args) == 0 {
			fmt.Fprint(stderr, drainsUsage)
			return errUsage
		}
		fmt.Fprint(stdout, drainsUsage)
		return nil
	}
	run, known := drainsCommands[args[0]]
	if !known {
		fmt.Fprintf(stderr, "drainmeter: unknown drains command %q\n\n%s", args[0], drainsUsage)
		return errUsage
	}
	c := &drainsCmd{env: readCLIEnv(getenv), stdin: stdin, stdout: stdout, stderr: stderr}
	err := run(c, ctx, args[1:])
	if c.closeDB != nil {
		c.closeDB()
	}
	if errors.Is(err, flag.ErrHelp) { // the usage went to stdout
		return nil
	}
	return err
}

// flagSet is a new FlagSet for command name: its errors go to stderr, its
// usage is printed by parse.
func (c *drainsCmd) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("drains "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {}
	return fs
}

// parse reads args into fs. Flags may come before or after the drain's id
// or name: with target, the command takes exactly one, which parse
// returns; without, none. --help prints the usage to stdout and returns
// flag.ErrHelp; a bad flag or argument prints it to stderr and returns
// errUsage.
func (c *drainsCmd) parse(fs *flag.FlagSet, usage string, args []string, target bool) (string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(c.stdout, fs, usage)
				return "", flag.ErrHelp
			}
			c.printUsage(c.stderr, fs, usage)
			return "", errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if target && len(positional) != 1 || !target && len(positional) != 0 {
		c.printUsage(c.stderr, fs, usage)
		return "", errUsage
	}
	if target {
		return positional[0], nil
	}
	return "", nil
}

// printUsage writes a command's usage, its flags and the footer to w.
func (c *drainsCmd) printUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(c.stderr)
	}
	fmt.Fprint(w, "\n"+drainsFooter)
}

// open connects to the drains table (c.drains): DATABASE_URL, sealed
// with DRAINMETER_KEY. As web does, it applies pending migrations first:
// right after Postgres is attached, this may run before any web has
// started on it.
func (c *drainsCmd) open(ctx context.Context) error {
	if err := c.env.requireDB(); err != nil {
		return err
	}
	keys, err := postgres.ParseKeyring(c.env.key)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, c.env.databaseURL)
	if err != nil {
		return err
	}
	c.closeDB = pool.Close
	applied, err := migrations.ApplyWith(ctx, pool, migrations.Options{Log: newLogger(c.stderr, "info")})
	for _, v := range applied {
		fmt.Fprintf(c.stderr, "applied migration %s\n", v)
	}
	if err != nil {
		return err
	}
	c.drains = postgres.NewDrains(pool, keys)
	return nil
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
