package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/postgres"
)

// Config is every setting, read from environment variables (Heroku config
// vars). The defaults are in the tags; the README's table lists them all.
type Config struct {
	Port              int           `envconfig:"PORT" default:"5000"`
	DrainSecret       string        `envconfig:"DRAIN_SECRET"`
	MaxBodyBytes      int64         `envconfig:"MAX_BODY_BYTES" default:"1048576"`
	Grace             time.Duration `envconfig:"GRACE" default:"90s"`
	MaxSeriesPerDrain int           `envconfig:"MAX_SERIES_PER_DRAIN" default:"20000"`
	Prefix            string        `envconfig:"PREFIX"`
	SourcePrefix      string        `envconfig:"SOURCE_PREFIX"`
	ProcessTypes      bool          `envconfig:"PROCESS_TYPE_ROLLUPS" default:"true"`
	Percentiles       string        `envconfig:"PERCENTILES" default:"50,95,99"`

	AppName string `envconfig:"APP_NAME"`

	LibratoURL   string `envconfig:"LIBRATO_URL" default:"https://metrics-api.librato.com"`
	LibratoUser  string `envconfig:"LIBRATO_USER"`
	LibratoToken string `envconfig:"LIBRATO_TOKEN"`

	OTLPMetricsEndpoint string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"`
	OTLPEndpoint        string `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPHeaders         string `envconfig:"OTEL_EXPORTER_OTLP_HEADERS"`
	OTLPMetricsHeaders  string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_HEADERS"`
	OTLPTemporality     string `envconfig:"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE" default:"cumulative"`

	RemoteWriteURL     string `envconfig:"REMOTE_WRITE_URL"`
	RemoteWriteHeaders string `envconfig:"REMOTE_WRITE_HEADERS"`

	OutletWorkers    int           `envconfig:"OUTLET_WORKERS" default:"4"`
	OutletTimeout    time.Duration `envconfig:"OUTLET_TIMEOUT" default:"10s"`
	OutletMaxPending time.Duration `envconfig:"OUTLET_MAX_PENDING" default:"1h"`
	OutletMaxBackoff time.Duration `envconfig:"OUTLET_MAX_BACKOFF" default:"2m"`

	DatabaseURL   string        `envconfig:"DATABASE_URL"`
	DrainmeterKey string        `envconfig:"DRAINMETER_KEY"`
	DrainCacheTTL time.Duration `envconfig:"DRAIN_CACHE_TTL" default:"30s"`
	DrainmeterURL string        `envconfig:"DRAINMETER_URL"`

	PartialFlushInterval time.Duration `envconfig:"PARTIAL_FLUSH_INTERVAL" default:"10s"`
	WriterTimeout        time.Duration `envconfig:"WRITER_TIMEOUT" default:"60s"`
	RollupRetention      time.Duration `envconfig:"ROLLUP_RETENTION" default:"24h"`
	PartialBufferBytes   int           `envconfig:"PARTIAL_BUFFER_BYTES" default:"67108864"`

	AdminPassword   string        `envconfig:"ADMIN_PASSWORD"`
	StatusRetention time.Duration `envconfig:"STATUS_RETENTION" default:"24h"`
	SelfMetrics     bool          `envconfig:"SELF_METRICS" default:"true"`

	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	Dyno            string        `envconfig:"DYNO"`            // set by Heroku on every dyno
	HerokuAppName   string        `envconfig:"HEROKU_APP_NAME"` // set by Heroku's runtime-dyno-metadata

	// Memory and connections (internal/budget, internal/connlimit).
	MemoryBudget    int64  `envconfig:"MEMORY_BUDGET"`    // bytes; unset: 75 % of the dyno's memory
	MaxConnections  int    `envconfig:"MAX_CONNECTIONS"`  // unset: from the file limit and the budget
	MemoryAvailable string `envconfig:"MEMORY_AVAILABLE"` // megabytes; set by Heroku (read leniently: never a start-up error)
	GoMemLimit      string `envconfig:"GOMEMLIMIT"`       // the Go runtime's own; unset: the budget

	percentiles []float64
	outlets     []outlet.Outlet // the built-in drain's, from the config vars above; none: the log outlet
}

