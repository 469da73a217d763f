package logtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
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
