package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DrainCache looks drains up by id with a cache, so that the drain endpoint
// makes no database round trip per request in the steady state. An entry
// (found or not) is refreshed after TTL, so a removed or rotated drain stops
// working within TTL. While the database is unreachable, a stale entry keeps
// serving: frames keep being accepted.
type DrainCache struct {
	drains *Drains
	ttl    time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	drain   *Drain // nil: no such drain (a removed one is kept: its accepted minutes still go out)
	fetched time.Time
	mu      sync.Mutex // one refresh at a time per id
}

// maxCached bounds the cache, which unknown ids would otherwise grow.
const maxCached = 100_000

// NewDrainCache returns a cache over drains.
func NewDrainCache(drains *Drains, ttl time.Duration, log *slog.Logger, now func() time.Time) *DrainCache {
	return &DrainCache{drains: drains, ttl: ttl, log: log, now: now, entries: map[string]*cacheEntry{}}
}

// Lookup returns the drain with this id (check DisabledAt before accepting
// its frames), nil if there is none, or an error when the database could not
// tell and nothing was cached.
func (c *DrainCache) Lookup(ctx context.Context, id string) (*Drain, error) {
	c.mu.Lock()
	e := c.entries[id]
	if e == nil {
		if len(c.entries) >= maxCached {
			c.entries = map[string]*cacheEntry{}
		}
		e = &cacheEntry{}
		c.entries[id] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	if !e.fetched.IsZero() && now.Sub(e.fetched) < c.ttl {
		return e.drain, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := c.drains.ByID(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		d = nil
	case err != nil:
		if !e.fetched.IsZero() {
			c.log.Warn("drain lookup failed; using the cached drain", "drain", id, "err", err)
			return e.drain, nil
		}
		return nil, err
	}
	e.drain, e.fetched = d, now
	return d, nil
}

// Cached returns the cached drain without touching the database.
func (c *DrainCache) Cached(id string) (*Drain, bool) {
	c.mu.Lock()
	e := c.entries[id]
	c.mu.Unlock()
	if e == nil {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.drain, !e.fetched.IsZero()
}
