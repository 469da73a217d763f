package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/loadgen"
)

// The logplex side: batches with exact expected totals, each sent to a
// random live dyno and, like logplex, again to another dyno when an attempt
// fails; some sent again on purpose, at once to another dyno (a retry after
// a broken connection, even while the first attempt is still being counted)
// or 3 s later.

// batch is one logplex batch.
type batch struct {
	seq          int
	id           string // Logplex-Frame-Id
	body         []byte
	frames       int
	at           time.Time // its lines are stamped within this second
	measurements int       // loadgen's count, in drainmeter's unit

	mu       sync.Mutex
	first    *web // the dyno of the first attempt
	firstAt  time.Time
	accepted bool
}

// attempt is one POST of a batch.
type attempt struct {
	b          *batch
	inst       *instance
	kind       string // first, immediate, delayed
	again      bool   // after a failed attempt of the same copy
	pinned     bool   // kept on one dyno (see window)
	start, end time.Time
	status     int // 0: no answer
	err        string
}

// window is a time in which a batch must stay on one dyno: batch ids are
// then claimed in that dyno's memory (Postgres down, or the dyno cut off
// from it), so a copy on another dyno would count again — the one exception
// the README states. A batch whose first attempt, or the attempt being
// placed, falls in a window goes to its first dyno if the window is about
// every dyno or about that dyno; otherwise it avoids the cut-off dyno.
type window struct {
	from, to time.Time
	web      *web // nil: every dyno
}

func (w window) contains(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

// load sends batches and records every attempt.
type load struct {
	c         *cluster
	drain     string // id
	secret    string
	client    *http.Client
	seed      uint64
	rate      int // batches per second
	frames    int // frames per batch
	immediate float64
	delayed   float64
	deadline  time.Duration // a copy not accepted within this is given up (a violation)

	mu       sync.Mutex
	windows  []window
	batches  []*batch
	attempts []*attempt
	failed   []*batch // copies never accepted
	totals   *loadgen.Totals
	wg       sync.WaitGroup
}

func newLoad(c *cluster, drain, secret string, seed uint64, rate, frames int) *load {
	return &load{c: c, drain: drain, secret: secret, seed: seed, rate: rate, frames: frames,
		immediate: 0.05, delayed: 0.02, deadline: time.Minute,
		client: &http.Client{Timeout: 5 * time.Second, // logplex gives up after 5 s
			Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}}}
}

// addWindow keeps batches on one dyno in [from, to).
func (l *load) addWindow(from, to time.Time, w *web) {
	l.mu.Lock()
	l.windows = append(l.windows, window{from, to, w})
	l.mu.Unlock()
}

// run sends batches until ctx is done or until, then waits for every copy
// (the delayed ones too) to be answered; it returns the totals sent.
func (l *load) run(ctx context.Context, until time.Time) *loadgen.Totals {
	gen := loadgen.New(l.seed, 4)
	rng := rand.New(rand.NewPCG(l.seed, 0xc4a05))
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	prev := 0
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		now := time.Now()
		if ctx.Err() != nil || !now.Before(until) {
			break
		}
		body := bytes.Clone(gen.Batch(l.frames, now))
		all := gen.Totals().AllMeasurements()
		b := &batch{seq: seq, id: fmt.Sprintf("%016X%016X", l.seed, seq), body: body, frames: l.frames,
			at: now, measurements: all - prev}
		prev = all
		l.mu.Lock()
		l.batches = append(l.batches, b)
		l.mu.Unlock()
		immediate, delayed := rng.Float64() < l.immediate, rng.Float64() < l.delayed
		l.wg.Add(1)
		go l.send(b, immediate, delayed)
	}
	l.wg.Wait()
	l.totals = gen.Totals()
	return l.totals
}

