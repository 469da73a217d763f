package librato

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/outlet"
)

// BenchmarkPostMinute100k is the time to post a minute of 100 000 series
// (a quarter of each kind) to a receiver on loopback that accepts
// everything: building every request and sending them one after another,
// as a lane does.
func BenchmarkPostMinute100k(b *testing.B) {
	mn := loadgen.Minute("d", time.Now().Truncate(time.Minute).Add(-2*time.Minute), 100_000)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	client := outlet.NewClient("drainmeter/bench", time.Minute, time.Now)
	be := New(client, []float64{50, 95, 99})
	d := &outlet.Drain{ID: "d", Name: "shop"}
	o := &outlet.Outlet{Kind: outlet.Librato, URL: sink.URL + "", User: "u", Token: "t"}
	ctx := context.Background()
	var reqs, bytes int
	for b.Loop() {
		enc, err := be.Encode(d, o, mn, nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs, bytes = len(enc.Reqs), 0
		for _, r := range enc.Reqs {
			bytes += len(r.Body)
			if res := be.Send(ctx, o, r); res.Outcome != outlet.Accepted {
				b.Fatalf("%v: %s", res.Outcome, res.Message)
			}
		}
	}
	b.ReportMetric(float64(reqs), "requests/op")
	b.ReportMetric(float64(bytes), "body_bytes/op")
}
