package stats

import (
	"testing"
	"time"
)

func TestRecorderTakesDeltas(t *testing.T) {
	reg := NewRegistry()
	r := NewRecorder(reg)
	if got := r.Take(); len(got) != 0 {
		t.Fatalf("nothing counted: %v", got)
	}
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	a := reg.Drain("a")
	a.Add(FramesAccepted, 5)
	a.Batch(t0)
	a.SeenApp("shop")
	reg.Drain("b") // never moves
	got := r.Take()
	if len(got) != 1 || got[0].Drain != "a" || got[0].Counts[FramesAccepted] != 5 || !got[0].LastBatch.Equal(t0) ||
		len(got[0].Apps) != 1 || got[0].Apps[0] != "shop" {
		t.Fatalf("first take: %+v", got)
	}
	if got := r.Take(); len(got) != 0 {
		t.Fatalf("nothing moved since: %+v", got)
	}
	a.Add(FramesAccepted, 2)
	got = r.Take()
	if len(got) != 1 || got[0].Counts[FramesAccepted] != 2 || !got[0].LastBatch.IsZero() {
		t.Fatalf("second take: %+v (the delta, no new batch)", got)
	}
	a.Batch(t0.Add(time.Minute))
	got = r.Take()
	if len(got) != 1 || !got[0].Counts.IsZero() || !got[0].LastBatch.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a batch alone: %+v", got)
	}
}
