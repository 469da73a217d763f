package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPIgnored: SIGHUP (sent by some supervisors and terminals) does
// not stop drainmeter web nor lose anything: it is logged and ignored, and
// the 100 lines accepted before it are all in the minute that SIGTERM
// closes.
func TestSIGHUPIgnored(t *testing.T) {
	t.Parallel()
	s := startProcess(t)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil { // while it may still be starting its loops
		t.Fatal(err)
	}
	now := time.Now()
	body := strings.Repeat(appLine(now, "web.1", "count#hits=1"), 100)
	if resp := s.do(t, post{user: "app", pass: "x", body: []byte(body)}); resp.StatusCode != 200 {
		t.Fatalf("POST /logs: %d", resp.StatusCode)
	}
	for range 3 {
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-s.done:
		t.Fatalf("drainmeter exited on SIGHUP (%v):\n%s", err, s.out)
	case <-time.After(time.Second):
	}
	if h := s.health(t); !strings.Contains(h, `"status":"ok"`) {
		t.Fatalf("/health after SIGHUP: %s", h)
	}
	if !strings.Contains(s.out.String(), `msg="SIGHUP ignored`) {
		t.Errorf("SIGHUP not logged")
	}
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.out)
	}
	if want := "kind=count name=hits source=web.1 app=app value=100"; !strings.Contains(s.out.String(), want) {
		t.Errorf("the minute closed at SIGTERM lacks %q:\n%s", want, s.out)
	}
}
