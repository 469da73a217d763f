package budget

import (
	"sync"
	"testing"
	"testing/fstest"
)

func TestShare(t *testing.T) {
	all := NewShare("all", 100)
	a, b := all.Sub("a", 60), all.Sub("b", 60)
	if !a.TryAcquire(60) || a.TryAcquire(1) {
		t.Fatal("a: its own limit")
	}
	if !b.TryAcquire(40) || b.TryAcquire(1) {
		t.Fatal("b: the parent's limit")
	}
	if a.Used() != 60 || b.Used() != 40 || all.Used() != 100 {
		t.Fatalf("used %d %d %d", a.Used(), b.Used(), all.Used())
	}
	a.Release(30)
	if all.Used() != 70 || !b.TryAcquire(20) || b.Used() != 60 {
		t.Fatalf("after release: %v %v %v", a, b, all)
	}
	if b.TryAcquire(1) {
		t.Fatal("b is full")
	}
	if all.Used() != 90 {
		t.Fatalf("a refused acquisition leaves nothing behind: %v", all)
	}
	var nilShare *Share
	if !nilShare.TryAcquire(1 << 40) {
		t.Fatal("a nil share is unbounded")
	}
	nilShare.Release(1)
}

func TestShareConcurrent(t *testing.T) {
	all := NewShare("all", 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for i := range 8 {
		s := all.Sub("d", 400)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if s.TryAcquire(int64(i%3 + 1)) {
					mu.Lock()
					got += i%3 + 1
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if int64(got) != all.Used() || got > 1000 {
		t.Fatalf("acquired %d, used %d", got, all.Used())
	}
}

func TestDynoMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fs     fstest.MapFS
		mb     int64
		want   int64
		source string
	}{
		{"v2", fstest.MapFS{"memory.max": {Data: []byte("536870912\n")}}, 1024, 512 << 20, "cgroup memory.max"},
		{"v2 unlimited", fstest.MapFS{"memory.max": {Data: []byte("max\n")}}, 1024, 1024 << 20, "MEMORY_AVAILABLE"},
		{"v1", fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("1073741824\n")}}, 0, 1 << 30, "cgroup memory/memory.limit_in_bytes"},
		{"v1 unlimited", fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")}}, 0, 512 << 20, "default 512 MB"},
		{"nothing", fstest.MapFS{}, 0, 512 << 20, "default 512 MB"},
		{"no cgroup", nil, 0, 512 << 20, "default 512 MB"},
		{"absurd MEMORY_AVAILABLE", nil, 1 << 40, 512 << 20, "default 512 MB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fsys fstest.MapFS
			if tc.fs != nil {
				fsys = tc.fs
			}
			got, source := DynoMemory(fsys, tc.mb)
			if got != tc.want || source != tc.source {
				t.Errorf("got %d (%s), want %d (%s)", got, source, tc.want, tc.source)
			}
		})
	}
	if Default(512<<20) != 384<<20 {
		t.Errorf("75 %% of 512 MB: %d", Default(512<<20))
	}
}

func TestNew(t *testing.T) {
	b := New(400 << 20)
	sum := b.Series.Limit() + b.Bodies.Limit() + b.Partials + b.Dedup + b.Conns
	if sum > b.Total*85/100 {
		t.Errorf("the shares add up to %d of %d", sum, b.Total)
	}
	if b.SeriesPerDrain() != b.Series.Limit()/2 || b.BodiesPerDrain() != b.Bodies.Limit()/2 {
		t.Error("per-drain shares")
	}
	if n := b.MaxConnections(); n < 500 {
		t.Errorf("%d connections for a 400 MB budget", n)
	}
}
