package connlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
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

// serve starts a server over a listener of limit connections, reserve of
// them for trusted ones. /trust trusts the connection; /block blocks until
// the test ends.
func serve(t *testing.T, limit, reserve int) (*Listener, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, limit, reserve, nil)
	block := make(chan struct{})
	srv := &http.Server{ConnState: ln.ConnState, ConnContext: ln.ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/trust":
				ln.Trust(r.Context())
			case "/block":
				<-block
			}
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(block); srv.Close() })
	return ln, inner.Addr().String()
}

// closed reports whether the server closed c.
func closed(c conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err := c.r.ReadByte()
	return err == io.EOF
}

// TestIdleReapedFirst: at the cap, with the untrusted within their part, a
// new connection closes the trusted one idle the longest; with none idle
// it is closed at once (the accept loop never waits).
func TestIdleReapedFirst(t *testing.T) {
	ln, addr := serve(t, 3, 2)
	var idle []conn
	for range 3 {
		c := dial(t, addr)
		if status, err := request(c, c.r, "/trust"); err != nil || status != 200 {
			t.Fatalf("%d %v", status, err)
		}
		idle = append(idle, c)
		time.Sleep(10 * time.Millisecond)
	}
	// A fourth: the first, idle the longest, is closed for it.
	c4 := dial(t, addr)
	if status, err := request(c4, c4.r, "/trust"); err != nil || status != 200 {
		t.Fatalf("fourth connection: %d %v", status, err)
	}
	if !closed(idle[0]) {
		t.Fatal("the longest idle connection is still open")
	}
	if status, err := request(idle[1], idle[1].r, "/"); err != nil || status != 200 {
		t.Fatalf("the second connection was closed: %d %v", status, err)
	}
	if st := ln.Stats(); st.Open != 3 || st.IdleClosed != 1 || st.Trusted != 3 {
		t.Fatalf("stats %+v", st)
	}

	// All three busy: a new connection is closed at once.
	for _, c := range []conn{idle[1], idle[2], c4} {
		go fmt.Fprintf(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	time.Sleep(100 * time.Millisecond)
	c5 := dial(t, addr)
	start := time.Now()
	if _, err := request(c5, c5.r, "/"); err == nil {
		t.Fatal("a connection beyond the cap, none idle, was served")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refused after %v: the accept loop waited", d)
	}
	if st := ln.Stats(); st.Refused != 1 || st.LastAt.IsZero() {
		t.Fatalf("stats %+v", st)
	}
}

// TestUntrustedNeverEvictTrusted: connections that never complete an
// authenticated request — silent, or stuck in a request — take at most
// their part of the slots; beyond it they close each other, the oldest
// first, and never a trusted connection, busy or idle.
func TestUntrustedNeverEvictTrusted(t *testing.T) {
	ln, addr := serve(t, 6, 3)
	var trusted []conn
	for range 2 {
		c := dial(t, addr)
		if status, err := request(c, c.r, "/trust"); err != nil || status != 200 {
			t.Fatalf("%d %v", status, err)
		}
		trusted = append(trusted, c)
	}
	go fmt.Fprintf(trusted[1], "GET /block HTTP/1.1\r\nHost: x\r\n\r\n") // busy
	var silent []conn
	for range 10 { // bare connects and a request stuck in its headers
		c := dial(t, addr)
		_, _ = io.WriteString(c, "POST /logs HTTP/1.1\r\nHost: x\r\n")
		silent = append(silent, c)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if st := ln.Stats(); st.Open != 5 || st.Trusted != 2 || st.UntrustedClosed != 7 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	for i, c := range silent[:7] {
		if !closed(c) {
			t.Fatalf("untrusted connection %d, among the oldest, still open", i)
		}
	}
	if status, err := request(trusted[0], trusted[0].r, "/"); err != nil || status != 200 {
		t.Fatalf("the idle trusted connection was closed: %d %v", status, err)
	}
	// A newcomer is always admitted (an old untrusted one goes), and once
	// trusted it stays.
	c := dial(t, addr)
	if status, err := request(c, c.r, "/trust"); err != nil || status != 200 {
		t.Fatalf("newcomer: %d %v", status, err)
	}
	if st := ln.Stats(); st.Trusted != 3 || st.Open != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// TestClosedConnectionEndsItsRequests: a request of a connection closed
// for a newer one sees its context end (a handler waiting stops).
func TestClosedConnectionEndsItsRequests(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, 2, 1, nil) // one untrusted at most
	ended := make(chan struct{})
	srv := &http.Server{ConnState: ln.ConnState, ConnContext: ln.ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				close(ended)
			case <-time.After(5 * time.Second):
			}
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c1 := dial(t, inner.Addr().String())
	fmt.Fprintf(c1, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n") // its body never comes
	time.Sleep(50 * time.Millisecond)
	dial(t, inner.Addr().String())
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Fatal("the request of the connection closed for another still runs")
	}
}
