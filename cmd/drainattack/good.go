package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// GoodFrame is the message of each frame the well-behaved drain sends: two
// measurements, so a batch of GoodFrames frames is 2×GoodFrames
// measurements, and the sum of attack.good over every minute is the number
// of frames accepted.
const (
	GoodFrame  = "count#attack.good=1 measure#attack.good.ms=5ms"
	GoodFrames = 5
)

// GoodReport is what the well-behaved drain sent and how it was answered.
type GoodReport struct {
	Batches      int            `json:"batches"` // accepted (200)
	Frames       int            `json:"frames"`  // in the accepted batches
	Measurements int            `json:"measurements"`
	Failed       int            `json:"failed"`  // batches not accepted within 5 s of retries
	Retries      int            `json:"retries"` // attempts after a batch's first
	MaxLatencyMs float64        `json:"max_latency_ms"`
	Over1s       int            `json:"over_1s"` // batches accepted more than 1 s after their first attempt
	Statuses     map[string]int `json:"statuses"`
	// SlowestMsByPhase is the slowest batch while each phase ran.
	SlowestMsByPhase map[string]float64 `json:"slowest_ms_by_phase"`
	// FramesByMinute counts the frames accepted by the minute of their
	// timestamps (unix seconds): the value of attack.good in that minute.
	FramesByMinute map[int64]int `json:"frames_by_minute"`
}

// prober is the well-behaved drain: a batch every 100 ms, as logplex sends
// them (a Logplex-Frame-Id, the same on every retry; a retry at once after
// a broken connection, soon after a 5xx).
type prober struct {
	t      target
	client *http.Client

	mu    sync.Mutex
	phase string
	rep   GoodReport
}

func newProber(t target) *prober {
	return &prober{t: t, phase: "before",
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}},
		rep:    GoodReport{Statuses: map[string]int{}, SlowestMsByPhase: map[string]float64{}, FramesByMinute: map[int64]int{}}}
}

func (p *prober) setPhase(name string) {
	p.mu.Lock()
	p.phase = name
	p.mu.Unlock()
}

func (p *prober) report() *GoodReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rep
	r.Statuses = maps.Clone(r.Statuses)
	r.SlowestMsByPhase = maps.Clone(r.SlowestMsByPhase)
	r.FramesByMinute = maps.Clone(r.FramesByMinute)
	return &r
}

func (p *prober) run(ctx context.Context) {
	defer p.client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.batch()
	}
}

// batch sends one batch until it is accepted, for at most 5 s.
func (p *prober) batch() {
	var body []byte
	now := time.Now()
	for range GoodFrames {
		body = append(body, frame(now, "web.1", GoodFrame)...)
	}
	id := randomHex(16)
	p.mu.Lock()
	phase := p.phase
	p.mu.Unlock()
	start := time.Now()
	tries := 0
	for time.Since(start) < 5*time.Second {
		tries++
		status := p.send(body, id)
		p.mu.Lock()
		p.rep.Statuses[status]++
		p.mu.Unlock()
		if status == "200" {
			ms := float64(time.Since(start).Microseconds()) / 1000
			p.mu.Lock()
			defer p.mu.Unlock()
			p.rep.Batches++
			p.rep.Frames += GoodFrames
			p.rep.FramesByMinute[now.Unix()/60*60] += GoodFrames
			p.rep.Measurements += 2 * GoodFrames
			p.rep.Retries += tries - 1
			p.rep.MaxLatencyMs = max(p.rep.MaxLatencyMs, ms)
			p.rep.SlowestMsByPhase[phase] = max(p.rep.SlowestMsByPhase[phase], ms)
			if ms > 1000 {
				p.rep.Over1s++
			}
			return
		}
		if status != "error" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.mu.Lock()
	p.rep.Failed++
	p.rep.Retries += tries - 1
	p.mu.Unlock()
}

func (p *prober) send(body []byte, id string) string {
	req, err := post(p.t, body, "Logplex-Frame-Id", id, "Logplex-Msg-Count", strconv.Itoa(GoodFrames))
	if err != nil {
		return "error"
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}
