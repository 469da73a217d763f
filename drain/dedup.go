package drain

import (
	"sync"
	"time"
)

// RecentIDs is an in-memory Deduper: the ids of batches seen in the last
// TTL, kept in two generations that rotate every TTL/2, so an id is
// remembered for between TTL/2 and TTL and memory stays bounded by MaxIDs.
type RecentIDs struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	cur     map[string]struct{}
	prev    map[string]struct{}
	rotated time.Time
}

// NewRecentIDs remembers ids for about ttl, at most maxIDs per generation.
func NewRecentIDs(ttl time.Duration, maxIDs int) *RecentIDs {
	return &RecentIDs{ttl: ttl, max: maxIDs, cur: make(map[string]struct{}), prev: make(map[string]struct{})}
}

func key(drain, id string) string { return drain + "\x00" + id }

// Claim reports whether id is new for drain and reserves it.
func (r *RecentIDs) Claim(drain, id string, now time.Time) bool {
	k := key(drain, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rotated.IsZero() {
		r.rotated = now
	}
	if now.Sub(r.rotated) >= r.ttl/2 || len(r.cur) >= r.max {
		r.prev, r.cur = r.cur, make(map[string]struct{}, len(r.cur))
		r.rotated = now
	}
	if _, ok := r.cur[k]; ok {
		return false
	}
	if _, ok := r.prev[k]; ok {
		return false
	}
	r.cur[k] = struct{}{}
	return true
}

// Release forgets id, so that a retry of a batch that was not counted is.
func (r *RecentIDs) Release(drain, id string) {
	k := key(drain, id)
	r.mu.Lock()
	delete(r.cur, k)
	delete(r.prev, k)
	r.mu.Unlock()
}

// Commit does nothing: a claim in memory is already a record.
func (r *RecentIDs) Commit(drain, id string) {}
