package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
)

// Config is every setting, read from environment variables (Heroku config
// vars). The defaults are in the tags, and each field's desc tag says what
// it means: `drainmeter web --help` prints them (configHelp), and a test
// holds the README's table to that.
type Config struct {
	Port              int           `envconfig:"PORT" default:"5000" desc:"HTTP port (Heroku sets it)"`
	DrainSecret       string        `envconfig:"DRAIN_SECRET" desc:"password of the built-in drain's URL; required on Heroku without DATABASE_URL"`
	AdminPassword     string        `envconfig:"ADMIN_PASSWORD" desc:"password of the status page (GET /)"`
	MaxBodyBytes      int64         `envconfig:"MAX_BODY_BYTES" default:"1048576" desc:"larger request bodies get 413 (logplex sends ~100 KiB)"`
	Grace             time.Duration `envconfig:"GRACE" default:"90s" desc:"how long after its end a minute stays open for late lines"`
	MaxSeriesPerDrain int           `envconfig:"MAX_SERIES_PER_DRAIN" default:"20000" desc:"open series per drain and minute; more are refused and counted (overflow)"`
	Prefix            string        `envconfig:"PREFIX" desc:"metric name prefix of the built-in drain"`
	SourcePrefix      string        `envconfig:"SOURCE_PREFIX" desc:"source prefix of the built-in drain"`
	ProcessTypes      bool          `envconfig:"PROCESS_TYPE_ROLLUPS" default:"true" desc:"also roll web.1, web.2 … into web (built-in drain)"`
	RouteMetrics      string        `envconfig:"ROUTE_METRICS" default:"off" desc:"per-route latency from router lines (built-in drain): off, templates (other paths: route other) or auto (ids normalized)"`
	Routes            string        `envconfig:"ROUTES" desc:"route templates of the built-in drain, comma-separated, first match wins: /users/:id,/api/*"`
	MaxRoutesPerDrain int           `envconfig:"MAX_ROUTES_PER_DRAIN" default:"200" desc:"distinct routes per drain and minute; further ones count into route other (overflow)"`
	Percentiles       string        `envconfig:"PERCENTILES" default:"50,95,99" desc:"percentiles posted for measures"`

	AppName            string        `envconfig:"APP_NAME" desc:"one name (service.name, job) for every app of the built-in drain; unset: each app is its own"`
	OTELServiceName    string        `envconfig:"OTEL_SERVICE_NAME" desc:"the same as APP_NAME (the OpenTelemetry SDK's name for it)"`
	ResourceAttributes string        `envconfig:"OTEL_RESOURCE_ATTRIBUTES" desc:"the built-in drain's attributes, k1=v1,k2=v2 (percent-encoded): OTLP resource attributes, labels"`
	CounterHold        time.Duration `envconfig:"COUNTER_HOLD" default:"1h" desc:"how long a counter keeps being sent with its running total after it last moved (0 to 24h; 0: off)"`

	LibratoURL   string `envconfig:"LIBRATO_URL" default:"https://metrics-api.librato.com" desc:"Librato-compatible API base URL"`
	LibratoUser  string `envconfig:"LIBRATO_USER" desc:"Librato user: with LIBRATO_TOKEN, the built-in drain posts to Librato"`
	LibratoToken string `envconfig:"LIBRATO_TOKEN" desc:"Librato API token"`

	OTLPMetricsEndpoint string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" desc:"OTLP/HTTP metrics endpoint, the full URL (wins over OTEL_EXPORTER_OTLP_ENDPOINT)"`
	OTLPEndpoint        string `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT" desc:"OTLP/HTTP endpoint: a base URL gets /v1/metrics, one ending in /v1/metrics is used as is"`
	OTLPHeaders         string `envconfig:"OTEL_EXPORTER_OTLP_HEADERS" desc:"OTLP request headers: k1=v1,k2=v2, values percent-encoded"`
	OTLPMetricsHeaders  string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_HEADERS" desc:"more OTLP headers, replacing those of the same name"`
	OTLPTemporality     string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE" default:"cumulative" desc:"cumulative or delta"`
	OTLPProtocol        string `envconfig:"OTEL_EXPORTER_OTLP_PROTOCOL" desc:"http/protobuf, the only one drainmeter speaks (grpc and http/json are refused)"`
	OTLPMetricsProtocol string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" desc:"the same, for metrics (wins over OTEL_EXPORTER_OTLP_PROTOCOL)"`
	OTLPPercentiles     bool   `envconfig:"OTLP_PERCENTILE_GAUGES" default:"false" desc:"also send each measure's PERCENTILES as gauges NAME.p50 … (Dynatrace)"`
	OTLPMaxBuckets      int    `envconfig:"OTLP_MAX_BUCKETS" default:"160" desc:"buckets a side of an OTLP exponential histogram before it is downscaled (2 to 4096; 1000 keeps scale 6)"`

	RemoteWriteURL     string `envconfig:"REMOTE_WRITE_URL" desc:"Prometheus remote-write URL (userinfo: Basic auth): the built-in drain posts there"`
	RemoteWriteHeaders string `envconfig:"REMOTE_WRITE_HEADERS" desc:"remote-write request headers: k1=v1,k2=v2, values percent-encoded"`
	RemoteWriteHists   string `envconfig:"REMOTE_WRITE_HISTOGRAMS" default:"summary" desc:"measures over remote write: summary (quantile series) or native (Prometheus native histograms)"`

	OutletWorkers    int           `envconfig:"OUTLET_WORKERS" default:"4" desc:"concurrent posts to the outlets"`
	OutletTimeout    time.Duration `envconfig:"OUTLET_TIMEOUT" default:"30s" desc:"per outlet request, at most 40s (see How each outlet treats answers)"`
	OutletMaxPending time.Duration `envconfig:"OUTLET_MAX_PENDING" default:"1h" desc:"unposted minutes older than this are dropped and counted"`
	OutletMaxBackoff time.Duration `envconfig:"OUTLET_MAX_BACKOFF" default:"2m" desc:"the longest wait between retries of a failed post"`

	DatabaseURL   string        `envconfig:"DATABASE_URL" desc:"Postgres (Heroku sets it): drains table, shared dedup, durable rollups"`
	DrainmeterKey string        `envconfig:"DRAINMETER_KEY" desc:"required with DATABASE_URL: seals outlet credentials; comma-separated keys, the first seals"`
	DrainmeterURL string        `envconfig:"DRAINMETER_URL" desc:"this app's URL, for the drain URLs that drains add prints"`
	DrainCacheTTL time.Duration `envconfig:"DRAIN_CACHE_TTL" default:"30s" desc:"how long a drain's settings are cached (at most 1m)"`

	PartialFlushInterval time.Duration `envconfig:"PARTIAL_FLUSH_INTERVAL" default:"10s" desc:"with Postgres: how often open minutes are written (what kill -9 can lose)"`
	WriterTimeout        time.Duration `envconfig:"WRITER_TIMEOUT" default:"60s" desc:"with Postgres: a dyno silent this long holds no minute back"`
	RollupRetention      time.Duration `envconfig:"ROLLUP_RETENTION" default:"24h" desc:"with Postgres: how long posted minutes are remembered (to count late partials)"`
	PartialBufferBytes   int           `envconfig:"PARTIAL_BUFFER_BYTES" default:"67108864" desc:"with Postgres: partials held in memory while it is unreachable"`

	StatusRetention time.Duration `envconfig:"STATUS_RETENTION" default:"24h" desc:"how long the status page's per-minute counters are kept (1h to 744h)"`
	SelfMetrics     bool          `envconfig:"SELF_METRICS" default:"true" desc:"post drainmeter's own per-drain counters (drainmeter.*) through each drain's outlets"`

	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s" desc:"the whole SIGTERM sequence, at most 29s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	Dyno            string        `envconfig:"DYNO" desc:"the dyno's name (Heroku sets it)"`
	HerokuAppName   string        `envconfig:"HEROKU_APP_NAME" desc:"this app's name (Heroku sets it with runtime-dyno-metadata)"`

	// Memory and connections (internal/budget, internal/connlimit).
	MemoryBudget    int64  `envconfig:"MEMORY_BUDGET" desc:"bytes drainmeter may use, split into shares (README: Limits); unset: 75 % of the dyno's memory"`
	MaxConnections  int    `envconfig:"MAX_CONNECTIONS" desc:"open connections at most (below the open-file limit); unset: from the budget"`
	MemoryAvailable string `envconfig:"MEMORY_AVAILABLE" desc:"the dyno's memory in MB (Heroku sets it); read when there is no cgroup limit"`
	GoMemLimit      string `envconfig:"GOMEMLIMIT" desc:"the Go runtime's memory limit; unset: MEMORY_BUDGET"`

	percentiles []float64
	routeMode   parse.RouteMode    // ROUTE_METRICS
	routes      []string           // ROUTES
	attributes  []outlet.Attribute // OTEL_RESOURCE_ATTRIBUTES
	outlets     []outlet.Outlet    // the built-in drain's, from the config vars above; none: the log outlet
	keys        *postgres.Keyring  // DRAINMETER_KEY
	warnings    []string           // logged at start: typos, ignored variables, URLs that would 404
	set         map[string]bool    // the variables set in the environment (not their defaults)
}

