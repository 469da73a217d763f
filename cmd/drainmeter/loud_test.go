package main

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/outlet"
)

// TestEnvWarnings: a variable with a prefix drainmeter owns that it does
// not read names the closest one it reads; OpenTelemetry variables it does
// not use are listed as ignored; other variables and values are left alone.
func TestEnvWarnings(t *testing.T) {
	got := envWarnings([]string{
		"REMOTE_WRITE_ULR=https://user:hunter2@prom.example.com/api/v1/write",
		"REMOTE_WRITE_URL=https://prom.example.com/api/v1/write", // known
		"DRAIN_SECRETS=s3cret",
		"drain_secret=s3cret",
		"OTEL_EXPORTER_OTLP_ENDPIONT=https://otlp.example.com",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://otlp.example.com",
		"OTEL_METRIC_EXPORT_INTERVAL=60000",
		"LIBRATO_TOKENS=x",
		"OUTLET_TIMEOUTS=5s",
		"PATH=/bin", "HOME=/root", "DYNO=web.1", "HEROKU_APP_ID=1", "GOGC=100", "WEB_CONCURRENCY=2", // not drainmeter's
		"HEROKU_APP_DEFAULT_DOMAIN_NAME=x.herokuapp.com", // read by drains add
		"MAX_SERIES_PER_DRIAN=10",
	})
	want := []string{
		"DRAIN_SECRETS is not a drainmeter setting (ignored): did you mean DRAIN_SECRET?",
		"LIBRATO_TOKENS is not a drainmeter setting (ignored): did you mean LIBRATO_TOKEN?",
		"MAX_SERIES_PER_DRIAN is not a drainmeter setting (ignored): did you mean MAX_SERIES_PER_DRAIN?",
		"OTEL_EXPORTER_OTLP_ENDPIONT is not a drainmeter setting (ignored): did you mean OTEL_EXPORTER_OTLP_ENDPOINT?",
		"OUTLET_TIMEOUTS is not a drainmeter setting (ignored): did you mean OUTLET_TIMEOUT?",
		"REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?",
		"drain_secret: drainmeter reads upper-case names only: did you mean DRAIN_SECRET?",
		"OpenTelemetry variables drainmeter does not use (ignored): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range got {
		if strings.Contains(w, "hunter2") || strings.Contains(w, "s3cret") {
			t.Errorf("a warning quotes a value: %s", w)
		}
	}
	if w := envWarnings([]string{"PATH=/bin", "DRAIN_SECRET=x", "OTEL_EXPORTER_OTLP_ENDPOINT=https://a"}); len(w) != 0 {
		t.Errorf("known variables warned: %q", w)
	}
}

// TestEnvWarningsFollowConfig: the variables read come from Config's tags,
// so a field added there is known without another list to keep.
func TestEnvWarningsFollowConfig(t *testing.T) {
	for _, v := range configVars() {
		if w := envWarnings([]string{v.Name + "=1"}); len(w) != 0 {
			t.Errorf("%s, a Config variable, warned: %q", v.Name, w)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"ULR", "URL", 1}, {"", "abc", 3}, {"abc", "abc", 0}, {"kitten", "sitting", 3}, {"DRAIN", "DRAINS", 1}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

// TestOTLPMetricsURL: one meaning of an OTLP endpoint, for the config var
// and the CLI: a base URL gets /v1/metrics; a URL that has it is kept.
func TestOTLPMetricsURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp":             "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/":            "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics":  "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics/": "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics",
		"https://api.honeycomb.io":                                         "https://api.honeycomb.io/v1/metrics",
		" http://127.0.0.1:9090/api/v1/otlp ":                              "http://127.0.0.1:9090/api/v1/otlp/v1/metrics",
		"http://127.0.0.1:9090/api/v1/otlp/v1/metrics":                     "http://127.0.0.1:9090/api/v1/otlp/v1/metrics",
	} {
		if got := otlpMetricsURL(in); got != want {
			t.Errorf("otlpMetricsURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEndpointWarnings: a known vendor's URL that would get 404 is named,
// with the URL it serves; right ones are quiet.
func TestEndpointWarnings(t *testing.T) {
	quiet := []struct {
		kind outlet.Kind
		url  string
	}{
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics"},
		{outlet.OTLP, "https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics"},
		{outlet.OTLP, "https://api.honeycomb.io/v1/metrics"},
		{outlet.OTLP, "https://otlp.nr-data.net/v1/metrics"},
		{outlet.OTLP, "http://127.0.0.1:9090/api/v1/otlp/v1/metrics"},
		{outlet.RemoteWrite, "https://prometheus-prod-10-prod-us-central-0.grafana.net/api/prom/push"},
		{outlet.RemoteWrite, "https://prom.example.com/api/v1/write"},
		{outlet.RemoteWrite, "https://mimir.example.com/api/v1/push"},
	}
	for _, q := range quiet {
		if w := endpointWarnings(q.kind, q.url); len(w) != 0 {
			t.Errorf("%s %s: %q", q.kind, q.url, w)
		}
	}
	for _, tc := range []struct {
		kind      outlet.Kind
		url, want string
	}{
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/v1/metrics",
			"https://otlp-gateway-prod-us-east-0.grafana.net/v1/metrics: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"},
		{outlet.OTLP, "https://otlp-gateway-prod-us-east-0.grafana.net/otlp",
			"https://otlp-gateway-prod-us-east-0.grafana.net/otlp: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"},
		{outlet.OTLP, "https://abc123.live.dynatrace.com/v1/metrics", "Dynatrace serves this at https://abc123.live.dynatrace.com/api/v2/otlp/v1/metrics"},
		{outlet.OTLP, "https://collector.example.com/v1/metrics/v1/metrics", "/v1/metrics twice"},
		{outlet.OTLP, "https://collector.example.com/otlp", "a path ending in /v1/metrics"},
		{outlet.RemoteWrite, "https://prometheus-prod-10-prod-us-central-0.grafana.net/api/v1/push", "Grafana Cloud's Prometheus serves this at https://prometheus-prod-10-prod-us-central-0.grafana.net/api/prom/push"},
		{outlet.RemoteWrite, "https://user:hunter2@prom.example.com", "no path"},
		{outlet.RemoteWrite, "https://collector.example.com/v1/metrics", "this is an OTLP path"},
	} {
		w := endpointWarnings(tc.kind, tc.url)
		if len(w) != 1 || !strings.Contains(w[0], tc.want) {
			t.Errorf("%s %s: %q, want one containing %q", tc.kind, tc.url, w, tc.want)
		}
		if len(w) > 0 && strings.Contains(w[0], "hunter2") {
			t.Errorf("a warning prints a password: %s", w[0])
		}
	}
}

// TestAppJSONHasReceiverTable: the Deploy form asks for every variable
// that a row of the README's receiver table needs, so that no row needs a
// variable the form does not offer.
func TestAppJSONHasReceiverTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../app.json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Env map[string]json.RawMessage `json:"env"`
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n| backend | config vars |\n")
	if !ok {
		t.Fatal("the README has no receiver table (| backend | config vars |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	vars := regexp.MustCompile("`([A-Z][A-Z0-9_]+[A-Z0-9])(=|`)").FindAllStringSubmatch(table, -1)
	if len(vars) < 5 {
		t.Fatalf("the receiver table names %d variables: the test no longer reads it", len(vars))
	}
	for _, m := range vars {
		if _, ok := app.Env[m[1]]; !ok {
			t.Errorf("the README's receiver table needs %s, which the Deploy form (app.json) does not ask for", m[1])
		}
	}
}