// loadConfig reads the environment. Its errors are one line naming the
// variable, and never print a secret.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, fmt.Errorf("config: %s=%q is not a valid %s", pe.KeyName, pe.Value, typeName(pe.TypeName))
		}
		return c, fmt.Errorf("config: %w", err)
	}
	return c, c.validate()
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

func (c *Config) validate() error {
	var err error
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("config: PORT=%d is not a TCP port", c.Port)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("config: MAX_BODY_BYTES=%d is too small (at least 1024)", c.MaxBodyBytes)
	case c.Grace < 0:
		return fmt.Errorf("config: GRACE=%s must not be negative", c.Grace)
	case c.MaxSeriesPerDrain < 1:
		return fmt.Errorf("config: MAX_SERIES_PER_DRAIN=%d must be at least 1", c.MaxSeriesPerDrain)
	case c.OutletWorkers < 1:
		return fmt.Errorf("config: OUTLET_WORKERS=%d must be at least 1", c.OutletWorkers)
	case c.OutletTimeout <= 0:
		return fmt.Errorf("config: OUTLET_TIMEOUT=%s must be positive", c.OutletTimeout)
	case c.OutletMaxBackoff < time.Second:
		return fmt.Errorf("config: OUTLET_MAX_BACKOFF=%s must be at least 1s", c.OutletMaxBackoff)
	case c.OutletMaxPending <= 0:
		return fmt.Errorf("config: OUTLET_MAX_PENDING=%s must be positive", c.OutletMaxPending)
	case c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 29*time.Second:
		return fmt.Errorf("config: SHUTDOWN_TIMEOUT=%s must be between 0 and 29s (Heroku kills at 30s)", c.ShutdownTimeout)
	case (c.LibratoUser == "") != (c.LibratoToken == ""):
		return errors.New("config: set both LIBRATO_USER and LIBRATO_TOKEN, or neither (rollups are then logged)")
	}
	if u, perr := url.Parse(c.LibratoURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: LIBRATO_URL=%q is not an http(s) URL", c.LibratoURL)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: LOG_LEVEL=%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.percentiles, err = parsePercentiles(c.Percentiles); err != nil {
		return fmt.Errorf("config: PERCENTILES=%q: %w", c.Percentiles, err)
	}
	if c.DrainCacheTTL <= 0 || c.DrainCacheTTL > time.Minute {
		return fmt.Errorf("config: DRAIN_CACHE_TTL=%s must be between 0 and 1m (removed drains must stop within a minute)", c.DrainCacheTTL)
	}
	switch {
	case c.PartialFlushInterval < time.Second:
		return fmt.Errorf("config: PARTIAL_FLUSH_INTERVAL=%s must be at least 1s", c.PartialFlushInterval)
	case c.StatusRetention < time.Hour || c.StatusRetention > 31*24*time.Hour:
		return fmt.Errorf("config: STATUS_RETENTION=%s must be between 1h and 744h", c.StatusRetention)
	case c.WriterTimeout < 5*time.Second:
		return fmt.Errorf("config: WRITER_TIMEOUT=%s must be at least 5s", c.WriterTimeout)
	case c.RollupRetention < c.OutletMaxPending:
		return fmt.Errorf("config: ROLLUP_RETENTION=%s must be at least OUTLET_MAX_PENDING (%s)", c.RollupRetention, c.OutletMaxPending)
	case c.PartialBufferBytes < 1<<20:
		return fmt.Errorf("config: PARTIAL_BUFFER_BYTES=%d is too small (at least 1048576)", c.PartialBufferBytes)
	}
	switch {
	case c.MemoryBudget != 0 && c.MemoryBudget < budget.MinTotal:
		return fmt.Errorf("config: MEMORY_BUDGET=%d is too small (at least %d bytes)", c.MemoryBudget, budget.MinTotal)
	case c.MaxConnections < 0:
		return fmt.Errorf("config: MAX_CONNECTIONS=%d must not be negative", c.MaxConnections)
	}
	if c.outlets, err = c.builtinOutlets(); err != nil {
		return err
	}
	if c.DatabaseURL != "" && c.DrainmeterKey == "" {
		return errors.New("config: DRAINMETER_KEY is not set: with DATABASE_URL it seals the drains' Librato tokens (drainmeter keys generate)")
	}
	if c.Dyno != "" && c.DrainSecret == "" && c.DatabaseURL == "" {
		return errors.New("config: DRAIN_SECRET is not set: on Heroku the drain would accept anyone's logs (heroku config:set DRAIN_SECRET=$(openssl rand -hex 24))")
	}
	return nil
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

