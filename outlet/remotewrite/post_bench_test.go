package remotewrite

import (
	"testing"

	"github.com/drainmeter/drainmeter/internal/outlettest"
	"github.com/drainmeter/drainmeter/outlet"
)

// BenchmarkPostMinute100k: the time to post a minute of 100 000 series.
func BenchmarkPostMinute100k(b *testing.B) {
	outlettest.BenchmarkPostMinute100k(b, New(outlettest.Client(), Config{}), outlet.Outlet{Kind: outlet.RemoteWrite, URL: "/api/v1/write"})
}
