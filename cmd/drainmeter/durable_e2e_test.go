package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/loadgen"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// The acceptance tests of the durable mode: real web processes on one
// Postgres, realistic load with retried batches, restarts, crashes and
// outages; every count and sum must reach the fake Librato exactly once.
// They run in parallel: each waits about a minute for its last minute to
// become ready.

// cluster is a set of web processes sharing one database and one or more
// drains; every batch goes to every drain.
type cluster struct {
	t      *testing.T
	fake   *fakelibrato.Server
	env    []string
	id     string // the first drain's
	secret string
	drains [][2]string // id, secret

	// process: the webs are processes (startProcess), for tests of what
	// only a process has (SIGKILL, resident memory); else in-process.
	process bool

	mu   sync.Mutex
	webs []*server
	all  []*server // every web ever started
}

// allOutput returns the output of every web ever started.
func (c *cluster) allOutput() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.all {
		out = append(out, s.out.String())
	}
	return out
}

// newCluster makes a cluster with one drain, shop, posting to a fake Librato.
func newCluster(t *testing.T, dsn string, extra ...string) *cluster {
	t.Helper()
	return newClusterWith(t, dsn, [][]string{{"--name", "shop", "--librato-user", "me@example.com", "--librato-token", "tok"}}, extra...)
}

// newClusterWith makes a cluster with a drain per argument list of
// `drains add` (and a fake Librato that knows me@example.com/tok).
func newClusterWith(t *testing.T, dsn string, drains [][]string, extra ...string) *cluster {
	t.Helper()
	fake := fakelibrato.New(map[string]string{"me@example.com": "tok"})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	mustCLI(t, env, "migrate")
	c := &cluster{t: t, fake: fake}
	for _, args := range drains {
		id, secret := drainCreds(t, mustCLI(t, env, append([]string{"drains", "add"}, args...)...))
		c.drains = append(c.drains, [2]string{id, secret})
	}
	c.id, c.secret = c.drains[0][0], c.drains[0][1]
	env = append(env, "LIBRATO_URL="+ts.URL, "GRACE=5s", "PARTIAL_FLUSH_INTERVAL=2s",
		"DRAIN_CACHE_TTL=5s", "SHUTDOWN_TIMEOUT=15s", "OUTLET_TIMEOUT=2s", "OUTLET_MAX_BACKOFF=5s")
	c.env = append(env, extra...)
	return c
}

// start starts a web process and adds it to the live set; i names its dyno.
// extra overrides the cluster's environment (a DATABASE_URL through a
// proxy, say).
func (c *cluster) start(i int, extra ...string) *server {
	env := append(append(slices.Clone(c.env), fmt.Sprintf("DYNO=web.%d", i)), extra...)
	start := startServer
	if c.process {
		start = startProcess
	}
	s := start(c.t, env...)
	c.mu.Lock()
	c.webs = append(c.webs, s)
	c.all = append(c.all, s)
	c.mu.Unlock()
	return s
}

// remove takes a web out of the live set (before it is stopped).
func (c *cluster) remove(s *server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.webs {
		if w == s {
			c.webs = append(c.webs[:i], c.webs[i+1:]...)
			return
		}
	}
}

// restart stops web i (s) with SIGTERM, out of the live set, and starts
// it again after pause: a deploy of one dyno mid-run.
func (c *cluster) restart(i int, s *server, pause time.Duration) func() {
	return func() {
		c.remove(s)
		if _, err := s.stop(c.t); err != nil {
			c.t.Errorf("web.%d exit: %v\n%s", i, err, s.out)
		}
		time.Sleep(pause)
		c.start(i)
	}
}

func (c *cluster) live() []*server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*server(nil), c.webs...)
}

var loadClient = &http.Client{Timeout: 10 * time.Second}

func (c *cluster) post(s *server, id string, body []byte) (int, error) {
	return c.postTo(s, c.drains[0], id, body)
}

func (c *cluster) postTo(s *server, drain [2]string, id string, body []byte) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, s.url+"/logs", bytes.NewReader(body))
	req.SetBasicAuth(drain[0], drain[1])
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Frame-Id", id)
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// send delivers one batch to every drain as logplex would: to some live
// web, again to another if the first fails.
func (c *cluster) send(rng *rand.Rand, id string, body []byte) {
	c.t.Helper()
	for _, d := range c.drains {
		c.sendTo(rng, d, id, body)
	}
}

