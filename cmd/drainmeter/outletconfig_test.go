package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigOutletTimeout: the default is the OpenTelemetry exporters' 30 s;
// more than 40 s would outlast what a durable lane's one-minute lease
// leaves a request, and is refused at start.
func TestConfigOutletTimeout(t *testing.T) {
	c, err := loadOSConfig()
	if err != nil || c.OutletTimeout != 30*time.Second {
		t.Fatalf("default OUTLET_TIMEOUT %v (%v)", c.OutletTimeout, err)
	}
	for _, v := range []string{"41s", "0s", "-1s"} {
		t.Setenv("OUTLET_TIMEOUT", v)
		if _, err := loadOSConfig(); err == nil || !strings.Contains(err.Error(), "OUTLET_TIMEOUT="+v+" must be positive and at most 40s") {
			t.Errorf("OUTLET_TIMEOUT=%s: %v", v, err)
		}
	}
	t.Setenv("OUTLET_TIMEOUT", "40s")
	if _, err := loadOSConfig(); err != nil {
		t.Errorf("OUTLET_TIMEOUT=40s: %v", err)
	}
}
