package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/postgres"
)

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
// (once), "env:NAME" reads the environment through getenv.
type secretReader struct {
	stdin  io.Reader
	getenv func(string) string
	used   bool
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
		val := r.getenv(name)
		if val == "" {
			return "", fmt.Errorf("--%s: environment variable %s is not set", flag, name)
		}
		return val, nil
	}
	return v, nil
}

// headerFlags reads repeated K=V flags; values may be secrets. Each is
// read as the config vars' entries are: cutHeader, then parseHeader.
func headerFlags(flag string, l optList, sr *secretReader) ([]outlet.Header, error) {
	if !l.set {
		return nil, nil
	}
	out := []outlet.Header{}
	for i, kv := range l.v {
		k, v, ok := cutHeader(kv)
		if !ok {
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

// drainFlags are the flags add and set share: a drain's name, options and
// outlets.
type drainFlags struct {
	name, prefix, sourcePrefix, routes, routeMetrics optString
	user, token                                      optString // Librato
	otlpURL, otlpFullURL, otlpTemp, otlpMaxBuckets   optString
	rwURL, rwHists                                   optString
	otlpHeaders, rwHeaders, attrs                    optList
	processTypes, otlpPctGauges                      optBool
}

// register puts the flags on fs.
func (f *drainFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.name, "name", "drain name (usually the Heroku app's name)")
	fs.Var(&f.user, "librato-user", "Librato account email")
	fs.Var(&f.token, "librato-token", "Librato API token (- reads stdin, env:NAME the environment)")
	fs.Var(&f.otlpURL, "otlp-endpoint", "OTLP/HTTP endpoint as OTEL_EXPORTER_OTLP_ENDPOINT takes it: a base URL gets /v1/metrics; one ending in /v1/metrics is used as is")
	fs.Var(&f.otlpFullURL, "otlp-metrics-endpoint", "OTLP/HTTP metrics URL used as is, as OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	fs.Var(&f.otlpHeaders, "otlp-header", "OTLP request header K=V (repeatable)")
	fs.Var(&f.otlpTemp, "otlp-temporality", "cumulative or delta")
	fs.Var(&f.otlpPctGauges, "otlp-percentile-gauges", "also send measures' percentiles as gauges NAME.p50 …")
	fs.Var(&f.otlpMaxBuckets, "otlp-max-buckets", "buckets a side of an exponential histogram before it is downscaled (default 160)")
	fs.Var(&f.rwHists, "remote-write-histograms", "measures as summary (the default) or native histograms")
	fs.Var(&f.rwURL, "remote-write-url", "Prometheus remote-write URL")
	fs.Var(&f.rwHeaders, "remote-write-header", "remote-write request header K=V (repeatable)")
	fs.Var(&f.prefix, "prefix", "metric name prefix")
	fs.Var(&f.sourcePrefix, "source-prefix", "source prefix")
	fs.Var(&f.processTypes, "process-types", "also roll web.1, web.2 … into web (default true)")
	fs.Var(&f.routes, "routes", "route templates, comma-separated: /users/:id,/api/* (\"\" clears them)")
	fs.Var(&f.routeMetrics, "route-metrics", "per-route series: off, templates or auto")
	fs.Var(&f.attrs, "attribute", "the drain's own attribute K=V (repeatable): OTLP resource attribute, remote-write label")
}

// spec reads the flags into a Spec: the options, then the outlets, their
// secret values resolved by sr; warnings about the outlets' URLs go to
// stderr. add needs both Librato credentials (set may change one).
func (f *drainFlags) spec(sr *secretReader, stderr io.Writer, add bool) (postgres.Spec, error) {
	spec, err := f.options()
	if err != nil {
		return spec, err
	}
	if f.user.set || f.token.set {
		if add && f.user.set != f.token.set {
			return spec, errors.New("give both --librato-user and --librato-token")
		}
		tok, err := sr.resolve("librato-token", f.token.v)
		if err != nil {
			return spec, err
		}
		spec.Outlets = append(spec.Outlets, postgres.OutletSpec{Kind: outlet.Librato, User: f.user.v, Token: tok})
	}
	if f.otlpURL.set && f.otlpFullURL.set {
		return spec, errors.New("give --otlp-endpoint (a base URL, or one ending in /v1/metrics) or --otlp-metrics-endpoint (the full URL, as is), not both")
	}
	if f.otlpURL.set || f.otlpFullURL.set || f.otlpHeaders.set || f.otlpTemp.set || f.otlpPctGauges.set || f.otlpMaxBuckets.set {
		o, err := f.otlpOutlet(sr, stderr)
		if err != nil {
			return spec, err
		}
		spec.Outlets = append(spec.Outlets, o)
	}
	if f.rwURL.set || f.rwHeaders.set || f.rwHists.set {
		o, err := f.remoteWriteOutlet(sr, stderr)
		if err != nil {
			return spec, err
		}
		spec.Outlets = append(spec.Outlets, o)
	}
	return spec, nil
}

// options reads the drain's name, prefixes, process types, routes and
// attributes.
func (f *drainFlags) options() (postgres.Spec, error) {
	spec := postgres.Spec{Name: f.name.ptr(), Prefix: f.prefix.ptr(), SourcePrefix: f.sourcePrefix.ptr()}
	if f.processTypes.set {
		spec.ProcessTypes = &f.processTypes.v
	}
	if f.routes.set {
		rs, err := parse.ParseRoutes(f.routes.v)
		if err != nil {
			return spec, fmt.Errorf("--routes: %w", err)
		}
		if rs == nil {
			rs = []string{}
		}
		spec.Routes = &rs
	}
	if f.routeMetrics.set {
		mode, err := parse.ParseRouteMode(f.routeMetrics.v)
		if err != nil {
			return spec, fmt.Errorf("--route-metrics: %w", err)
		}
		spec.RouteMetrics = &mode
	}
	for _, kv := range f.attrs.v {
		k, v, ok := strings.Cut(kv, "=")
		a := outlet.Attribute{Key: k, Value: v}
		if !ok {
			return spec, fmt.Errorf("--attribute %q: give KEY=VALUE", kv)
		}
		if err := outlet.CheckAttribute(a); err != nil {
			return spec, fmt.Errorf("--attribute: %w", err)
		}
		spec.Attributes = append(spec.Attributes, a)
	}
	return spec, nil
}

// otlpOutlet reads the --otlp flags.
func (f *drainFlags) otlpOutlet(sr *secretReader, stderr io.Writer) (postgres.OutletSpec, error) {
	var u string
	var err error
	if f.otlpFullURL.set {
		u, err = sr.resolve("otlp-metrics-endpoint", f.otlpFullURL.v)
	} else {
		u, err = sr.resolve("otlp-endpoint", f.otlpURL.v)
		if f.otlpURL.set && err == nil && u != "" {
			// What OTEL_EXPORTER_OTLP_ENDPOINT takes: one meaning of "endpoint".
			if full := otlpMetricsURL(u); full != strings.TrimSpace(u) {
				fmt.Fprintf(stderr, "--otlp-endpoint: a base URL: posting to %s (/v1/metrics appended)\n", outlet.RedactURL(full))
				u = full
			}
		}
	}
	if err != nil {
		return postgres.OutletSpec{}, err
	}
	hs, err := outletHeaders(outlet.OTLP, u, "otlp-header", f.otlpHeaders, sr, stderr)
	if err != nil {
		return postgres.OutletSpec{}, err
	}
	o := postgres.OutletSpec{Kind: outlet.OTLP, URL: u, Headers: hs,
		Temporality: outlet.Temporality(strings.ToLower(f.otlpTemp.v))}
	if f.otlpPctGauges.set {
		o.PercentileGauges = &f.otlpPctGauges.v
	}
	if f.otlpMaxBuckets.set {
		n, err := strconv.Atoi(strings.TrimSpace(f.otlpMaxBuckets.v))
		if err != nil {
			return postgres.OutletSpec{}, fmt.Errorf("--otlp-max-buckets %q: a number of buckets, 2 to %d", f.otlpMaxBuckets.v, outlet.MaxMaxBuckets)
		}
		o.MaxBuckets = &n
	}
	return o, nil
}

// remoteWriteOutlet reads the --remote-write flags.
func (f *drainFlags) remoteWriteOutlet(sr *secretReader, stderr io.Writer) (postgres.OutletSpec, error) {
	u, err := sr.resolve("remote-write-url", f.rwURL.v)
	if err != nil {
		return postgres.OutletSpec{}, err
	}
	hs, err := outletHeaders(outlet.RemoteWrite, u, "remote-write-header", f.rwHeaders, sr, stderr)
	if err != nil {
		return postgres.OutletSpec{}, err
	}
	o := postgres.OutletSpec{Kind: outlet.RemoteWrite, URL: u, Headers: hs}
	if f.rwHists.set {
		h, err := outlet.ParseHistograms(strings.ToLower(strings.TrimSpace(f.rwHists.v)))
		if err != nil {
			return postgres.OutletSpec{}, fmt.Errorf("--remote-write-histograms: %w", err)
		}
		o.Histograms = &h
	}
	return o, nil
}

// outletHeaders warns on stderr when a known receiver would answer the
// outlet's URL u with 404, then reads its header flags.
func outletHeaders(kind outlet.Kind, u, flag string, l optList, sr *secretReader, stderr io.Writer) ([]outlet.Header, error) {
	if u != "" {
		for _, w := range endpointWarnings(kind, u) {
			fmt.Fprintln(stderr, "warning:", w)
		}
	}
	return headerFlags(flag, l, sr)
}