func (c *cluster) sendTo(rng *rand.Rand, d [2]string, id string, body []byte) {
	c.t.Helper()
	for try := 0; try < 50; try++ {
		webs := c.live()
		if len(webs) > 0 {
			s := webs[rng.IntN(len(webs))]
			if status, err := c.postTo(s, d, id, body); err == nil && status == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Errorf("batch %s was never accepted by drain %s", id, d[0])
}

// load sends batches of frames per second for d, spread over the live
// webs; dupRate of them are sent again with the same Frame-Id 3 s later
// (logplex retries only after its 5 s timeout or a broken connection).
// event, if set, runs once at the given offset into the load.
func (c *cluster) load(seed uint64, d time.Duration, batchesPerSec, frames int, dupRate float64, events map[time.Duration]func()) *loadgen.Totals {
	gen := loadgen.New(seed, 4)
	rng := rand.New(rand.NewPCG(seed, 1))
	var dups sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(batchesPerSec))
	defer tick.Stop()
	fired := map[time.Duration]bool{}
	for i := 0; time.Since(start) < d; i++ {
		<-tick.C
		for at, f := range events {
			if !fired[at] && time.Since(start) >= at {
				fired[at] = true
				go f()
			}
		}
		body := bytes.Clone(gen.Batch(frames, time.Now()))
		id := fmt.Sprintf("%016X%016X", seed, i)
		c.send(rng, id, body)
		if rng.Float64() < dupRate {
			dups.Add(1)
			go func() {
				defer dups.Done()
				time.Sleep(3 * time.Second)
				c.send(rand.New(rand.NewPCG(uint64(i), seed)), id, body)
			}()
		}
	}
	dups.Wait()
	return gen.Totals()
}

// waitDelivered waits until the fake holds every series of totals.
func (c *cluster) waitDelivered(totals *loadgen.Totals, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, "every minute posted", func() bool {
		got := map[[3]string]bool{}
		for _, m := range c.fake.Measurements() {
			got[[3]string{m.Name, m.Source, fmt.Sprint(m.MeasureTime)}] = true
		}
		for k := range totals.Counts {
			if !got[[3]string{k.Name, k.Source, fmt.Sprint(k.Minute)}] {
				return false
			}
		}
		for k := range totals.Measures {
			if !got[[3]string{k.Name, k.Source, fmt.Sprint(k.Minute)}] {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // a second post of anything would show up now
}

func (c *cluster) stopAll() {
	for _, s := range c.live() {
		c.remove(s)
		if _, err := s.stop(c.t); err != nil {
			c.t.Errorf("exit: %v\n%s", err, s.out)
		}
	}
}

func TestDurableTwoWebsRestartMidMinute(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.NewDatabase(t, false))
	c.start(1)
	w2 := c.start(2)
	// Two minutes and more of load; web.2 gets SIGTERM mid-minute, 75 s in,
	// and a new web.2 starts 3 s later.
	restart := func() {
		c.remove(w2)
		if _, err := w2.stop(t); err != nil {
			t.Errorf("web.2 exit: %v\n%s", err, w2.out)
		}
		if !strings.Contains(w2.out.String(), "shutdown complete") {
			t.Errorf("web.2 did not shut down cleanly:\n%s", w2.out)
		}
		time.Sleep(3 * time.Second)
		c.start(2)
	}
	totals := c.load(11, 130*time.Second, 20, 50, 0.05, map[time.Duration]func(){75 * time.Second: restart})
	c.waitDelivered(totals, 120*time.Second)
	c.stopAll()
	checkDelivered(t, c.fake, totals)
}

func TestDurableLibratoDownForAMinute(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.NewDatabase(t, false))
	c.start(1)
	c.start(2)
	down := func() { c.fake.FailUntil(time.Now().Add(60*time.Second), fakelibrato.Maintenance) }
	totals := c.load(12, 100*time.Second, 15, 50, 0.05, map[time.Duration]func(){20 * time.Second: down})
	c.waitDelivered(totals, 150*time.Second)
	c.stopAll()
	failed := 0
	for _, r := range c.fake.Requests() {
		if r.Status == 503 {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("Librato never failed: the test tested nothing")
	}
	checkDelivered(t, c.fake, totals)
}

func TestDurablePostgresRestart(t *testing.T) {
	t.Parallel()
	pg := pgtest.NewServer(t)
	c := newCluster(t, pg.URL)
	c.start(1)
	c.start(2)
	outage := func() {
		pg.Stop()
		time.Sleep(10 * time.Second)
		pg.Start()
	}
	// Without Postgres the dynos cannot share batch ids, so this test sends
	// no duplicates; the others do.
	totals := c.load(13, 70*time.Second, 15, 50, 0, map[time.Duration]func(){25 * time.Second: outage})
	c.waitDelivered(totals, 150*time.Second)
	c.stopAll()
	checkDelivered(t, c.fake, totals)
}

// TestDurableKill9 kills a web with SIGKILL: it loses at most what it had
// not yet written (PARTIAL_FLUSH_INTERVAL, 2 s here), and nothing it wrote.
func TestDurableKill9(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.NewDatabase(t, false))
	c.process = true // SIGKILL
	w1 := c.start(1)
	w2 := c.start(2)
	// Load only web.1, then give it two flush intervals and kill it.
	c.remove(w2)
	totals := c.load(14, 15*time.Second, 15, 50, 0, nil)
	time.Sleep(4 * time.Second)
	c.remove(w1)
	if err := w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	// web.2 posts what web.1 wrote, once its lease-free minutes are ready.
	c.mu.Lock()
	c.webs = append(c.webs, w2)
	c.mu.Unlock()
	c.waitDelivered(totals, 150*time.Second)
	c.stopAll()
	checkDelivered(t, c.fake, totals)

	// What a crash can lose: a batch accepted less than one flush interval
	// before SIGKILL. Show it with a third web killed right after a batch.
	w3 := c.start(3)
	lost := loadgen.New(15, 1)
	body := lost.Batch(10, time.Now())
	if status, err := c.post(w3, "FFFF", body); err != nil || status != 200 {
		t.Fatalf("post: %d %v", status, err)
	}
	_ = w3.cmd.Process.Signal(syscall.SIGKILL)
	<-w3.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool := pgtest.MustPool(t, strings.TrimPrefix(c.env[0], "DATABASE_URL="))
	var partials int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM partials WHERE writer LIKE 'web.3.%'`).Scan(&partials); err != nil {
		t.Fatal(err)
	}
	t.Logf("a batch accepted just before SIGKILL: %d partials of it reached Postgres (0 means it was lost, as documented)", partials)
}
