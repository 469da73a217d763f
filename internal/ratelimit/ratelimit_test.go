package ratelimit

import (
	"testing"
	"time"
)

// TestBucket: full at first, Burst at once, then Rate a second; Tokens
// takes nothing; a clock that goes back earns nothing; Spend never goes
// below none.
func TestBucket(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	b := Bucket{Rate: 2, Burst: 3}
	if got := b.Tokens(t0); got != 3 {
		t.Fatalf("a new bucket holds %v, want 3 (full)", got)
	}
	for i := range 3 {
		if !b.Take(t0) {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if b.Take(t0) {
		t.Fatal("a fourth take at once allowed: burst 3")
	}
	if got := b.Tokens(t0.Add(250 * time.Millisecond)); got != 0.5 {
		t.Errorf("after 250 ms at 2/s: %v tokens, want 0.5", got)
	}
	if b.Take(t0.Add(250 * time.Millisecond)) {
		t.Error("a take with half a token allowed")
	}
	if !b.Take(t0.Add(500 * time.Millisecond)) {
		t.Error("a take with one token refused")
	}
	if got := b.Tokens(t0.Add(time.Hour)); got != 3 {
		t.Errorf("after an hour: %v tokens, want the burst, 3", got)
	}
	if got := b.Tokens(t0.Add(-time.Hour)); got != 0 {
		t.Errorf("with the clock an hour back: %v tokens, want 0 (nothing earned)", got)
	}
	b.Spend(t0.Add(500 * time.Millisecond))
	if got := b.Tokens(t0.Add(500 * time.Millisecond)); got != 0 {
		t.Errorf("Spend on an empty bucket: %v tokens, want 0", got)
	}
	b.Spend(t0.Add(2 * time.Second)) // 3 s earned, capped at 3, one spent
	if got := b.Tokens(t0.Add(2 * time.Second)); got != 2 {
		t.Errorf("Spend after 1.5 s: %v tokens, want 2", got)
	}
}
