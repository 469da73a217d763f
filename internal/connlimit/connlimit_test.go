package connlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// request sends GET path on c and reads the answer's status.
func request(c net.Conn, r *bufio.Reader, path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return conn{c, bufio.NewReader(c)}
}

// TestIdleReapedFirst: at the cap, a new connection closes the one idle
// the longest; with none idle it waits, then is closed.
func TestIdleReapedFirst(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, 3, 200*time.Millisecond, nil)
	block := make(chan struct{})
	srv := &http.Server{ConnState: ln.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(block); srv.Close() })
	addr := inner.Addr().String()

	var idle []conn
	for range 3 {
		c := dial(t, addr)
		if status, err := request(c, c.r, "/"); err != nil || status != 200 {
			t.Fatalf("%d %v", status, err)
		}
		idle = append(idle, c)
		time.Sleep(10 * time.Millisecond)
	}
	// A fourth: the first, idle the longest, is closed for it.
	c4 := dial(t, addr)
	if status, err := request(c4, c4.r, "/"); err != nil || status != 200 {
		t.Fatalf("fourth connection: %d %v", status, err)
	}
	_ = idle[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idle[0].r.ReadByte(); err != io.EOF {
		t.Fatalf("the longest idle connection is still open: %v", err)
	}
	if status, err := request(idle[1], idle[1].r, "/"); err != nil || status != 200 {
		t.Fatalf("the second connection was closed: %d %v", status, err)
	}
	if open, reaped, _ := ln.Stats(); open != 3 || reaped != 1 {
		t.Fatalf("open %d, reaped %d", open, reaped)
	}

	// All three busy: a new connection waits, then is closed.
	var busy []conn
	for _, c := range []conn{idle[1], idle[2], c4} {
		go fmt.Fprintf(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
		busy = append(busy, c)
	}
	time.Sleep(100 * time.Millisecond)
	c5 := dial(t, addr)
	start := time.Now()
	if _, err := request(c5, c5.r, "/"); err == nil {
		t.Fatal("a connection beyond the cap, none idle, was served")
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
		t.Errorf("refused after %v (it waits 200 ms)", d)
	}
	if _, _, refused := ln.Stats(); refused != 1 {
		t.Fatalf("refused %d", refused)
	}
	_ = busy
}

// TestWaitsForASlot: a connection that closes while a new one waits lets
// it in.
func TestWaitsForASlot(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, 1, 2*time.Second, nil)
	release := make(chan struct{})
	srv := &http.Server{ConnState: ln.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
			w.Header().Set("Connection", "close")
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c1 := dial(t, inner.Addr().String())
	go request(c1, c1.r, "/block")
	time.Sleep(50 * time.Millisecond)
	go func() { time.Sleep(300 * time.Millisecond); close(release) }()
	c2 := dial(t, inner.Addr().String())
	if status, err := request(c2, c2.r, "/"); err != nil || status != 200 {
		t.Fatalf("waiting connection: %d %v", status, err)
	}
	if !strings.Contains(fmt.Sprint(ln.Stats()), "1 0 0") {
		t.Fatalf("stats %v", fmt.Sprint(ln.Stats()))
	}
}
