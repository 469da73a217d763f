package promtest

import (
	"testing"
	"time"
)

// TestStartAndQuery starts both receivers and reads them back empty; the
// write path is tested by outlet/remotewrite.
func TestStartAndQuery(t *testing.T) {
	p := StartPrometheus(t, PrometheusOptions{OutOfOrderWindow: 30 * time.Minute})
	v := StartVictoriaMetrics(t)
	if got := p.Query(t, `vector(42)`, time.Now()); len(got) != 1 || got[0].Value != 42 {
		t.Errorf("vector(42) = %+v", got)
	}
	if got := p.Query(t, `{__name__=~".+"}`, time.Now()); len(got) != 0 {
		t.Errorf("an empty Prometheus has %+v", got)
	}
	if got := v.Export(t, `{__name__!=""}`); len(got) != 0 {
		t.Errorf("an empty VictoriaMetrics has %+v", got)
	}
	p.stop()
	p.stop() // twice is fine (the cleanup does it again)
}
