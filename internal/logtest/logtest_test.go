package logtest

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBufferConcurrent: writes from many goroutines all arrive, whole, while
// the test reads (run with -race).
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "g=%d i=%d\n", g, i)
			}
		})
	}
	for range 10 {
		_ = b.String()
	}
	wg.Wait()
	lines := b.Lines()
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	if !slices.Contains(lines, "g=7 i=99") {
		t.Errorf("the last write of goroutine 7 is missing")
	}
}

func TestBufferLines(t *testing.T) {
	var b Buffer
	b.Write([]byte("a\nb\n\n"))
	if got := b.Lines(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Lines() = %q, want [a b]", got)
	}
}

// TestListenedPort: the port of the listening line, once, and the output
// after it is still read (the writer does not block).
func TestListenedPort(t *testing.T) {
	pr, pw := io.Pipe()
	port := ListenedPort(pr)
	go func() {
		fmt.Fprintln(pw, `time=2026-12-07T05:00:00Z level=INFO msg=starting`)
		fmt.Fprintln(pw, `time=2026-12-07T05:00:00Z level=INFO msg=listening addr=[::]:43117 store=memory`)
		for range 1000 {
			fmt.Fprintln(pw, `time=2026-12-07T05:00:01Z level=INFO msg=listening addr=[::]:1`)
		}
		pw.Close()
	}()
	select {
	case p := <-port:
		if p != "43117" {
			t.Errorf("port %q, want 43117", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no port within 10 s")
	}
	select {
	case p := <-port:
		t.Errorf("a second port %q: want one", p)
	case <-time.After(100 * time.Millisecond):
	}
}
