// Package logtest is a test kit for logs: a buffer that goroutines write to
// while a test reads it, for the logs of a server, an engine or a process
// under test; and the port a `drainmeter web` says it listens on.
package logtest

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer that is safe for concurrent use: Write from any
// goroutine (a slog handler, a process's stdout and stderr), String and
// Lines from the test. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns what was written so far split into lines, without leading
// and trailing white space (so no empty last line).
func (b *Buffer) Lines() []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

// listenRe matches the line a `drainmeter web` logs once it listens.
var listenRe = regexp.MustCompile(`msg=listening addr=\S*:(\d+)`)

// ListenedPort reads r, the output of a `drainmeter web`, line by line and
// sends the port of its "msg=listening addr=…:PORT" line on the returned
// channel, once. It goes on reading r to its end, so that the writer never
// blocks. The channel is never closed: select on it with the web's exit and
// a deadline.
func ListenedPort(r io.Reader) <-chan string {
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return port
}
