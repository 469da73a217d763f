package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The findings of issue 19: connections held without a secret, slow
// bodies with one, an oracle of drain ids in the time of a refusal, and
// guessing the status page's password.

// slowFlood holds, at once and for dur, connections that never complete
// an authenticated request — bare connects, headers sent a byte a second,
// full headers with a wrong password and a 100 KiB body trickled a byte a
// second — and connections of the attacking drain (its real secret) whose
// 100 KiB bodies trickle a byte a second. Each connection the server
// closes is opened again at once, as an attacker would.
func (a *attacker) slowFlood(ctx context.Context, bare, slowHeaders, wrongSecret, slowBody int, dur time.Duration) *PhaseReport {
	rep := &PhaseReport{Statuses: map[string]int{}}
	var mu sync.Mutex
	count := func(key string) {
		mu.Lock()
		rep.Requests++
		rep.Statuses[key]++
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	wrong := "Basic " + basic(a.t.user, a.t.pass+"-wrong")
	right := "Basic " + basic(a.t.user, a.t.pass)
	head := func(authz string) string {
		return fmt.Sprintf("POST /logs HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/logplex-1\r\nContent-Length: %d\r\n\r\n",
			a.t.host, authz, 100<<10)
	}
	kinds := []struct {
		name  string
		n     int
		first string // sent at once
		drip  string // then a byte a second of this
	}{
		{"bare", bare, "", ""},
		{"slow-headers", slowHeaders, "POST /logs HTTP/1.1\r\n", "X-Slow: " + strings.Repeat("a", 1<<10)},
		{"wrong-secret", wrongSecret, head(wrong), strings.Repeat("x", 100<<10)},
		{"slow-body", slowBody, head(right), strings.Repeat("x", 100<<10)},
	}
	var wg sync.WaitGroup
	for _, k := range kinds {
		for range k.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					count(k.name + ":" + holdSlow(ctx, a.t.host, k.first, k.drip))
				}
			}()
			time.Sleep(time.Millisecond) // about a thousand new connections a second
		}
	}
	wg.Wait()
	rep.Note = fmt.Sprintf("%d unauthenticated (%d bare, %d slow headers, %d wrong secrets) and %d authenticated slow connections for %s, each opened again when closed",
		bare+slowHeaders+wrongSecret, bare, slowHeaders, wrongSecret, slowBody, dur)
	return rep
}

// holdSlow opens a connection, sends first, then drip a byte a second
// until the server answers or closes it, or ctx is done. It returns what
// ended it: the answer's status, "closed" (without an answer), "held"
// (ctx done) or "dial-error".
func holdSlow(ctx context.Context, host, first, drip string) string {
	c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		if ctx.Err() != nil {
			return "held"
		}
		time.Sleep(50 * time.Millisecond)
		return "dial-error"
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answer <- "closed"
			return
		}
		resp.Body.Close()
		answer <- strconv.Itoa(resp.StatusCode)
	}()
	if first != "" {
		if _, err := io.WriteString(c, first); err != nil {
			return result(ctx, answer)
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case s := <-answer:
			if ctx.Err() != nil && s == "closed" {
				return "held"
			}
			return s
		case <-t.C:
			if drip != "" && i < len(drip) {
				if _, err := io.WriteString(c, drip[i:i+1]); err != nil {
					return result(ctx, answer)
				}
			}
		}
	}
}

func result(ctx context.Context, answer chan string) string {
	s := <-answer
	if ctx.Err() != nil && s == "closed" {
		return "held"
	}
	return s
}

// timingOracle times refused credentials: the attacking drain's id with
// wrong secrets, and made-up ids, alternately, one at a time. The note
// gives each's median and spread; the statuses are "known-401",
// "unknown-401", … so that each is seen refused.
func (a *attacker) timingOracle(ctx context.Context) *PhaseReport {
	rep := &PhaseReport{Statuses: map[string]int{}}
	body := frame(time.Now(), "web.1", "count#attack.oracle=1")
	c := &http.Client{Timeout: 10 * time.Second}
	var known, unknown []time.Duration
	prefix := randomHex(4)
	for i := 0; i < 6 && ctx.Err() == nil; i++ {
		for _, isKnown := range []bool{true, false} {
			t := a.t
			t.pass = "wrong-" + strconv.Itoa(i)
			if !isKnown {
				t.user = fmt.Sprintf("d%s%08x", prefix, i)
			}
			req, _ := post(t, body)
			start := time.Now()
			resp, err := c.Do(req.WithContext(ctx))
			d := time.Since(start)
			key := "error"
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				key = strconv.Itoa(resp.StatusCode)
			}
			if isKnown {
				known = append(known, d)
				key = "known-" + key
			} else {
				unknown = append(unknown, d)
				key = "unknown-" + key
			}
			rep.Requests++
			rep.Statuses[key]++
		}
	}
	km, kmin, kmax := spread(known)
	um, umin, umax := spread(unknown)
	rep.Note = fmt.Sprintf("wrong secret on a known id: median %d ms (%d-%d); unknown id: median %d ms (%d-%d)",
		km.Milliseconds(), kmin.Milliseconds(), kmax.Milliseconds(), um.Milliseconds(), umin.Milliseconds(), umax.Milliseconds())
	rep.Timing = &Timing{KnownMedianMs: ms(km), UnknownMedianMs: ms(um), KnownMinMs: ms(kmin), KnownMaxMs: ms(kmax),
		UnknownMinMs: ms(umin), UnknownMaxMs: ms(umax)}
	return rep
}

// Timing is what the timing-oracle phase measured.
type Timing struct {
	KnownMedianMs   float64 `json:"known_median_ms"`
	KnownMinMs      float64 `json:"known_min_ms"`
	KnownMaxMs      float64 `json:"known_max_ms"`
	UnknownMedianMs float64 `json:"unknown_median_ms"`
	UnknownMinMs    float64 `json:"unknown_min_ms"`
	UnknownMaxMs    float64 `json:"unknown_max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func spread(ds []time.Duration) (median, lo, hi time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

// adminGuess guesses the status page's password 2 000 times over 16
// connections: after a few, the answers are 429, unchecked.
func (a *attacker) adminGuess(ctx context.Context) *PhaseReport {
	page := strings.TrimSuffix(a.t.endpoint, "/logs") + "/status.json"
	return blast(ctx, 2000, 16, 20*time.Second, func(i int) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, page, nil)
		if err == nil {
			req.SetBasicAuth("admin", "guess-"+strconv.Itoa(i))
		}
		return req, err
	})
}

// refusedUnread sends a wrong secret with headers announcing a 1 MiB body
// and sends none of it: the 401 must come without the body.
func (a *attacker) refusedUnread(ctx context.Context) *PhaseReport {
	rep := &PhaseReport{Statuses: map[string]int{}}
	wrong := "Basic " + basic(a.t.user, a.t.pass+"-wrong")
	for range 4 {
		start := time.Now()
		c, err := net.DialTimeout("tcp", a.t.host, 3*time.Second)
		if err != nil {
			rep.Statuses["dial-error"]++
			continue
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "POST /logs HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", a.t.host, wrong, 1<<20)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		key := "error"
		if err == nil {
			line, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			key = strconv.Itoa(resp.StatusCode)
			if resp.Close {
				key += "-close"
			}
			if strings.Count(string(line), "\n") == 1 && len(line) > 10 {
				key += "-reason"
			}
		}
		c.Close()
		rep.Requests++
		rep.Statuses[key]++
		rep.Note = fmt.Sprintf("answered in %d ms without the body", time.Since(start).Milliseconds())
	}
	return rep
}
