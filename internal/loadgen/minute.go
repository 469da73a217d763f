package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

// Minute returns a closed minute of a drain with n series, a quarter of
// each kind (measures with 20 log-normal values each), over 8 sources:
// what outlet benchmarks post.
func Minute(drain string, start time.Time, n int) *rollup.Minute {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	s := rollup.NewStore(rollup.Config{Grace: time.Hour, MaxSeriesPerDrain: n + 1})
	kinds := []parse.Kind{parse.Count, parse.Measure, parse.Sample, parse.Unique}
	var ms []parse.Measurement
	for i := range n {
		k := kinds[i%4]
		m := parse.Measurement{Kind: k, Name: fmt.Appendf(nil, "app.%s.m%d", k, i/32), Source: fmt.Appendf(nil, "web.%d", i%32),
			Unit: []byte("ms"), Time: start.Add(time.Duration(i%60) * time.Second)}
		values := 1
		if k == parse.Measure {
			values = 20
		}
		for range values {
			m.Value = math.Exp(2 + rng.NormFloat64())
			m.Member = fmt.Appendf(nil, "u%d", rng.IntN(1000))
			ms = append(ms, m)
		}
	}
	s.Add(start, stats.NewRegistry().Drain(drain), ms)
	return s.FlushAll()[0]
}