// builtinOutlets reads the built-in drain's outlets from the config vars.
// Errors name the variable and never print a secret.
func (c *Config) builtinOutlets() ([]outlet.Outlet, error) {
	var out []outlet.Outlet
	if c.LibratoUser != "" {
		out = append(out, outlet.Outlet{Kind: outlet.Librato, URL: c.LibratoURL, User: c.LibratoUser, Token: c.LibratoToken})
	}
	endpoint := c.OTLPMetricsEndpoint
	if endpoint == "" && c.OTLPEndpoint != "" {
		// The OTel spec: the base URL, with v1/metrics appended.
		endpoint = strings.TrimRight(c.OTLPEndpoint, "/") + "/v1/metrics"
	}
	if endpoint != "" {
		name := "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
		if c.OTLPMetricsEndpoint == "" {
			name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
		if err := postgres.CheckEndpoint(endpoint); err != nil {
			return nil, fmt.Errorf("config: %s: %w", name, err)
		}
		headers, err := parseHeaders(c.OTLPHeaders)
		if err != nil {
			return nil, fmt.Errorf("config: OTEL_EXPORTER_OTLP_HEADERS: %w", err)
		}
		specific, err := parseHeaders(c.OTLPMetricsHeaders)
		if err != nil {
			return nil, fmt.Errorf("config: OTEL_EXPORTER_OTLP_METRICS_HEADERS: %w", err)
		}
		headers = mergeHeaders(headers, specific)
		var temp outlet.Temporality
		switch strings.ToLower(strings.TrimSpace(c.OTLPTemporality)) {
		case "", "cumulative":
			temp = outlet.Cumulative
		case "delta", "lowmemory": // lowmemory is delta for counters and histograms: all drainmeter sends
			temp = outlet.Delta
		default:
			return nil, fmt.Errorf("config: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=%q is not cumulative or delta", c.OTLPTemporality)
		}
		out = append(out, outlet.Outlet{Kind: outlet.OTLP, URL: endpoint, Headers: headers, Temporality: temp})
	} else if c.OTLPHeaders != "" || c.OTLPMetricsHeaders != "" {
		return nil, errors.New("config: OTEL_EXPORTER_OTLP_HEADERS is set but no endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)")
	}
	if c.RemoteWriteURL != "" {
		if err := postgres.CheckEndpoint(c.RemoteWriteURL); err != nil {
			return nil, fmt.Errorf("config: REMOTE_WRITE_URL: %w", err)
		}
		headers, err := parseHeaders(c.RemoteWriteHeaders)
		if err != nil {
			return nil, fmt.Errorf("config: REMOTE_WRITE_HEADERS: %w", err)
		}
		out = append(out, outlet.Outlet{Kind: outlet.RemoteWrite, URL: c.RemoteWriteURL, Headers: headers})
	} else if c.RemoteWriteHeaders != "" {
		return nil, errors.New("config: REMOTE_WRITE_HEADERS is set but REMOTE_WRITE_URL is not")
	}
	return out, nil
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
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("header %s: the value is not percent-encoded correctly", k)
		}
		if strings.ContainsAny(dv, "\r\n\x00") {
			return nil, fmt.Errorf("header %s: the value has a line break", k)
		}
		out = append(out, outlet.Header{Name: k, Value: dv})
	}
	return out, nil
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
