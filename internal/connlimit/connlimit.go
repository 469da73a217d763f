// Package connlimit caps the open connections of an http.Server, below the
// process's limit of open files, so that neither idle keep-alive
// connections nor connections that never complete a request can starve
// the senders that do.
//
// A connection is untrusted until the server calls Trust for it (drainmeter
// does once it has answered an authenticated batch with 200). Untrusted
// connections — bare connects, headers sent slowly, refused credentials,
// bodies trickled — may hold at most max-reserve of the slots: a new
// connection beyond that closes the oldest untrusted one. A trusted
// connection is never closed for a new one, except one idle the longest
// when every slot is taken and the untrusted are within their part. The
// accept loop never waits: a connection that cannot be admitted at once
// is closed at once, and counted.
//
//	ln := connlimit.New(inner, 1000, 500, log)
//	srv.ConnState = ln.ConnState
//	srv.ConnContext = ln.ConnContext
//	srv.Serve(ln)
//	... ln.Trust(r.Context()) after an authenticated request
package connlimit

import (
	"container/list"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener is a net.Listener that keeps at most its maximum of connections
// open. Its ConnState must be the server's ConnState hook (it tells which
// connections are idle and which are gone) and its ConnContext the
// server's ConnContext (it lets Trust find the request's connection).
type Listener struct {
	net.Listener
	max       int
	untrusted int // the most untrusted connections open at once
	log       *slog.Logger

	mu        sync.Mutex
	conns     map[net.Conn]*entry
	fresh     *list.List // untrusted connections, the oldest first
	idle      *list.List // trusted connections idle now, the longest idle first
	reaped    uint64     // idle trusted connections closed to admit new ones
	evicted   uint64     // untrusted connections closed to admit new ones
	refused   uint64     // new connections closed: nothing could be closed for them
	trusted   int        // trusted connections open
	logged    time.Time
	lastEvent atomic.Int64 // unix nanoseconds of the last eviction or refusal
}

type entry struct {
	c       net.Conn
	cancel  context.CancelFunc // ends its requests' context when it is closed for another
	trusted atomic.Bool
	elem    *list.Element // in fresh while untrusted; in idle while trusted and idle
	gone    bool
}

type ctxKey struct{}

// New returns a listener over inner that keeps at most max connections,
// of which at most max-reserve untrusted (reserve is clamped to 0..max-1).
func New(inner net.Listener, limit, reserve int, log *slog.Logger) *Listener {
	limit = max(limit, 1)
	reserve = min(max(reserve, 0), limit-1)
	return &Listener{Listener: inner, max: limit, untrusted: limit - reserve, log: log,
		conns: map[net.Conn]*entry{}, fresh: list.New(), idle: list.New()}
}

// Accept returns the next connection it admits; it never waits for a slot.
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
	var victim net.Conn
	l.mu.Lock()
	untrusted := len(l.conns) - l.trusted
	switch {
	case len(l.conns) < l.max && untrusted < l.untrusted:
	case untrusted >= l.untrusted:
		// The untrusted part is full: the oldest untrusted connection goes.
		victim = l.dropLocked(l.fresh.Front().Value.(*entry))
		l.evicted++
	case l.idle.Len() > 0:
		victim = l.dropLocked(l.idle.Front().Value.(*entry))
		l.reaped++
	default:
		l.refused++
		l.eventLocked()
		l.mu.Unlock()
		return false
	}
	e := &entry{c: c}
	e.elem = l.fresh.PushBack(e)
	l.conns[c] = e
	if victim != nil {
		l.eventLocked()
	}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Close() // the server sees it closed and ends its goroutine
	}
	return true
}

// ended is the entry of a connection closed for another: its requests'
// context ends too, so that a handler waiting (a refusal's delay) stops.
func (e *entry) ended() {
	if e.cancel != nil {
		e.cancel()
	}
}

// dropLocked forgets e, ends its requests' context and returns its
// connection, to close. l.mu is held.
func (l *Listener) dropLocked(e *entry) net.Conn {
	l.unlinkLocked(e)
	delete(l.conns, e.c)
	if e.trusted.Load() {
		l.trusted--
	}
	e.gone = true
	e.ended()
	return e.c
}

func (l *Listener) unlinkLocked(e *entry) {
	if e.elem == nil {
		return
	}
	if e.trusted.Load() {
		l.idle.Remove(e.elem)
	} else {
		l.fresh.Remove(e.elem)
	}
	e.elem = nil
}

// eventLocked records an eviction or refusal and logs the counts, at most
// once a second. l.mu is held.
func (l *Listener) eventLocked() {
	now := time.Now()
	l.lastEvent.Store(now.UnixNano())
	if l.log == nil || now.Sub(l.logged) < time.Second {
		return
	}
	l.logged = now
	l.log.Warn("connection limit reached", "max_connections", l.max, "untrusted_max", l.untrusted,
		"trusted", l.trusted, "idle_closed", l.reaped, "untrusted_closed", l.evicted, "new_refused", l.refused)
}

// ConnContext puts the connection's entry in its requests' context, for
// Trust: set it as http.Server.ConnContext.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.conns[c]
	if e == nil {
		return ctx
	}
	ctx, e.cancel = context.WithCancel(ctx)
	return context.WithValue(ctx, ctxKey{}, e)
}

// Trust marks the connection of a request (its context) as one that
// completed an authenticated request: it is never closed for an untrusted
// one. Cheap after the first call on a connection.
func (l *Listener) Trust(ctx context.Context) {
	e, _ := ctx.Value(ctxKey{}).(*entry)
	if e == nil || e.trusted.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.gone || e.trusted.Load() {
		return
	}
	l.unlinkLocked(e) // out of fresh; it is active (in a request), so in no list now
	e.trusted.Store(true)
	l.trusted++
}

// ConnState tracks the server's connections: set it as http.Server.ConnState.
func (l *Listener) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.conns[c]
	if e == nil { // closed for another already, or never admitted here
		return
	}
	switch state {
	case http.StateIdle:
		if e.trusted.Load() && e.elem == nil {
			e.elem = l.idle.PushBack(e)
		}
	case http.StateActive:
		if e.trusted.Load() && e.elem != nil {
			l.idle.Remove(e.elem)
			e.elem = nil
		}
	case http.StateClosed, http.StateHijacked:
		l.dropLocked(e)
	}
}

// Stats are a listener's counts.
type Stats struct {
	Max          int `json:"max"`           // connections open at most
	UntrustedMax int `json:"untrusted_max"` // of them untrusted at most
	Open         int `json:"open"`          // open now
	Trusted      int `json:"trusted"`       // open now that completed an authenticated request
	// IdleClosed counts idle trusted connections closed to admit new ones;
	// UntrustedClosed untrusted connections closed to admit new ones;
	// Refused new connections closed at once, since the start.
	IdleClosed      uint64    `json:"idle_closed"`
	UntrustedClosed uint64    `json:"untrusted_closed"`
	Refused         uint64    `json:"refused"`
	LastAt          time.Time `json:"last_at,omitzero"` // the last closing or refusal
}

// Stats returns the listener's counts now.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Max: l.max, UntrustedMax: l.untrusted, Open: len(l.conns), Trusted: l.trusted,
		IdleClosed: l.reaped, UntrustedClosed: l.evicted, Refused: l.refused}
	if n := l.lastEvent.Load(); n != 0 {
		s.LastAt = time.Unix(0, n).UTC()
	}
	return s
}
