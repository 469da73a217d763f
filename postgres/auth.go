package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DrainCache looks drains up by id with a cache, so that the drain endpoint
// makes no database round trip per request in the steady state.
//
//   - An entry is refreshed in the background once it is TTL/2 old, while
//     it keeps serving, so that a busy drain's requests never wait on the
//     database; one that reached TTL unrefreshed (an idle drain) waits for
//     its refresh. A removed or rotated drain thus stops working within
//     TTL. While the database is unreachable the cached entry keeps
//     serving: frames keep being accepted.
//   - No lock is held across a database round trip: lookups of distinct
//     drains run in parallel, concurrent lookups of one id share one query,
//     and a lookup gives up after LookupTimeout.
//   - Unknown ids are remembered too (for NegativeTTL), in a bounded map of
//     their own: a flood of them never evicts a known drain.
//   - Lookups of ids the cache does not hold (a new drain, or made-up ids)
//     reach the database at most UnknownLookupRate a second (bursts of
//     UnknownLookupBurst); beyond that Lookup answers ErrLookupLimited at
//     once, and the drain endpoint 503 (logplex retries). Known drains are
//     never limited.
type DrainCache struct {
	drains *Drains
	ttl    time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	known   map[string]*cacheEntry // drains that exist (or existed: a removed one's minutes still go out)
	unknown map[string]time.Time   // ids found not to exist, and when
	flights map[string]*flight     // lookups in progress
	lookups tokenBucket            // lookups of ids not cached
}

type cacheEntry struct {
	drain   *Drain
	fetched time.Time
}

type flight struct {
	done  chan struct{}
	drain *Drain
	err   error
}

const (
	// LookupTimeout bounds one database lookup: well inside logplex's 5 s.
	LookupTimeout = 1500 * time.Millisecond
	// NegativeTTL is how long an unknown id is remembered.
	NegativeTTL = 10 * time.Second
	// maxUnknown bounds the unknown ids remembered.
	maxUnknown = 10_000
	// UnknownLookupRate and UnknownLookupBurst bound the database lookups
	// of ids the cache does not hold, across the process.
	UnknownLookupRate  = 50 // a second
	UnknownLookupBurst = 100
)

// ErrLookupLimited is Lookup's answer for an id it does not hold once the
// lookups of such ids are over their rate: the id may be a new drain, so
// the caller asks for a retry.
var ErrLookupLimited = errors.New("postgres: too many lookups of drain ids not cached; retry later")

// NewDrainCache returns a cache over drains.
func NewDrainCache(drains *Drains, ttl time.Duration, log *slog.Logger, now func() time.Time) *DrainCache {
	return &DrainCache{drains: drains, ttl: ttl, log: log, now: now,
		known: map[string]*cacheEntry{}, unknown: map[string]time.Time{}, flights: map[string]*flight{},
		lookups: tokenBucket{rate: UnknownLookupRate, burst: UnknownLookupBurst}}
}

// Lookup returns the drain with this id (check DisabledAt before accepting
// its frames), nil if there is none, or an error when the database could not
// tell and nothing was cached.
func (c *DrainCache) Lookup(ctx context.Context, id string) (*Drain, error) {
	now := c.now()
	c.mu.Lock()
	if e := c.known[id]; e != nil {
		age := now.Sub(e.fetched)
		f := c.flights[id]
		if age >= c.ttl/2 && f == nil {
			f = c.startLocked(id) // refresh ahead, in the background
		}
		c.mu.Unlock()
		if age < c.ttl {
			return e.drain, nil
		}
		select { // too old to trust: wait for the refresh (it serves the entry if the database is away)
		case <-f.done:
			return f.drain, f.err
		case <-ctx.Done():
			return e.drain, nil
		}
	}
	if at, ok := c.unknown[id]; ok && now.Sub(at) < NegativeTTL {
		c.mu.Unlock()
		return nil, nil
	}
	f := c.flights[id]
	if f == nil {
		if !c.lookups.take(now) {
			c.mu.Unlock()
			return nil, ErrLookupLimited
		}
		f = c.startLocked(id)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.drain, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tokenBucket allows rate events a second on average, burst at once.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// take reports whether an event is allowed at now, and counts it if so.
func (b *tokenBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Refresh looks the drain up now, whatever its age, and returns it; on a
// database error it returns what is cached, if anything, and the error.
func (c *DrainCache) Refresh(ctx context.Context, id string) (*Drain, error) {
	c.mu.Lock()
	f := c.flights[id]
	if f == nil {
		f = c.startLocked(id)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		d, _ := c.Cached(id)
		return d, f.err
	}
	return f.drain, nil
}

// startLocked starts a lookup of id. c.mu is held.
func (c *DrainCache) startLocked(id string) *flight {
	f := &flight{done: make(chan struct{})}
	c.flights[id] = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), LookupTimeout)
		d, err := c.drains.ByID(ctx, id)
		cancel()
		now := c.now()
		c.mu.Lock()
		switch {
		case errors.Is(err, ErrNotFound):
			d, err = nil, nil
			delete(c.known, id)
			if len(c.unknown) >= maxUnknown {
				for k, at := range c.unknown { // forget the expired, or else everything
					if now.Sub(at) >= NegativeTTL {
						delete(c.unknown, k)
					}
				}
				if len(c.unknown) >= maxUnknown {
					clear(c.unknown)
				}
			}
			c.unknown[id] = now
		case err != nil:
			if e := c.known[id]; e != nil {
				c.log.Warn("drain lookup failed; using the cached drain", "drain", id, "err", err)
				d, err = e.drain, nil
				e.fetched = now.Add(-c.ttl / 2) // serve it a while longer, then try again
			}
		default:
			c.known[id] = &cacheEntry{drain: d, fetched: now}
			delete(c.unknown, id)
		}
		delete(c.flights, id)
		c.mu.Unlock()
		f.drain, f.err = d, err
		close(f.done)
	}()
	return f
}

// Cached returns the cached drain without touching the database.
func (c *DrainCache) Cached(id string) (*Drain, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.known[id]
	if e == nil {
		return nil, false
	}
	return e.drain, true
}

// Known returns every drain in the cache.
func (c *DrainCache) Known() []*Drain {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Drain, 0, len(c.known))
	for _, e := range c.known {
		out = append(out, e.drain)
	}
	return out
}
