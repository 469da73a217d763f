// Package tcpproxy is a TCP proxy for tests that can be paused like a
// network partition. While it is paused, connections are still accepted
// (the kernel completes the handshake), but nothing passes in either
// direction: no byte, no close, no new connection to the target. A client
// waiting on the other side hangs until its own timeout, as it would behind
// a real partition; it is never refused. On Resume what was held goes
// through, as TCP retransmission delivers it once a partition heals.
package tcpproxy

import (
	"net"
	"sync"
)

// Proxy forwards connections from its loopback address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	paused  bool
	resumed chan struct{} // closed by Resume (and Close) to release the waiters
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pause holds every byte and close, and new connections, until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused && !p.closed {
		p.paused = true
		p.resumed = make(chan struct{})
	}
}

// Resume lets everything held go through.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

// Paused reports whether the proxy is paused.
func (p *Proxy) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// wait blocks while the proxy is paused; false once it is closed.
func (p *Proxy) wait() bool {
	for {
		p.mu.Lock()
		closed, paused, ch := p.closed, p.paused, p.resumed
		p.mu.Unlock()
		switch {
		case closed:
			return false
		case !paused:
			return true
		}
		<-ch
	}
}

// track records a connection to close with the proxy; false if it is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects a client to the target, once the proxy is not paused, and
// copies both ways.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	if !p.wait() {
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		return // the target is down: the client sees the connection close
	}
	if !p.track(upstream) {
		return
	}
	defer p.untrack(upstream)
	done := make(chan struct{}, 2)
	go func() { p.copy(upstream, client); done <- struct{}{} }()
	go func() { p.copy(client, upstream); done <- struct{}{} }()
	<-done
	// One side ended (and, past the gate, closed both): wait for the other.
	client.Close()
	upstream.Close()
	<-done
}

// copy forwards src to dst; every write, and the close at the end, waits
// while the proxy is paused.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, a reset, or closed by the other direction
			p.wait() // a close is held like a byte
			return
		}
	}
}
