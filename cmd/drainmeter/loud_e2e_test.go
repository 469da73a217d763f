package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
