// Package connlimit caps the open connections of an http.Server, below the
// process's limit of open files, so that idle keep-alive connections can
// never starve new ones: at the cap, the connection idle the longest is
// closed to admit a new one.
//
//	ln := connlimit.New(inner, 1000, 200*time.Millisecond, log)
//	srv.ConnState = ln.ConnState
//	srv.Serve(ln)
package connlimit

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener is a net.Listener that keeps at most its maximum of connections
// open. Its ConnState must be the server's ConnState hook: that tells it
// which connections are idle between requests and which are gone. A new
// connection at the cap closes the connection idle the longest; if none is
// idle, the new one waits up to the listener's wait for a connection to
// close or turn idle, and is closed if none does.
type Listener struct {
	net.Listener
	max  int
	wait time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	conns   map[net.Conn]*list.Element // open connections; the element is in idle while the connection is idle
	idle    *list.List                 // idle connections, the longest idle first
	freed   chan struct{}              // a slot may have become available
	reaped  uint64                     // idle connections closed to admit new ones
	refused uint64                     // new connections closed: nothing to reap
	logged  time.Time
}

// New returns a listener over inner that keeps at most max connections.
func New(inner net.Listener, max int, wait time.Duration, log *slog.Logger) *Listener {
	return &Listener{Listener: inner, max: max, wait: wait, log: log,
		conns: map[net.Conn]*list.Element{}, idle: list.New(), freed: make(chan struct{}, 1)}
}

// Accept waits for a connection it can admit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit(c) {
			return c, nil
		}
		_ = c.Close()
	}
}

// admit makes room for c, and reports whether it did.
func (l *Listener) admit(c net.Conn) bool {
	var timeout <-chan time.Time
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.conns[c] = nil
			l.mu.Unlock()
			return true
		}
		if e := l.idle.Front(); e != nil {
			old := l.idle.Remove(e).(net.Conn)
			delete(l.conns, old)
			l.conns[c] = nil
			l.reaped++
			l.logLocked()
			l.mu.Unlock()
			_ = old.Close() // the server sees it closed and ends its goroutine
			return true
		}
		l.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(l.wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-l.freed:
		case <-timeout:
			l.mu.Lock()
			l.refused++
			l.logLocked()
			l.mu.Unlock()
			return false
		}
	}
}

// logLocked logs the listener's counts, at most once a second. l.mu is held.
func (l *Listener) logLocked() {
	if l.log == nil || time.Since(l.logged) < time.Second {
		return
	}
	l.logged = time.Now()
	l.log.Warn("connection limit reached", "max_connections", l.max, "idle_closed", l.reaped, "new_refused", l.refused)
}

// ConnState tracks the server's connections: set it as http.Server.ConnState.
func (l *Listener) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	e, ok := l.conns[c]
	if !ok { // reaped already, or never admitted here
		l.mu.Unlock()
		return
	}
	freed := false
	switch state {
	case http.StateIdle:
		if e == nil {
			l.conns[c] = l.idle.PushBack(c)
		}
		freed = true
	case http.StateActive:
		if e != nil {
			l.idle.Remove(e)
			l.conns[c] = nil
		}
	case http.StateClosed, http.StateHijacked:
		if e != nil {
			l.idle.Remove(e)
		}
		delete(l.conns, c)
		freed = true
	}
	l.mu.Unlock()
	if freed {
		select {
		case l.freed <- struct{}{}:
		default:
		}
	}
}

// Stats returns the connections open now, the idle ones closed to admit
// new ones, and the new ones refused, since the start.
func (l *Listener) Stats() (open int, reaped, refused uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), l.reaped, l.refused
}
