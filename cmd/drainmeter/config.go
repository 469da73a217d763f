package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
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

	LibratoURL       string        `envconfig:"LIBRATO_URL" default:"https://metrics-api.librato.com"`
	LibratoUser      string        `envconfig:"LIBRATO_USER"`
	LibratoToken     string        `envconfig:"LIBRATO_TOKEN"`
	OutletWorkers    int           `envconfig:"OUTLET_WORKERS" default:"4"`
	OutletTimeout    time.Duration `envconfig:"OUTLET_TIMEOUT" default:"10s"`
	OutletMaxPending time.Duration `envconfig:"OUTLET_MAX_PENDING" default:"1h"`
	OutletMaxBackoff time.Duration `envconfig:"OUTLET_MAX_BACKOFF" default:"2m"`

	DatabaseURL   string        `envconfig:"DATABASE_URL"`
	DrainmeterKey string        `envconfig:"DRAINMETER_KEY"`
	DrainCacheTTL time.Duration `envconfig:"DRAIN_CACHE_TTL" default:"30s"`

	PartialFlushInterval time.Duration `envconfig:"PARTIAL_FLUSH_INTERVAL" default:"10s"`
	PostDelay            time.Duration `envconfig:"POST_DELAY" default:"15s"`
	RollupRetention      time.Duration `envconfig:"ROLLUP_RETENTION" default:"24h"`
	PartialBufferBytes   int           `envconfig:"PARTIAL_BUFFER_BYTES" default:"67108864"`

	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	Dyno            string        `envconfig:"DYNO"` // set by Heroku on every dyno

	percentiles []float64
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
	case c.PostDelay < 0:
		return fmt.Errorf("config: POST_DELAY=%s must not be negative", c.PostDelay)
	case c.RollupRetention < c.OutletMaxPending:
		return fmt.Errorf("config: ROLLUP_RETENTION=%s must be at least OUTLET_MAX_PENDING (%s)", c.RollupRetention, c.OutletMaxPending)
	case c.PartialBufferBytes < 1<<20:
		return fmt.Errorf("config: PARTIAL_BUFFER_BYTES=%d is too small (at least 1048576)", c.PartialBufferBytes)
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
