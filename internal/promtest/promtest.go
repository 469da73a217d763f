// Package promtest gives tests real Prometheus remote-write receivers:
// Prometheus 2.42 (--web.enable-remote-write-receiver) and VictoriaMetrics
// 1.79.5, each a private process on a free loopback port with a temporary
// data directory, stopped (by its own PID) when the test ends, and helpers
// to read back what they stored.
//
// The binaries are PROMETHEUS_BIN and VICTORIA_METRICS_BIN, else
// prometheus and victoria-metrics on PATH, else in /usr/bin;
// scripts/with-receivers (run by scripts/test) fetches Debian's packages and
// sets the variables. Without a binary the test is skipped, except under
// CI=true, where it fails: CI must run these tests.
package promtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of a receiver's binary: the environment variable
// env, else name on PATH, else /usr/bin/name. Without one, the test is
// skipped (failed under CI=true).
func Binary(tb testing.TB, env, name string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("promtest: %s=%s: %v", env, p, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/bin", name); isExecutable(p) {
		return p
	}
	msg := fmt.Sprintf("promtest: no %s binary (set %s, or run the tests with ./scripts/test, whose scripts/with-receivers fetches Debian's %s package)", name, env, name)
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// process is a receiver started by a test.
type process struct {
	URL  string // http://127.0.0.1:port
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// start runs bin with args (built from the data directory and the
// address) and waits until GET ready answers 200.
func start(tb testing.TB, name, bin, ready string, args func(dir, addr string) []string) *process {
	tb.Helper()
	dir := tb.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between Listen and the server's own
		addr := freeAddr(tb)
		p := &process{URL: "http://" + addr, dir: dir, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
		logf, err := os.Create(p.log)
		if err != nil {
			tb.Fatal(err)
		}
		p.cmd = exec.Command(bin, args(dir, addr)...)
		p.cmd.Stdout, p.cmd.Stderr, p.cmd.Dir = logf, logf, dir
		if err := p.cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("promtest: start %s: %v", name, err)
		}
		go func() {
			_ = p.cmd.Wait()
			logf.Close()
			close(p.done)
		}()
		tb.Cleanup(p.stop)
		if lastErr = p.waitReady(ready, 30*time.Second); lastErr == nil {
			return p
		}
		p.stop()
	}
	tb.Fatalf("promtest: %s did not start: %v", name, lastErr)
	return nil
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (p *process) waitReady(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %s", p.logTail())
		default:
		}
		resp, err := client.Get(p.URL + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %s", timeout, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s) and waits for
// it. It is safe to call twice.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the end of the process's output, for a failure message.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Prometheus is a private Prometheus server.
type Prometheus struct {
	*process
}

// PrometheusOptions configure a Prometheus.
type PrometheusOptions struct {
	// OutOfOrderWindow, if set, is storage.tsdb.out_of_order_time_window:
	// samples older than a series' newest are then accepted within it.
	OutOfOrderWindow time.Duration
	// NativeHistograms turns on --enable-feature=native-histograms, without
	// which Prometheus 2.42 refuses native histograms.
	NativeHistograms bool
}

// StartPrometheus starts Prometheus with the remote write receiver on
// (/api/v1/write) and nothing to scrape, and waits until it is ready.
func StartPrometheus(tb testing.TB, opt PrometheusOptions) *Prometheus {
	tb.Helper()
	bin := Binary(tb, "PROMETHEUS_BIN", "prometheus")
	p := start(tb, "prometheus", bin, "/-/ready", func(dir, addr string) []string {
		cfg := "global: {scrape_interval: 1h}\n"
		if opt.OutOfOrderWindow > 0 {
			cfg += fmt.Sprintf("storage: {tsdb: {out_of_order_time_window: %s}}\n", promDuration(opt.OutOfOrderWindow))
		}
		file := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			tb.Fatal(err)
		}
		args := []string{"--config.file=" + file, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr, "--web.enable-remote-write-receiver", "--log.level=warn"}
		if opt.NativeHistograms {
			args = append(args, "--enable-feature=native-histograms")
		}
		return args
	})
	return &Prometheus{process: p}
}

// promDuration writes d in Prometheus' duration syntax (whole seconds).
func promDuration(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// WriteURL is the remote write endpoint.
func (p *Prometheus) WriteURL() string { return p.URL + "/api/v1/write" }

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Time   time.Time
	Value  float64
}

// Query runs an instant PromQL query at t (GET /api/v1/query) and returns
// its vector, failing tb on any error or a result of another type.
func (p *Prometheus) Query(tb testing.TB, expr string, t time.Time) []Sample {
	tb.Helper()
	q := url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)}}
	b := get(tb, p.URL+"/api/v1/query?"+q.Encode())
	var resp struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		tb.Fatalf("promtest: query %s: %v: %s", expr, err, b)
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		tb.Fatalf("promtest: query %s: %s", expr, b)
	}
	out := make([]Sample, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		var ts float64
		var v string
		if json.Unmarshal(r.Value[0], &ts) != nil || json.Unmarshal(r.Value[1], &v) != nil {
			tb.Fatalf("promtest: query %s: %s", expr, b)
		}
		out = append(out, Sample{Metric: r.Metric, Time: time.UnixMilli(int64(math.Round(ts * 1000))), Value: parseValue(tb, v)})
	}
	return out
}