// loadConfig reads the environment: getenv, and environ ("K=V", as
// os.Environ) for the variables set, those set to "" included (an error
// for a number, say) and those it does not read (envWarnings). It reports
// every problem at once, one line per variable, and never prints a secret.
func loadConfig(getenv func(string) string, environ []string) (Config, error) {
	var c Config
	p := &problems{bad: map[string]bool{}}
	lookup := lookupIn(getenv, environ)
	c.set = map[string]bool{}
	// Every variable is read, so that every bad value is reported.
	v := reflect.ValueOf(&c).Elem()
	for _, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		if _, ok := lookup(name); ok {
			c.set[name] = true
		}
		if err := readVar(f, v.FieldByIndex(f.Index), lookup); err != nil {
			var pe *envconfig.ParseError
			if errors.As(err, &pe) {
				p.add(pe.KeyName, "%s=%q is not a valid %s", pe.KeyName, pe.Value, typeName(pe.TypeName))
			} else {
				p.add(name, "%s: %v", name, err)
			}
			p.bad[name] = true
		}
	}
	c.validate(p)
	c.warnings = append(envWarnings(environ), c.warnings...)
	return c, p.err()
}

// problems collects what is wrong with the config, one line per variable.
type problems struct {
	lines []string
	bad   map[string]bool // variables already reported: not checked again
}