// send delivers a batch, and its extra copies.
func (l *load) send(b *batch, immediate, delayed bool) {
	defer l.wg.Done()
	first, _ := l.pick(b, nil, time.Now())
	if first != nil {
		b.mu.Lock()
		b.first, b.firstAt = first.web, time.Now()
		b.mu.Unlock()
	}
	if immediate && first != nil {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.deliver(b, "immediate", first.web, nil) }()
	}
	if delayed {
		l.wg.Add(1)
		time.AfterFunc(3*time.Second, func() {
			defer l.wg.Done()
			b.mu.Lock()
			other := b.first
			b.mu.Unlock()
			l.deliver(b, "delayed", other, nil)
		})
	}
	l.deliver(b, "first", nil, first)
}

// deliver sends one copy of b until a dyno accepts it: to inst first if
// given, then to a live dyno other than the one that just failed.
func (l *load) deliver(b *batch, kind string, other *web, inst *instance) {
	giveUp := time.Now().Add(l.deadline)
	for again := false; ; again = true {
		pinned := false
		if inst == nil {
			inst, pinned = l.pick(b, other, time.Now())
		}
		if inst == nil {
			if time.Now().After(giveUp) {
				l.mu.Lock()
				l.failed = append(l.failed, b)
				l.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.mu.Lock()
		if b.first == nil {
			b.first, b.firstAt = inst.web, time.Now()
		}
		b.mu.Unlock()
		a := &attempt{b: b, inst: inst, kind: kind, again: again, pinned: pinned, start: time.Now()}
		a.status, a.err = l.post(inst, b)
		a.end = time.Now()
		l.mu.Lock()
		l.attempts = append(l.attempts, a)
		l.mu.Unlock()
		if a.status == http.StatusOK {
			b.mu.Lock()
			b.accepted = true
			b.mu.Unlock()
			return
		}
		if time.Now().After(giveUp) {
			l.mu.Lock()
			l.failed = append(l.failed, b)
			l.mu.Unlock()
			return
		}
		other, inst = inst.web, nil
		time.Sleep(100 * time.Millisecond)
	}
}

// pick chooses a live dyno for a copy of b: one other than other if there
// is a choice, within the rules of the windows. pinned tells that a window
// decided.
func (l *load) pick(b *batch, other *web, now time.Time) (inst *instance, pinned bool) {
	b.mu.Lock()
	first, firstAt := b.first, b.firstAt
	b.mu.Unlock()
	var pin, avoid *web
	if first != nil { // the first attempt goes anywhere
		l.mu.Lock()
		for _, w := range l.windows {
			if !w.contains(now) && !w.contains(firstAt) {
				continue
			}
			if w.web == nil || w.web == first {
				pin = first
			} else {
				avoid = w.web
			}
		}
		l.mu.Unlock()
	}
	var cands []*instance
	for _, i := range l.c.live() {
		if (pin != nil && i.web != pin) || (avoid != nil && i.web == avoid) {
			continue
		}
		cands = append(cands, i)
	}
	if pin == nil && other != nil && len(cands) > 1 {
		cands = slices.DeleteFunc(cands, func(i *instance) bool { return i.web == other })
	}
	if len(cands) == 0 {
		return nil, pin != nil || avoid != nil
	}
	return cands[rand.IntN(len(cands))], pin != nil || avoid != nil
}

// post sends b to inst as logplex does.
func (l *load) post(inst *instance, b *batch) (int, string) {
	req, err := http.NewRequest(http.MethodPost, inst.url+"/logs", bytes.NewReader(b.body))
	if err != nil {
		return 0, err.Error()
	}
	req.SetBasicAuth(l.drain, l.secret)
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(b.frames))
	req.Header.Set("Logplex-Frame-Id", b.id)
	req.Header.Set("User-Agent", "Logplex/chaos")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode, ""
}

// snapshot returns the batches and attempts so far.
func (l *load) snapshot() ([]*batch, []*attempt, []*batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches), slices.Clone(l.attempts), slices.Clone(l.failed)
}
