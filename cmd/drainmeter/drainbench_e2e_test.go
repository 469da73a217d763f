package main

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/loadgen"
)

// TestDrainbenchTotals runs the load tool against the binary and compares
// the totals it wrote with what reached the fake Librato.
func TestDrainbenchTotals(t *testing.T) {
	fake := fakelibrato.New(map[string]string{"me@example.com": "tok"})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	s := startServer(t, "DRAIN_SECRET=s3cret", "LIBRATO_URL="+ts.URL, "LIBRATO_USER=me@example.com", "LIBRATO_TOKEN=tok")
	totalsPath := filepath.Join(t.TempDir(), "sent.json")
	out, err := exec.Command(benchPath, "--url", "http://app:s3cret@"+s.url[len("http://"):]+"/logs",
		"--connections", "2", "--duration", "3s", "--rate", "100", "--batch", "50", "--dup", "0.05", "--totals", totalsPath).CombinedOutput()
	if err != nil {
		t.Fatalf("drainbench: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`lines_per_s=\d+`).Match(out) || !regexp.MustCompile(`latency p50=\S+ p95=\S+ p99=\S+`).Match(out) {
		t.Fatalf("drainbench report:\n%s", out)
	}
	if _, err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(totalsPath)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Frames int              `json:"frames"`
		Series []loadgen.Series `json:"series"`
	}
	if err := json.Unmarshal(raw, &sent); err != nil {
		t.Fatal(err)
	}
	got := map[loadgen.Key]fakelibrato.Measurement{}
	for _, m := range fake.Measurements() {
		got[loadgen.Key{Name: m.Name, Source: m.Source, Minute: m.MeasureTime}] = m
	}
	if sent.Frames == 0 || len(sent.Series) == 0 {
		t.Fatal("nothing sent")
	}
	for _, want := range sent.Series {
		// The built-in drain without APP_NAME: Librato's sources start
		// with the sending app (the URL's user, "app").
		k := want.Key
		k.Source = "app." + k.Source
		m, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%v missing", k)
		case want.Kind == "count" && (m.Value == nil || *m.Value != want.Sum):
			t.Errorf("%v: %v, want %v", want.Key, m.Value, want.Sum)
		case want.Kind == "measure" && (m.Count == nil || int(*m.Count) != want.Count || math.Abs(*m.Sum-want.Sum) > 1e-9*math.Abs(want.Sum)):
			t.Errorf("%v: count %v sum %v, want %d %v", want.Key, m.Count, m.Sum, want.Count, want.Sum)
		}
	}
	if d := fake.Duplicates(); len(d) > 0 {
		t.Errorf("%d measurements posted twice", len(d))
	}
	t.Logf("%d frames, %d series compared", sent.Frames, len(sent.Series))
}