// add reports a problem with the variable name, unless it has one already.
func (p *problems) add(name, format string, args ...any) {
	if p.bad[name] {
		return
	}
	p.bad[name] = true
	p.lines = append(p.lines, fmt.Sprintf(format, args...))
}

// ok reports whether none of the variables has a problem yet.
func (p *problems) ok(names ...string) bool {
	for _, n := range names {
		if p.bad[n] {
			return false
		}
	}
	return true
}

func (p *problems) err() error {
	switch len(p.lines) {
	case 0:
		return nil
	case 1:
		return errors.New("config: " + p.lines[0])
	}
	return fmt.Errorf("config: %d problems:\n  %s", len(p.lines), strings.Join(p.lines, "\n  "))
}

func typeName(t string) string {
	switch t {
	case "int", "int64":
		return "whole number"
	case "bool":
		return "boolean (true or false)"
	case "Duration", "time.Duration":
		return "duration (like 90s or 5m)"
	}
	return t
}

// validate checks the values read, reporting to p; variables that could not
// be read are not checked again.
func (c *Config) validate(p *problems) {
	check := func(bad bool, name, format string, args ...any) {
		if bad && p.ok(name) {
			p.add(name, format, args...)
		}
	}
	check(c.Port < 0 || c.Port > 65535, "PORT", "PORT=%d is not a TCP port", c.Port)
	check(c.MaxBodyBytes < 1024, "MAX_BODY_BYTES", "MAX_BODY_BYTES=%d is too small (at least 1024)", c.MaxBodyBytes)
	check(c.Grace < 0, "GRACE", "GRACE=%s must not be negative", c.Grace)
	check(c.MaxSeriesPerDrain < 1, "MAX_SERIES_PER_DRAIN", "MAX_SERIES_PER_DRAIN=%d must be at least 1", c.MaxSeriesPerDrain)
	check(c.MaxRoutesPerDrain < 1, "MAX_ROUTES_PER_DRAIN", "MAX_ROUTES_PER_DRAIN=%d must be at least 1", c.MaxRoutesPerDrain)
	if mode, err := parse.ParseRouteMode(c.RouteMetrics); err != nil {
		check(true, "ROUTE_METRICS", "ROUTE_METRICS=%q is not off, templates or auto", c.RouteMetrics)
	} else {
		c.routeMode = mode
	}
	if routes, err := parse.ParseRoutes(c.Routes); err != nil {
		check(true, "ROUTES", "ROUTES: %v", err)
	} else {
		c.routes = routes
	}
	if p.ok("ROUTES", "ROUTE_METRICS") {
		err := parse.CheckRoutes(c.routeMode, c.routes)
		check(errors.Is(err, parse.ErrRoutesOff), "ROUTES",
			"ROUTES is set but ROUTE_METRICS is off: set ROUTE_METRICS=templates (or auto) to get per-route series")
		check(errors.Is(err, parse.ErrNoRouteTemplates), "ROUTES",
			"ROUTE_METRICS=templates needs ROUTES (comma-separated templates such as /users/:id,/api/*), or use auto")
	}
	check(c.OutletWorkers < 1, "OUTLET_WORKERS", "OUTLET_WORKERS=%d must be at least 1", c.OutletWorkers)
	// A durable lane's lease is a minute; a worker sends only while it holds
	// the lease for at least the timeout and 5 s more (and renews it every 15 s).
	check(c.OutletTimeout <= 0 || c.OutletTimeout > 40*time.Second, "OUTLET_TIMEOUT",
		"OUTLET_TIMEOUT=%s must be positive and at most 40s", c.OutletTimeout)
	check(c.OutletMaxBackoff < time.Second, "OUTLET_MAX_BACKOFF", "OUTLET_MAX_BACKOFF=%s must be at least 1s", c.OutletMaxBackoff)
	check(c.OutletMaxPending <= 0, "OUTLET_MAX_PENDING", "OUTLET_MAX_PENDING=%s must be positive", c.OutletMaxPending)
	check(c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 29*time.Second, "SHUTDOWN_TIMEOUT",
		"SHUTDOWN_TIMEOUT=%s must be between 0 and 29s (Heroku kills at 30s)", c.ShutdownTimeout)
	check((c.LibratoUser == "") != (c.LibratoToken == ""), "LIBRATO_USER",
		"set both LIBRATO_USER and LIBRATO_TOKEN, or neither (rollups are then logged)")
	if u, err := url.Parse(c.LibratoURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		check(true, "LIBRATO_URL", "LIBRATO_URL=%q is not an http(s) URL", outlet.RedactURL(c.LibratoURL))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		check(true, "LOG_LEVEL", "LOG_LEVEL=%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if pcts, err := parsePercentiles(c.Percentiles); err != nil {
		check(true, "PERCENTILES", "PERCENTILES=%q: %v", c.Percentiles, err)
	} else {
		c.percentiles = pcts
	}
	check(c.DrainCacheTTL <= 0 || c.DrainCacheTTL > time.Minute, "DRAIN_CACHE_TTL",
		"DRAIN_CACHE_TTL=%s must be between 0 and 1m (removed drains must stop within a minute)", c.DrainCacheTTL)
	check(c.PartialFlushInterval < time.Second, "PARTIAL_FLUSH_INTERVAL", "PARTIAL_FLUSH_INTERVAL=%s must be at least 1s", c.PartialFlushInterval)
	check(c.WriterTimeout < 5*time.Second, "WRITER_TIMEOUT", "WRITER_TIMEOUT=%s must be at least 5s", c.WriterTimeout)
	if p.ok("OUTLET_MAX_PENDING") {
		check(c.RollupRetention < c.OutletMaxPending, "ROLLUP_RETENTION",
			"ROLLUP_RETENTION=%s must be at least OUTLET_MAX_PENDING (%s)", c.RollupRetention, c.OutletMaxPending)
	}
	check(c.StatusRetention < time.Hour || c.StatusRetention > 31*24*time.Hour, "STATUS_RETENTION",
		"STATUS_RETENTION=%s must be between 1h and 744h", c.StatusRetention)
	check(c.PartialBufferBytes < 1<<20, "PARTIAL_BUFFER_BYTES", "PARTIAL_BUFFER_BYTES=%d is too small (at least 1048576)", c.PartialBufferBytes)
	c.outlets = c.builtinOutlets(p)
	c.checkIdentity(check)
	check(c.CounterHold < 0 || c.CounterHold > 24*time.Hour, "COUNTER_HOLD", "COUNTER_HOLD=%s must be between 0 and 24h", c.CounterHold)
	// The key is checked whenever it is set, with or without a database:
	// a bad one shows at the first deploy, not when Postgres is attached.
	if c.DrainmeterKey != "" {
		keys, err := postgres.ParseKeyring(c.DrainmeterKey)
		if err != nil {
			check(true, "DRAINMETER_KEY", "%v", err) // names the variable, never the key
		} else {
			c.keys = keys
		}
	}
	check(c.MemoryBudget != 0 && c.MemoryBudget < budget.MinTotal, "MEMORY_BUDGET",
		"MEMORY_BUDGET=%d is too small (at least %d bytes)", c.MemoryBudget, budget.MinTotal)
	check(c.MaxConnections < 0, "MAX_CONNECTIONS", "MAX_CONNECTIONS=%d must not be negative", c.MaxConnections)
	check(c.DatabaseURL != "" && c.DrainmeterKey == "", "DRAINMETER_KEY",
		"DRAINMETER_KEY is not set: with DATABASE_URL it seals the drains' outlet credentials (drainmeter keys generate)")
	check(c.Dyno != "" && c.DrainSecret == "" && c.DatabaseURL == "", "DRAIN_SECRET",
		"DRAIN_SECRET is not set: on Heroku the drain would accept anyone's logs (heroku config:set DRAIN_SECRET=$(openssl rand -hex 24))")
}

// checkIdentity reads the built-in drain's name and attributes:
// OTEL_SERVICE_NAME is APP_NAME's alias (both set, they must agree);
// OTEL_RESOURCE_ATTRIBUTES is read as the OpenTelemetry SDK reads it, its
// service.name the name when neither is set. Every attribute is checked.
func (c *Config) checkIdentity(check func(bad bool, name, format string, args ...any)) {
	check(c.AppName != "" && c.OTELServiceName != "" && c.AppName != c.OTELServiceName, "OTEL_SERVICE_NAME",
		"APP_NAME=%q and OTEL_SERVICE_NAME=%q differ: set one of them", c.AppName, c.OTELServiceName)
	if c.AppName == "" {
		c.AppName = c.OTELServiceName
	}
	check(len(c.AppName) > 255 || !utf8.ValidString(c.AppName), "APP_NAME", "APP_NAME: at most 255 bytes of UTF-8")
	attrs, err := outlet.ParseResourceAttributes(c.ResourceAttributes)
	if err != nil {
		check(true, "OTEL_RESOURCE_ATTRIBUTES", "OTEL_RESOURCE_ATTRIBUTES: %v", err)
		return
	}
	var own []outlet.Attribute
	for _, a := range attrs {
		if a.Key == "service.name" { // the SDK's rule: OTEL_SERVICE_NAME wins
			if c.AppName == "" {
				c.AppName = a.Value
			}
			continue
		}
		own = append(own, a)
	}
	if err := outlet.CheckAttributes(own); err != nil {
		check(true, "OTEL_RESOURCE_ATTRIBUTES", "OTEL_RESOURCE_ATTRIBUTES: %v", err)
		return
	}
	c.attributes = own
}

// configHelp is `drainmeter web --help`: every config var with its default
// and meaning, from Config's tags.
func configHelp() string {
	var b strings.Builder
	b.WriteString(webUsage)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range configVars() {
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Desc)
	}
	_ = tw.Flush()
	return b.String()
}

