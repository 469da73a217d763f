package main

import (
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/loadgen"
)

// exactNearestRank is the ceil(q·n)-th smallest value.
func exactNearestRank(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// checkDelivered compares what the fake stored with the totals: every count
// and measure series exactly once, counts and sums exact, percentiles within
// 1 % of the exact nearest rank.
func checkDelivered(t *testing.T, fake *fakelibrato.Server, totals *loadgen.Totals) {
	t.Helper()
	checkDeliveredAs(t, fake, totals, "")
}

// checkDeliveredAs is checkDelivered for sources posted with a prefix: on
// the built-in drain without APP_NAME, Librato's sources start with the
// sending app ("myapp.web.1").
func checkDeliveredAs(t *testing.T, fake *fakelibrato.Server, totals *loadgen.Totals, sourcePrefix string) {
	t.Helper()
	if d := fake.Duplicates(); len(d) > 0 {
		t.Errorf("%d measurements posted more than once, e.g. %s %s %d", len(d), d[0].Name, d[0].Source, d[0].MeasureTime)
	}
	type key struct {
		name, source string
		minute       int64
	}
	got := map[key]fakelibrato.Measurement{}
	for _, m := range fake.Measurements() {
		got[key{m.Name, m.Source, m.MeasureTime}] = m
	}
	for k, want := range totals.Counts {
		m, ok := got[key{k.Name, sourcePrefix + k.Source, k.Minute}]
		switch {
		case !ok:
			t.Errorf("count %v missing", k)
		case m.Value == nil || *m.Value != want:
			t.Errorf("count %v = %v, want %v", k, m.Value, want)
		}
	}
	checked := 0
	for k, values := range totals.Measures {
		m, ok := got[key{k.Name, sourcePrefix + k.Source, k.Minute}]
		if !ok || m.Count == nil {
			t.Errorf("measure %v missing", k)
			continue
		}
		slices.Sort(values)
		var sum float64
		for _, v := range values {
			sum += v
		}
		if int(*m.Count) != len(values) || math.Abs(*m.Sum-sum) > 1e-9*math.Abs(sum) ||
			*m.Min != values[0] || *m.Max != values[len(values)-1] {
			t.Errorf("measure %v: count %d sum %v min %v max %v, want %d %v %v %v", k, *m.Count, *m.Sum, *m.Min, *m.Max,
				len(values), sum, values[0], values[len(values)-1])
		}
		for _, p := range []struct {
			suffix string
			q      float64
		}{{"median", 0.5}, {"perc95", 0.95}, {"perc99", 0.99}} {
			pm, ok := got[key{k.Name + "." + p.suffix, sourcePrefix + k.Source, k.Minute}]
			if !ok || pm.Value == nil {
				t.Errorf("%s.%s %v missing", k.Name, p.suffix, k)
				continue
			}
			exact := exactNearestRank(values, p.q)
			if exact != 0 && math.Abs(*pm.Value-exact)/math.Abs(exact) > 0.01 {
				t.Errorf("%s.%s %v = %v, exact %v", k.Name, p.suffix, k, *pm.Value, exact)
			}
			checked++
		}
	}
	if len(totals.Counts) == 0 || checked == 0 {
		t.Fatal("nothing was checked")
	}
	t.Logf("%d frames; %d count and %d measure series checked, %d percentiles", totals.Frames, len(totals.Counts), len(totals.Measures), checked)
}

func TestLibratoEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*fakelibrato.Server)
	}{
		{"healthy", nil},
		{"fails for 4 s at shutdown", func(f *fakelibrato.Server) { f.FailUntil(time.Now().Add(4*time.Second), fakelibrato.Maintenance) }},
		{"rate limited", func(f *fakelibrato.Server) { f.FailNext(3, fakelibrato.RateLimit403) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakelibrato.New(map[string]string{"me@example.com": "tok"})
			ts := httptest.NewServer(fake)
			defer ts.Close()
			s := startServer(t, "DRAIN_SECRET=s3cret", "LIBRATO_URL="+ts.URL, "LIBRATO_USER=me@example.com", "LIBRATO_TOKEN=tok")

			// A few thousand frames across two minutes: the previous one
			// (still within its grace) and the current one.
			gen := loadgen.New(7, 3)
			now := time.Now()
			for i := range 40 {
				at := now.Add(-60 * time.Second)
				if i%2 == 1 {
					at = now
				}
				body := gen.Batch(100, at)
				resp := s.do(t, post{user: "myapp", pass: "s3cret", body: body,
					headers: map[string]string{"Logplex-Msg-Count": "100", "Logplex-Frame-Id": fmt.Sprintf("%032X", i)}})
				if resp.StatusCode != 200 {
					t.Fatalf("batch %d: status %d", i, resp.StatusCode)
				}
			}
			if tc.fault != nil {
				tc.fault(fake)
			}
			took, err := s.stop(t)
			if err != nil {
				t.Fatalf("exit: %v", err)
			}
			if took > 25*time.Second {
				t.Errorf("shutdown took %v", took)
			}
			checkDeliveredAs(t, fake, gen.Totals(), "myapp.")
			for _, r := range fake.Requests() {
				if r.UserAgent != "drainmeter/"+version {
					t.Fatalf("User-Agent %q", r.UserAgent)
				}
			}
			if tc.fault != nil && !strings.Contains(s.out.String(), "will retry") {
				t.Error("no retry was logged")
			}
		})
	}
}

// TestShutdownDeadline: with Librato down for good, the process still exits
// by SHUTDOWN_TIMEOUT and says what it could not post.
func TestShutdownDeadline(t *testing.T) {
	fake := fakelibrato.New(map[string]string{"me@example.com": "tok"})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	fake.FailUntil(time.Now().Add(time.Hour), fakelibrato.Maintenance)
	s := startServer(t, "DRAIN_SECRET=s3cret", "LIBRATO_URL="+ts.URL, "LIBRATO_USER=me@example.com",
		"LIBRATO_TOKEN=tok", "SHUTDOWN_TIMEOUT=3s")
	s.do(t, post{user: "a", pass: "s3cret", body: []byte(appLine(time.Now(), "web.1", "count#x=1"))})
	took, err := s.stop(t)
	if err == nil {
		t.Error("exit status 0 although measurements were lost")
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v with a 3 s deadline", took)
	}
	if out := s.out.String(); !strings.Contains(out, "not posted before the deadline") {
		t.Errorf("no loss reported:\n%s", out)
	}
}
