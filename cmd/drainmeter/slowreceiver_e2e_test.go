package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakeotlp"
)

// slowReceiver is an OTLP receiver that stores each request as it arrives
// and answers it receiverDelay later, whether or not the sender still
// waits: a receiver under load. It counts the copies of each body.
type slowReceiver struct {
	fake  *fakeotlp.Server
	delay time.Duration

	mu       sync.Mutex
	copies   map[[32]byte]int
	answered int
}

func newSlowReceiver(t *testing.T, delay time.Duration) (*slowReceiver, string) {
	r := &slowReceiver{fake: fakeotlp.New(""), delay: delay, copies: map[[32]byte]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL + "/v1/metrics"
}

func (r *slowReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.copies[sha256.Sum256(body)]++
	r.mu.Unlock()
	// Stored (decoded and validated by the fake) now; the answer comes later.
	rec := httptest.NewRecorder()
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.fake.ServeHTTP(rec, req)
	time.Sleep(r.delay)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	r.mu.Lock()
	r.answered++
	r.mu.Unlock()
}

// maxCopies returns the most copies of one request body, and how many
// distinct bodies arrived.
func (r *slowReceiver) maxCopies() (most, bodies int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.copies {
		most = max(most, n)
	}
	return most, len(r.copies)
}

// delivered is what the delta receiver counted of the test's jobs.done.
func (r *slowReceiver) delivered() float64 {
	return r.fake.DeltaSum("jobs.done", map[string]string{"source": "web.1", "drainmeter.rollup": "dyno"})
}

type laneJSON struct {
	Kind          string     `json:"kind"`
	State         string     `json:"state"`
	Waiting       int        `json:"minutes_waiting"`
	Posted        uint64     `json:"posted"`
	Dropped       uint64     `json:"dropped"`
	PostUncertain uint64     `json:"post_uncertain"`
	PauseReason   string     `json:"pause_reason"`
	Fix           string     `json:"fix"`
	LastError     string     `json:"last_error"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// outletStatus reads a drain's outlet of kind from /status.json.
func outletStatus(t *testing.T, url, user, pass, drain, kind string) laneJSON {
	t.Helper()
	code, body := get(t, url+"/status.json", user, pass)
	if code != http.StatusOK {
		t.Fatalf("status.json: %d %s", code, body)
	}
	var snap struct {
		Drains []struct {
			ID      string     `json:"id"`
			Name    string     `json:"name"`
			Outlets []laneJSON `json:"outlets"`
		} `json:"drains"`
	}
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	for _, d := range snap.Drains {
		if d.ID != drain && d.Name != drain {
			continue
		}
		for _, o := range d.Outlets {
			if o.Kind == kind {
				return o
			}
		}
	}
	return laneJSON{}
}

// TestSlowReceiver is issue 19's acceptance run for slow receivers: an OTLP
// delta receiver that stores each request at once and answers 12 s later.
// With the default OUTLET_TIMEOUT (30 s) it gets each minute once, also
// when the minute is posted at shutdown. With a timeout shorter than its
// 12 s, a minute reaches it at most 3 times (README: once, and again at
// most twice after 4× and 8× OUTLET_TIMEOUT), /status.json shows the
// lane's post_uncertain and when it tries next; at shutdown such a request
// is not sent again, nor logged as dropped.
func TestSlowReceiver(t *testing.T) {
	t.Parallel()
	t.Run("default timeout, posted at shutdown", slowReceiverDefaultTimeout)
	t.Run("timeout below the receiver's time", slowReceiverShortTimeout)
	t.Run("timeout below the receiver's time, at shutdown", slowReceiverShortTimeoutAtShutdown)
}

// slowReceiverLines is the lines of TestSlowReceiver's one batch.
const slowReceiverLines = 100

// slowReceiverBatch is slowReceiverLines count#jobs.done lines of web.1 at at.
func slowReceiverBatch(at time.Time) []byte {
	var b strings.Builder
	for range slowReceiverLines {
		b.WriteString(appLine(at, "web.1", "count#jobs.done=1"))
	}
	return []byte(b.String())
}

// slowReceiverStart starts a web posting its built-in drain to the OTLP
// receiver at url, in delta temporality, with the extra environment.
func slowReceiverStart(t *testing.T, url string, extra ...string) *server {
	t.Helper()
	env := append([]string{"DRAIN_SECRET=s3cret", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + url,
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta", "SELF_METRICS=false", "GRACE=2s"}, extra...)
	return startServer(t, env...)
}

// slowReceiverSend posts one batch, now.
func slowReceiverSend(t *testing.T, s *server) {
	t.Helper()
	if resp := s.do(t, post{user: "app", pass: "s3cret", body: slowReceiverBatch(time.Now())}); resp.StatusCode != 200 {
		t.Fatalf("batch: %d", resp.StatusCode)
	}
}

// slowReceiverDefaultTimeout: with the default OUTLET_TIMEOUT the receiver
// gets the minute posted at shutdown once, and nothing is logged as lost.
func slowReceiverDefaultTimeout(t *testing.T) {
	t.Parallel()
	rcv, url := newSlowReceiver(t, 12*time.Second)
	s := slowReceiverStart(t, url)
	slowReceiverSend(t, s)
	took, err := s.stop(t) // the open minute is posted now; the receiver answers in 12 s
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	most, bodies := rcv.maxCopies()
	if most != 1 || bodies != 1 || rcv.delivered() != slowReceiverLines {
		t.Errorf("%d bodies, one of them %d times; the receiver counted %v of %d", bodies, most, rcv.delivered(), slowReceiverLines)
	}
	if out := s.out.String(); strings.Contains(out, "dropped") || strings.Contains(out, "may have arrived") {
		t.Errorf("the log speaks of a loss:\n%s", out)
	}
	t.Logf("default timeout: 1 copy, shutdown took %v", took.Round(100*time.Millisecond))
}

// slowReceiverShortTimeout: with a timeout shorter than the receiver's
// 12 s, the minute reaches it at most 3 times, /status.json shows the
// lane's post_uncertain and when it tries next, and nothing is logged as
// dropped.
func slowReceiverShortTimeout(t *testing.T) {
	t.Parallel()
	rcv, url := newSlowReceiver(t, 12*time.Second)
	s := slowReceiverStart(t, url, "OUTLET_TIMEOUT=3s")
	slowReceiverSend(t, s)
	// The minute closes (up to 62 s), its request times out after 3 s:
	// the lane says so, with when it tries again.
	var first laneJSON
	eventually(t, 90*time.Second, "the lane uncertain on /status.json", func() bool {
		first = outletStatus(t, s.url, "", "", "default", "otlp")
		return first.State == "uncertain" && first.PostUncertain > 0 && first.NextAttemptAt != nil
	})
	if wait := time.Until(*first.NextAttemptAt); wait < 5*time.Second || wait > 12*time.Second {
		t.Errorf("next attempt in %v, want 4 × 3 s less jitter, less the time since", wait)
	}
	if !strings.Contains(first.LastError, "may have arrived") {
		t.Errorf("last error %q", first.LastError)
	}
	// Sent again after 9.6–12 s and 19.2–24 s; each times out; then given up.
	var last laneJSON
	eventually(t, 90*time.Second, "the request given up", func() bool {
		last = outletStatus(t, s.url, "", "", "default", "otlp")
		return last.Waiting == 0 && last.State != "uncertain"
	})
	time.Sleep(13 * time.Second) // the last copy is answered
	most, bodies := rcv.maxCopies()
	if most > 3 || bodies != 1 {
		t.Errorf("%d bodies, one of them %d times: over the bound of 3", bodies, most)
	}
	if last.PostUncertain != uint64(most)*first.PostUncertain || last.Dropped != 0 {
		t.Errorf("post_uncertain %d after %d copies of %d; dropped %d", last.PostUncertain, most, first.PostUncertain, last.Dropped)
	}
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if strings.Contains(s.out.String(), "dropped") {
		t.Errorf("a minute that may have arrived was logged as dropped:\n%s", s.out)
	}
	t.Logf("OUTLET_TIMEOUT=3s, receiver 12 s: %d copies of the minute; the delta receiver counted %v for %d lines; post_uncertain %d",
		most, rcv.delivered(), slowReceiverLines, last.PostUncertain)
}

// slowReceiverShortTimeoutAtShutdown: with a timeout shorter than the
// receiver's 12 s, a request that timed out at shutdown is not sent again,
// nor logged as dropped, and shutdown does not wait for it.
func slowReceiverShortTimeoutAtShutdown(t *testing.T) {
	t.Parallel()
	rcv, url := newSlowReceiver(t, 12*time.Second)
	s := slowReceiverStart(t, url, "OUTLET_TIMEOUT=3s")
	slowReceiverSend(t, s)
	took, err := s.stop(t)
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	time.Sleep(13 * time.Second) // anything still in flight is answered
	most, bodies := rcv.maxCopies()
	if most != 1 || bodies != 1 {
		t.Errorf("%d bodies, one of them %d times; want the minute once", bodies, most)
	}
	out := s.out.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "may have arrived") || !strings.Contains(out, "post_uncertain=") {
		t.Errorf("the log does not say the minute may have arrived (or says dropped):\n%s", out)
	}
	if took > 10*time.Second {
		t.Errorf("shutdown took %v", took)
	}
}