const webUsage = `usage: drainmeter web

Serves the log drain (POST /logs) and GET /health on PORT. It takes no
arguments: every setting is an environment variable (a Heroku config var).
With DATABASE_URL it applies pending database migrations before it starts.

`

// configVar is one environment variable of Config.
type configVar struct {
	Name, Default, Desc string
}

// configVars lists Config's variables in the struct's order.
func configVars() []configVar {
	var out []configVar
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if name := f.Tag.Get("envconfig"); name != "" {
			out = append(out, configVar{Name: name, Default: f.Tag.Get("default"), Desc: f.Tag.Get("desc")})
		}
	}
	return out
}

// parsePercentiles reads "50,95,99".
func parsePercentiles(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.ParseFloat(f, 64)
		if err != nil || !(p > 0 && p <= 100) {
			return nil, fmt.Errorf("%q is not a percentile in (0, 100]", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// builtinOutlets reads the built-in drain's outlets from the config vars,
// reporting to p. Problems name the variable and never print a secret.
func (c *Config) builtinOutlets(p *problems) []outlet.Outlet {
	var out []outlet.Outlet
	if c.LibratoUser != "" && c.LibratoToken != "" {
		out = append(out, outlet.Outlet{Kind: outlet.Librato, URL: c.LibratoURL, User: c.LibratoUser, Token: c.LibratoToken})
	}
	var temp outlet.Temporality
	switch strings.ToLower(strings.TrimSpace(c.OTLPTemporality)) {
	case "", "cumulative":
		temp = outlet.Cumulative
	case "delta", "lowmemory": // lowmemory is delta for counters and histograms: all drainmeter sends
		temp = outlet.Delta
	default:
		p.add("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
			"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=%q is not cumulative or delta", c.OTLPTemporality)
	}
	endpoint := strings.TrimSpace(c.OTLPMetricsEndpoint)
	if endpoint == "" && c.OTLPEndpoint != "" {
		// The OTel spec: the base URL, with v1/metrics appended; a URL
		// that has it already is taken as it is (drains add does the same).
		endpoint = otlpMetricsURL(c.OTLPEndpoint)
	}
	if endpoint != "" {
		name := "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
		if c.OTLPMetricsEndpoint == "" {
			name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
		good := true
		// The OTel spec: the signal's own variable wins over the generic one.
		protoVar, proto := "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", c.OTLPMetricsProtocol
		if strings.TrimSpace(proto) == "" {
			protoVar, proto = "OTEL_EXPORTER_OTLP_PROTOCOL", c.OTLPProtocol
		}
		if pr := strings.ToLower(strings.TrimSpace(proto)); pr != "" && pr != "http/protobuf" {
			p.add(protoVar, "%s=%q: drainmeter sends OTLP/HTTP with protobuf (http/protobuf): use your vendor's OTLP/HTTP endpoint "+
				"(often port 4318; 4317 is gRPC) and set it to http/protobuf or unset it", protoVar, proto)
			good = false
		}
		if err := outlet.CheckEndpoint(endpoint); err != nil {
			p.add(name, "%s: %v", name, err)
			good = false
		}
		headers, err := parseHeaders(c.OTLPHeaders)
		if err != nil {
			p.add("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS: %v", err)
			good = false
		}
		specific, err := parseHeaders(c.OTLPMetricsHeaders)
		if err != nil {
			p.add("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS: %v", err)
			good = false
		}
		headers = mergeHeaders(headers, specific)
		if err := outlet.CheckMaxBuckets(c.OTLPMaxBuckets); err != nil {
			p.add("OTLP_MAX_BUCKETS", "OTLP_MAX_BUCKETS: %v", err)
			good = false
		}
		if good && temp != "" {
			for _, w := range endpointWarnings(outlet.OTLP, endpoint) {
				c.warnings = append(c.warnings, name+": "+w)
			}
			out = append(out, outlet.Outlet{Kind: outlet.OTLP, URL: endpoint, Headers: headers, Temporality: temp,
				PercentileGauges: c.OTLPPercentiles, MaxBuckets: c.OTLPMaxBuckets})
		}
	} else if c.OTLPHeaders != "" || c.OTLPMetricsHeaders != "" {
		p.add("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS is set but no endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)")
	}
	if c.RemoteWriteURL != "" {
		good := true
		if err := outlet.CheckEndpoint(c.RemoteWriteURL); err != nil {
			p.add("REMOTE_WRITE_URL", "REMOTE_WRITE_URL: %v", err)
			good = false
		}
		headers, err := parseHeaders(c.RemoteWriteHeaders)
		if err != nil {
			p.add("REMOTE_WRITE_HEADERS", "REMOTE_WRITE_HEADERS: %v", err)
			good = false
		}
		hists, err := outlet.ParseHistograms(c.RemoteWriteHists)
		if err != nil {
			p.add("REMOTE_WRITE_HISTOGRAMS", "REMOTE_WRITE_HISTOGRAMS: %v", err)
			good = false
		}
		if good {
			for _, w := range endpointWarnings(outlet.RemoteWrite, c.RemoteWriteURL) {
				c.warnings = append(c.warnings, "REMOTE_WRITE_URL: "+w)
			}
			out = append(out, outlet.Outlet{Kind: outlet.RemoteWrite, URL: c.RemoteWriteURL, Headers: headers, Histograms: hists})
		}
	} else if c.RemoteWriteHeaders != "" {
		p.add("REMOTE_WRITE_HEADERS", "REMOTE_WRITE_HEADERS is set but REMOTE_WRITE_URL is not")
	}
	return out
}

// parseHeaders reads the OTel SDK's header list: "k1=v1,k2=v2", values
// percent-decoded (so that "Authorization=Basic%20abc" works as pasted
// from Grafana Cloud). Errors never quote a value.
func parseHeaders(s string) ([]outlet.Header, error) {
	var out []outlet.Header
	for i, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := cutHeader(pair)
		if !ok {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		h, err := parseHeader(k, v)
		if errors.Is(err, errNotHeaderName) {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		} else if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// cutHeader splits one header entry, name=value, at its first "=": ok is
// false without one, or without a name. parseHeader then reads the two.
func cutHeader(entry string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(entry, "=")
	return name, value, ok && strings.TrimSpace(name) != ""
}

var errNotHeaderName = errors.New("the key is not a header name (key=value, the key a token such as Authorization)")

// parseHeader reads one header as the OpenTelemetry SDK reads an entry of
// OTEL_EXPORTER_OTLP_HEADERS: name a token, value percent-decoded
// (Basic%20… is Basic …), no line break. The config vars and the drains
// flags read headers this one way (cutHeader, then parseHeader). Errors
// never quote the value: it may be a secret.
func parseHeader(name, value string) (outlet.Header, error) {
	name = strings.TrimSpace(name)
	if !outlet.HeaderName(name) {
		// Not quoted: a mistyped "Authorization: Basic …=" would be in it.
		return outlet.Header{}, errNotHeaderName
	}
	v, err := url.PathUnescape(strings.TrimSpace(value))
	if err != nil {
		return outlet.Header{}, fmt.Errorf("header %s: the value is not percent-encoded correctly", name)
	}
	if !outlet.HeaderValue(v) {
		return outlet.Header{}, fmt.Errorf("header %s: the value has a line break", name)
	}
	return outlet.Header{Name: name, Value: v}, nil
}

// mergeHeaders returns base with over's headers replacing those of the
// same name.
func mergeHeaders(base, over []outlet.Header) []outlet.Header {
	out := append([]outlet.Header(nil), over...)
	for _, h := range base {
		dup := false
		for _, o := range over {
			if strings.EqualFold(o.Name, h.Name) {
				dup = true
			}
		}
		if !dup {
			out = append(out, h)
		}
	}
	return out
}

// otherEnvVars are the environment variables drainmeter reads besides
// Config's (a test holds every getenv in the source to the two).
var otherEnvVars = []string{
	"HEROKU_APP_DEFAULT_DOMAIN_NAME", // drains add: the app's address (runtime-dyno-metadata)
}

// readEnvVars is every environment variable drainmeter reads.
func readEnvVars() []string {
	var out []string
	for _, v := range configVars() {
		out = append(out, v.Name)
	}
	return append(out, otherEnvVars...)
}

// ownedPrefixes are the prefixes of drainmeter's variables: a variable
// with one of them that drainmeter does not read is a typo (or a setting
// it does not have), and start-up says so; so is any other variable within
// two edits of a name drainmeter reads.
var ownedPrefixes = []string{"DRAIN", "REMOTE_WRITE", "OTEL_", "OTLP_", "LIBRATO_", "OUTLET_", "ROUTE",
	"MAX_", "PARTIAL_", "ROLLUP_", "STATUS_", "SELF_METRIC", "PERCENTILE", "PROCESS_TYPE", "SHUTDOWN_", "WRITER_",
	"SOURCE_PREFIX", "ADMIN_PASS", "MEMORY_BUDGET"}

// envWarnings names the environment variables (from environ, "K=V") with a
// prefix drainmeter owns that it does not read: a typo gets the closest
// variable it does read; OpenTelemetry variables it does not use are
// listed as ignored, on one line. Values are never quoted.
func envWarnings(environ []string) []string {
	known := readEnvVars()
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	var warnings, ignored []string
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" || isKnown[name] || seen[name] {
			continue
		}
		seen[name] = true
		upper := strings.ToUpper(name)
		owned := false
		for _, p := range ownedPrefixes {
			owned = owned || strings.HasPrefix(upper, p)
		}
		best, dist := "", 1<<30
		for _, k := range known {
			if d := editDistance(upper, k); d < dist {
				best, dist = k, d
			}
		}
		if !owned && (dist > 2 || len(upper) < 5 || len(best) < 5) {
			// Not drainmeter's, and no near miss of a name it reads
			// (GRCAE, COUNTER_HLOD, LOG_LEVL are).
			continue
		}
		switch {
		case upper == best:
			warnings = append(warnings, fmt.Sprintf("%s: drainmeter reads upper-case names only: did you mean %s?", name, best))
		case strings.HasPrefix(upper, "OTEL_") && (dist > 2 || otherSignal(upper)):
			ignored = append(ignored, name)
		default:
			warnings = append(warnings, fmt.Sprintf("%s is not a drainmeter setting (ignored): did you mean %s?", name, best))
		}
	}
	slices.Sort(warnings)
	if len(ignored) > 0 {
		slices.Sort(ignored)
		warnings = append(warnings, "OpenTelemetry variables drainmeter does not use (ignored): "+strings.Join(ignored, ", "))
	}
	return warnings
}

// otherSignal reports whether an OpenTelemetry variable is another
// signal's (traces, logs): drainmeter sends metrics only.
func otherSignal(name string) bool {
	return strings.HasPrefix(name, "OTEL_EXPORTER_OTLP_TRACES_") || strings.HasPrefix(name, "OTEL_EXPORTER_OTLP_LOGS_")
}

// editDistance is the optimal-string-alignment distance of a and b: the
// insertions, deletions, substitutions and swaps of neighbours that turn
// one into the other (ULR → URL is one).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// otlpMetricsURL is the OTLP metrics URL of an endpoint as
// OTEL_EXPORTER_OTLP_ENDPOINT and drains add|set --otlp-endpoint take it:
// a base URL gets /v1/metrics appended; a URL that ends in /v1/metrics
// already is used as it is.
func otlpMetricsURL(endpoint string) string {
	e := strings.TrimSpace(endpoint)
	u, err := url.Parse(e)
	if err != nil {
		return e // CheckEndpoint says what is wrong with it
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, "/v1/metrics") {
		p += "/v1/metrics"
	}
	u.Path, u.RawPath = p, ""
	return u.String()
}

// endpointWarnings says when an outlet's final URL would obviously get
// 404 from the receiver its host names, or is no such receiver's path at
// all. kind is outlet.OTLP or outlet.RemoteWrite.
func endpointWarnings(kind outlet.Kind, endpoint string) []string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil
	}
	host, p := strings.ToLower(u.Hostname()), strings.TrimRight(u.Path, "/")
	shown := outlet.RedactURL(endpoint)
	var out []string
	want := func(vendor, path string) {
		if p != path {
			out = append(out, fmt.Sprintf("%s: %s serves this at %s://%s%s: this URL would get 404 (not found)",
				shown, vendor, u.Scheme, u.Host, path))
		}
	}
	switch kind {
	case outlet.OTLP:
		switch {
		case strings.HasSuffix(host, ".grafana.net") && strings.HasPrefix(host, "otlp-gateway-"):
			want("Grafana Cloud's OTLP gateway", "/otlp/v1/metrics")
		case strings.HasSuffix(host, ".live.dynatrace.com") || strings.HasSuffix(host, ".apps.dynatrace.com"):
			want("Dynatrace", "/api/v2/otlp/v1/metrics")
		case strings.HasSuffix(host, ".honeycomb.io"):
			want("Honeycomb", "/v1/metrics")
		case strings.HasSuffix(host, ".nr-data.net"):
			want("New Relic", "/v1/metrics")
		case strings.Contains(p, "/v1/metrics/v1/metrics"):
			out = append(out, fmt.Sprintf("%s: /v1/metrics twice: give the base URL or the full URL, not both", shown))
		case !strings.HasSuffix(p, "/v1/metrics"):
			out = append(out, fmt.Sprintf("%s: OTLP/HTTP receivers take metrics at a path ending in /v1/metrics "+
				"(Prometheus /api/v1/otlp/v1/metrics, Mimir /otlp/v1/metrics): this one would likely get 404", shown))
		}
	case outlet.RemoteWrite:
		switch {
		case strings.HasSuffix(host, ".grafana.net") && strings.HasPrefix(host, "prometheus-"):
			want("Grafana Cloud's Prometheus", "/api/prom/push")
		case strings.HasSuffix(p, "/v1/metrics") || strings.HasSuffix(p, "/otlp"):
			out = append(out, fmt.Sprintf("%s: this is an OTLP path: remote write goes to /api/v1/write (Prometheus, VictoriaMetrics) "+
				"or /api/v1/push (Mimir); for OTLP use the OTLP endpoint instead", shown))
		case p == "":
			out = append(out, fmt.Sprintf("%s: no path: Prometheus and VictoriaMetrics take remote write at /api/v1/write, "+
				"Mimir at /api/v1/push; this URL would get 404", shown))
		}
	}
	return out
}

// warnOutletURLs logs, at start, the outlets of the drains table whose URL
// a known receiver would answer with 404 (drains add|set warned too).
func warnOutletURLs(ctx context.Context, drains *postgres.Drains, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := drains.List(ctx, false)
	if err != nil {
		return // start-up goes on; the lanes will say what the receivers answer
	}
	for _, d := range list {
		for _, o := range d.Outlets {
			for _, w := range endpointWarnings(o.Kind, o.URL) {
				log.Warn("drain "+d.Name+": "+w, "drain", d.ID, "outlet", string(o.Kind))
			}
		}
	}
}
