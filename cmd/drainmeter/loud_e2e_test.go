package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// TestTyposAreLoud: `drainmeter web` with a mistyped variable starts with
// a warning naming the variable it meant; an OpenTelemetry variable it
// does not use is listed as ignored; a vendor URL that would get 404 is
// named at start. No value is printed.
func TestTyposAreLoud(t *testing.T) {
	s := startServer(t, "REMOTE_WRITE_ULR=https://user:hunter2@prom.example.com/api/v1/write",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://otlp.example.com/v1/traces",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=https://otlp-gateway-prod-us-east-0.grafana.net/otlp")
	out := s.out.String()
	for _, want := range []string{
		`level=WARN msg="REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?"`,
		`level=WARN msg="OpenTelemetry variables drainmeter does not use (ignored): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`,
		`level=WARN msg="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: https://otlp-gateway-prod-us-east-0.grafana.net/otlp: Grafana Cloud's OTLP gateway serves this at https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics: this URL would get 404 (not found)"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up lacks\n%s\noutput:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Error("a password is printed")
	}
	if _, err := s.stop(t); err != nil {
		t.Fatal(err)
	}

	// A start-up error says what the typo is too.
	cmd := exec.Command(binPath, "web")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REMOTE_WRITE_ULR=https://prom.example.com/api/v1/write",
		"REMOTE_WRITE_HEADERS=X-Scope-OrgID=1"}
	b, err := cmd.CombinedOutput()
	want := "drainmeter: config: REMOTE_WRITE_HEADERS is set but REMOTE_WRITE_URL is not\nwarnings:\n" +
		"  REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?\n"
	if err == nil || string(b) != want {
		t.Errorf("exit %v, output:\n%s\nwant:\n%s", err, b, want)
	}
}

// TestDrainsEndpointOneMeaning: drains add|set --otlp-endpoint takes what
// OTEL_EXPORTER_OTLP_ENDPOINT takes — a base URL gets /v1/metrics, a URL
// ending in it is kept — and says the final URL; --otlp-metrics-endpoint is
// used as is; a vendor URL that would get 404 is warned about.
func TestDrainsEndpointOneMeaning(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=https://my-drainmeter.herokuapp.com"}
	const grafana = "https://otlp-gateway-prod-us-east-0.grafana.net/otlp"

	out, errOut, err := cli(t, env, "drains", "add", "--name", "base", "--otlp-endpoint", grafana)
	if err != nil {
		t.Fatalf("add: %v\n%s%s", err, out, errOut)
	}
	if want := "--otlp-endpoint: a base URL: posting to " + grafana + "/v1/metrics (/v1/metrics appended)\n"; !strings.Contains(errOut, want) {
		t.Errorf("add's stderr lacks %q:\n%s", want, errOut)
	}
	if strings.Contains(errOut, "warning:") {
		t.Errorf("a right URL warned:\n%s", errOut)
	}
	if !strings.Contains(out, "outlets: otlp("+grafana+"/v1/metrics, cumulative)") {
		t.Errorf("add does not show the final URL:\n%s", out)
	}

	out, errOut, err = cli(t, env, "drains", "add", "--name", "full", "--otlp-endpoint", grafana+"/v1/metrics")
	if err != nil || strings.Contains(errOut, "appended") || !strings.Contains(out, "otlp("+grafana+"/v1/metrics, cumulative)") {
		t.Errorf("a full URL: %v\n%s%s", err, out, errOut)
	}

	// The full-URL flag takes it as is, and warns when a vendor would 404.
	out, errOut, err = cli(t, env, "drains", "set", "full", "--otlp-metrics-endpoint", grafana)
	if err != nil || !strings.Contains(out, "otlp("+grafana+", cumulative)") {
		t.Errorf("set --otlp-metrics-endpoint: %v\n%s%s", err, out, errOut)
	}
	if want := "warning: " + grafana + ": Grafana Cloud's OTLP gateway serves this at " + grafana + "/v1/metrics: this URL would get 404 (not found)\n"; errOut != want {
		t.Errorf("set's stderr:\n%s\nwant:\n%s", errOut, want)
	}
	if _, errOut, err = cli(t, env, "drains", "set", "full", "--otlp-metrics-endpoint", grafana, "--otlp-endpoint", grafana); err == nil ||
		!strings.Contains(errOut, "not both") {
		t.Errorf("both flags: %v %s", err, errOut)
	}

	list := mustCLI(t, env, "drains", "list")
	for _, want := range []string{"otlp(" + grafana + "/v1/metrics, cumulative)", "otlp(" + grafana + ", cumulative)"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %s:\n%s", want, list)
		}
	}
}