// VictoriaMetrics is a private single-node VictoriaMetrics server.
type VictoriaMetrics struct {
	*process
}

// StartVictoriaMetrics starts VictoriaMetrics and waits until it is ready.
func StartVictoriaMetrics(tb testing.TB) *VictoriaMetrics {
	tb.Helper()
	bin := Binary(tb, "VICTORIA_METRICS_BIN", "victoria-metrics")
	p := start(tb, "victoria-metrics", bin, "/health", func(dir, addr string) []string {
		return []string{"-storageDataPath=" + filepath.Join(dir, "data"), "-httpListenAddr=" + addr,
			"-loggerLevel=ERROR", "-memory.allowedPercent=10"}
	})
	return &VictoriaMetrics{process: p}
}

// WriteURL is the remote write endpoint.
func (v *VictoriaMetrics) WriteURL() string { return v.URL + "/api/v1/write" }

// Series is one exported series: its labels (__name__ included) and every
// sample stored, duplicates included, in time order.
type Series struct {
	Metric     map[string]string
	Values     []float64
	Timestamps []int64 // ms
}

// Export flushes what was written (POST /internal/force_flush) and returns
// every series matching the series selector match (GET /api/v1/export).
func (v *VictoriaMetrics) Export(tb testing.TB, match string) []Series {
	tb.Helper()
	resp, err := http.Post(v.URL+"/internal/force_flush", "", nil)
	if err != nil {
		tb.Fatalf("promtest: force_flush: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("promtest: force_flush: HTTP %d", resp.StatusCode)
	}
	b := get(tb, v.URL+"/api/v1/export?"+url.Values{"match[]": {match}}.Encode())
	var out []Series
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var line struct {
			Metric     map[string]string
			Values     []json.RawMessage
			Timestamps []int64
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Fatalf("promtest: export %s: %v: %s", match, err, sc.Bytes())
		}
		s := Series{Metric: line.Metric, Timestamps: line.Timestamps}
		for _, raw := range line.Values {
			s.Values = append(s.Values, parseJSONValue(tb, raw))
		}
		out = append(out, s)
	}
	return out
}

func get(tb testing.TB, u string) []byte {
	tb.Helper()
	resp, err := http.Get(u)
	if err != nil {
		tb.Fatalf("promtest: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("promtest: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("promtest: GET %s: HTTP %d: %s", u, resp.StatusCode, b)
	}
	return b
}

// parseJSONValue reads a value that is a JSON number or a string
// ("NaN", "+Inf", …), or null (NaN).
func parseJSONValue(tb testing.TB, raw json.RawMessage) float64 {
	tb.Helper()
	if string(raw) == "null" {
		return math.NaN()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return parseValue(tb, s)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		tb.Fatalf("promtest: value %s: %v", raw, err)
	}
	return f
}

func parseValue(tb testing.TB, s string) float64 {
	tb.Helper()
	f, err := strconv.ParseFloat(strings.TrimPrefix(s, "+"), 64)
	if err != nil {
		tb.Fatalf("promtest: value %q: %v", s, err)
	}
	return f
}
