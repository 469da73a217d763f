package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/pgtest"
)

// testLog writes the run's progress to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaos is the short chaos run CI does (scripts/chaos runs longer
// ones): three webs, one cycle of every event, about four minutes of load.
// Without Postgres it is skipped, except under CI=true, where it fails.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about six minutes")
	}
	t.Parallel()
	pgtest.ServerURL(t) // skip, or fail in CI
	bin := os.Getenv("TEST_PG_BIN")
	if bin == "" {
		t.Fatal("TEST_PG_BIN is not set: run the tests with ./scripts/test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rep, err := Run(ctx, Config{Duration: 3 * time.Minute, Webs: 3, Seed: 10, PGBin: bin, PGUser: os.Getenv("TEST_PG_USER"),
		Dir: dir, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Write(&b)
	t.Log("\n" + b.String())
	if !rep.OK() {
		// The directory goes with the test: show the warnings and errors
		// of every web process.
		logs, _ := filepath.Glob(filepath.Join(dir, "web.*.log"))
		for _, path := range logs {
			b, _ := os.ReadFile(path)
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					lines = append(lines, l)
				}
			}
			t.Logf("%s: %d warnings and errors:\n%s", filepath.Base(path), len(lines), strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		t.Fatalf("%d violations", len(rep.Violations))
	}
	if len(rep.Kills) == 0 || len(rep.Partitions) == 0 || rep.Shifts == 0 {
		t.Errorf("the run lacks an event or a shift: %d kills, %d partitions, %d shifts", len(rep.Kills), len(rep.Partitions), rep.Shifts)
	}
}

// TestPlan checks the event plan whatever the second the load starts at:
// the partition starts 50 s past a minute and lasts past the sealing of
// that minute; Postgres's stop and the kill fall within the outlets'
// outage; cycles do not overlap; the load goes on through a whole minute
// after the last one; and the durations README's paragraph states.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		webs   int
		cycles [2]int           // at least, at most
		load   [2]time.Duration // at least, at most
	}{
		{3 * time.Minute, 3, [2]int{1, 1}, [2]time.Duration{3 * time.Minute, 5 * time.Minute}},
		{15 * time.Minute, 3, [2]int{4, 6}, [2]time.Duration{15 * time.Minute, 16 * time.Minute}},
	} {
		for sec := range 60 {
			start := time.Date(2026, 11, 22, 11, 22, sec, 0, time.UTC)
			c := &cluster{}
			for i := range tc.webs {
				c.webs = append(c.webs, &web{name: fmt.Sprintf("web.%d", i+1)})
			}
			r := &run{cfg: Config{Duration: tc.d, Webs: tc.webs}, c: c, load: &load{}}
			cycles, end := r.plan(start)
			if n := len(cycles); n < tc.cycles[0] || n > tc.cycles[1] {
				t.Errorf("%v from :%02d: %d cycles, want %v", tc.d, sec, n, tc.cycles)
			}
			if l := end.Sub(start); l < tc.load[0] || l > tc.load[1] {
				t.Errorf("%v from :%02d: load %v, want within %v", tc.d, sec, l, tc.load)
			}
			prev := start
			for i, cy := range cycles {
				sealed := cy.partFrom.Truncate(time.Minute).Add(time.Minute + grace + 2*time.Second)
				switch {
				case cy.termAt.Before(prev), cy.partFrom.Before(cy.termAt.Add(10 * time.Second)):
					t.Errorf("%v from :%02d, cycle %d: SIGTERM at %v, partition at %v, previous cycle ended %v", tc.d, sec, i, cy.termAt, cy.partFrom, prev)
				case cy.partFrom.Second() != 50 || !cy.partTo.After(sealed.Add(5*time.Second)) || cy.partTo.Sub(cy.partFrom) <= writerTimeout+grace:
					t.Errorf("cycle %d: partition %v..%v does not cross the sealing at %v", i, cy.partFrom, cy.partTo, sealed)
				case cy.pgFrom.Before(cy.failFrom), cy.pgTo.After(cy.failTo), cy.killAt.Before(cy.pgTo.Add(10 * time.Second)),
					cy.killAt.Add(restartAfter).After(cy.failTo):
					t.Errorf("cycle %d: Postgres %v..%v and the kill at %v not within the outage %v..%v", i, cy.pgFrom, cy.pgTo, cy.killAt, cy.failFrom, cy.failTo)
				case cy.term == cy.part, cy.killed == cy.part:
					t.Errorf("cycle %d: the partitioned web is also terminated or killed", i)
				}
				prev = cy.end
			}
			if last := cycles[len(cycles)-1].end; end.Before(last.Truncate(time.Minute).Add(2 * time.Minute)) {
				t.Errorf("%v from :%02d: the load ends at %v, before a whole minute after the last cycle (%v)", tc.d, sec, end, last)
			}
		}
	}
}
