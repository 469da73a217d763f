package drain

import (
	"context"
	"sync"
	"time"
)

// RecentIDs is the in-memory Deduper: the batch ids claimed in the last
// TTL, kept in two generations that rotate every TTL/2, so a claim is
// remembered for between TTL/2 and TTL. A generation that reaches its
// bound — maxIDs ids, or half of maxBytes — rotates early (its ids are then
// remembered for less), so memory stays within two generations.
type RecentIDs struct {
	mu       sync.Mutex
	ttl      time.Duration
	max      int
	maxBytes int64 // per generation
	cur      map[string]struct{}
	prev     map[string]struct{}
	curBytes int64
	rotated  time.Time
}

// NewRecentIDs remembers ids for about ttl, at most maxIDs per generation.
func NewRecentIDs(ttl time.Duration, maxIDs int) *RecentIDs {
	return &RecentIDs{ttl: ttl, max: maxIDs, maxBytes: 1<<63 - 1, cur: make(map[string]struct{}), prev: make(map[string]struct{})}
}

// WithMaxBytes bounds the ids' memory too, to about maxBytes for both
// generations (the ids themselves, the drain's id and the app's name they
// are kept with, and the maps). It returns r.
func (r *RecentIDs) WithMaxBytes(maxBytes int64) *RecentIDs {
	r.mu.Lock()
	r.maxBytes = maxBytes / 2
	r.mu.Unlock()
	return r
}

// idBytes is what one remembered id costs: its key's bytes, the string
// header and the map slot, with the map's growth slack.
func idBytes(key string) int64 { return int64(len(key)) + 64 }

func key(drain, id string) string { return drain + "\x00" + id }

// Claim claims id for drain and reports whether the claim is the first
// (Deduper).
func (r *RecentIDs) Claim(_ context.Context, drain, id string, now time.Time) (bool, error) {
	return r.Mark(drain, id, now), nil
}

// Seen reports whether id is claimed for drain, without claiming it.
func (r *RecentIDs) Seen(drain, id string) bool {
	k := key(drain, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, cur := r.cur[k]
	_, prev := r.prev[k]
	return cur || prev
}

// Mark claims id for drain and reports whether the claim is the first:
// Claim without a context (postgres.Claims keeps its dyno's claims here).
func (r *RecentIDs) Mark(drain, id string, now time.Time) bool {
	k := key(drain, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rotated.IsZero() {
		r.rotated = now
	}
	if now.Sub(r.rotated) >= r.ttl/2 || len(r.cur) >= r.max || r.curBytes+idBytes(k) > r.maxBytes {
		r.prev, r.cur = r.cur, make(map[string]struct{}, len(r.cur))
		r.rotated, r.curBytes = now, 0
	}
	if _, ok := r.cur[k]; ok {
		return false
	}
	if _, ok := r.prev[k]; ok {
		return false
	}
	r.cur[k] = struct{}{}
	r.curBytes += idBytes(k)
	return true
}
