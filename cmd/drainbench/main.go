// Command drainbench is a load tool for a drainmeter drain: it POSTs
// realistic logplex batches (router lines, runtime metrics, app lines) to a
// drain URL, reports lines per second and latency percentiles, and can write
// the exact totals it sent so that they can be compared with what arrived.
//
//	drainbench --url http://app:SECRET@127.0.0.1:5000/logs --connections 4 --duration 20s --dup 0.05 --totals sent.json
//
// It only sends to loopback addresses unless --allow-remote is given.
//
// With --serve it is instead a sink for drainmeter's outlets, to measure them
// without a real backend: it answers every POST (OTLP/HTTP at /v1/metrics,
// remote write at /api/v1/write, Librato at /v1/metrics with Basic auth)
// with a success, and reports requests and bytes received every 10 s:
//
//	drainbench --serve 127.0.0.1:9100 &
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9100 REMOTE_WRITE_URL=http://127.0.0.1:9100/api/v1/write drainmeter web
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drainbench:", err)
		os.Exit(1)
	}
}

type options struct {
	target      *url.URL
	connections int
	rate        float64
	duration    time.Duration
	batch       int
	dup         float64
	dynos       int
	paths       loadgen.PathMode
	totals      string
	noFrameID   bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drainbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "drain URL with credentials, e.g. http://app:SECRET@127.0.0.1:5000/logs (required)")
	o := options{}
	fs.IntVar(&o.connections, "connections", 4, "concurrent keep-alive connections")
	fs.Float64Var(&o.rate, "rate", 0, "batches per second across all connections (0: as fast as possible)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&o.batch, "batch", 100, "frames per batch")
	fs.Float64Var(&o.dup, "dup", 0, "fraction of batches sent twice with the same Logplex-Frame-Id, as logplex retries")
	fs.IntVar(&o.dynos, "dynos", 4, "web dynos the generated lines come from")
	paths := fs.String("paths", "items", "router lines' paths: items (/items/N), api (an API's paths with ids; for a drain with --routes "+
		strings.Join(loadgen.APIRoutes, ",")+" --route-metrics "+loadgen.APIRouteMetrics+") or scan (a distinct random path each, router lines only)")
	fs.StringVar(&o.totals, "totals", "", "write the exact totals sent (JSON) to this file")
	fs.BoolVar(&o.noFrameID, "no-frame-id", false, "send no Logplex-Frame-Id (the drain then does no dedup)")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	serve := fs.String("serve", "", "instead of sending load, be a sink for drainmeter's outlets on this address (e.g. 127.0.0.1:9100)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return runSink(ctx, *serve, stdout)
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("--url must be an http(s) drain URL")
	}
	if !*allowRemote && !loopback(u.Hostname()) {
		return fmt.Errorf("%s is not a loopback address (use --allow-remote to load another host)", u.Hostname())
	}
	if o.connections < 1 || o.batch < 1 || o.duration <= 0 || o.dup < 0 || o.dup >= 1 {
		return errors.New("--connections and --batch must be ≥ 1, --duration > 0, 0 ≤ --dup < 1")
	}
	if o.noFrameID && o.dup > 0 {
		return errors.New("--dup needs frame ids: drop --no-frame-id")
	}
	switch *paths {
	case "items":
		o.paths = loadgen.PathItems
	case "api":
		o.paths = loadgen.PathAPI
	case "scan":
		o.paths = loadgen.PathScan
	default:
		return fmt.Errorf("--paths %q: items, api or scan", *paths)
	}
	o.target = u
	res := load(ctx, o)
	res.print(stdout, o)
	if o.totals != "" {
		if err := res.totals.WriteFile(o.totals); err != nil {
			return err
		}
	}
	if res.failed > 0 {
		return fmt.Errorf("%d batches were not accepted after 3 tries: the totals do not match what arrived", res.failed)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type result struct {
	mu        sync.Mutex
	latencies []time.Duration
	statuses  map[string]int
	frames    int
	requests  int
	dups      int
	failed    int
	elapsed   time.Duration
	totals    *loadgen.Totals
}

func load(ctx context.Context, o options) *result {
	res := &result{statuses: map[string]int{}, totals: loadgen.NewTotals()}
	user := o.target.User.Username()
	pass, _ := o.target.User.Password()
	endpoint := *o.target
	endpoint.User = nil
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: o.connections, MaxConnsPerHost: o.connections, IdleConnTimeout: time.Minute}}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.connections) / o.rate)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range o.connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := loadgen.New(uint64(c+1)*7919, o.dynos)
			gen.SetPaths(o.paths)
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			var tick *time.Ticker
			if interval > 0 {
				tick = time.NewTicker(interval)
				defer tick.Stop()
			}
			var lat []time.Duration
			statuses := map[string]int{}
			requests, dups, failed := 0, 0, 0
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-ctx.Done():
						continue
					case <-tick.C:
					}
				}
				body := gen.Batch(o.batch, time.Now())
				id := ""
				if !o.noFrameID {
					id = frameID()
				}
				sends := 1
				if rng.Float64() < o.dup {
					sends, dups = 2, dups+1
				}
				for range sends {
					ok := false
					for try := 0; try < 3 && !ok; try++ { // logplex tries a batch 3 times
						t0 := time.Now()
						status, err := send(client, endpoint.String(), user, pass, id, o.batch, body)
						lat = append(lat, time.Since(t0))
						requests++
						switch {
						case err != nil:
							statuses["error"]++
						default:
							statuses[strconv.Itoa(status)]++
							ok = status >= 200 && status < 300
						}
					}
					if !ok {
						failed++
					}
				}
			}
			res.mu.Lock()
			defer res.mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			for k, v := range statuses {
				res.statuses[k] += v
			}
			res.requests += requests
			res.dups += dups
			res.failed += failed
			res.totals.Merge(gen.Totals())
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.frames = res.totals.Frames
	return res
}

func send(client *http.Client, endpoint, user, pass, id string, n int, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(n))
	if id != "" {
		req.Header.Set("Logplex-Frame-Id", id)
	}
	req.Header.Set("User-Agent", "Logplex/drainbench")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func frameID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%X", b[:]) // upper-case hex, as logplex sends
}

func (r *result) print(w io.Writer, o options) {
	slices.Sort(r.latencies)
	pct := func(q float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
	}
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "target=%s connections=%d batch=%d duration=%s dup=%.2f\n", o.target.Redacted(), o.connections, o.batch, r.elapsed.Round(time.Millisecond), o.dup)
	fmt.Fprintf(w, "lines=%d lines_per_s=%.0f requests=%d requests_per_s=%.0f duplicate_batches=%d failed_batches=%d\n",
		r.frames, float64(r.frames)/secs, r.requests, float64(r.requests)/secs, r.dups, r.failed)
	fmt.Fprintf(w, "latency p50=%s p95=%s p99=%s max=%s\n", pct(0.5), pct(0.95), pct(0.99), pct(1))
	keys := make([]string, 0, len(r.statuses))
	for k := range r.statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprint(w, "status")
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, r.statuses[k])
	}
	fmt.Fprintln(w)
}

// runSink answers every POST with a success until ctx is done, reporting
// what it received every 10 s.
func runSink(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var requests, bytes int64
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		mu.Lock()
		requests++
		bytes += n
		mu.Unlock()
		w.Header().Set("Content-Length", "0")
		if r.URL.Path == "/api/v1/write" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				fmt.Fprintf(stdout, "sink: %d requests, %d bytes\n", requests, bytes)
				mu.Unlock()
			}
		}
	}()
	fmt.Fprintf(stdout, "sink listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
