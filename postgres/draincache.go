package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/drainmeter/drainmeter/internal/ratelimit"
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
//   - A credential that fails against a cached entry may be a secret rotated
//     since the entry was read: Recheck reads the drain again, so that a new
//     secret works at once on every dyno. It is rate-limited per drain
//     (RecheckInterval) and overall (RecheckRate), so that wrong passwords
//     cannot turn into a database round trip each.
//   - The set of every drain id is loaded at start (LoadIDs) and every
//     IDRefresh (RunIDs). An id in it that is not cached is looked up at
//     once, never rate-limited. Lookups of ids outside it (a drain added
//     since the last load, or made-up ids) reach the database at most
//     UnknownLookupRate a second (bursts of UnknownLookupBurst); beyond
//     that Lookup answers ErrLookupLimited at once, and the drain endpoint
//     503 (logplex retries). So made-up ids never cost a drain that exists
//     anything, right after a start too.
type DrainCache struct {
	drains *Drains
	ttl    time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	known    map[string]*cacheEntry // drains that exist (or existed: a removed one's minutes still go out)
	unknown  map[string]time.Time   // ids found not to exist, and when
	flights  map[string]*flight     // lookups in progress
	forced   map[string]time.Time   // when Recheck last started a lookup of each drain
	rechecks ratelimit.Bucket       // Recheck's lookups of drains it holds
	lookups  ratelimit.Bucket       // lookups of ids not cached
	ids      map[string]struct{}    // every drain id, as of the last LoadIDs (nil: never loaded)
}

type cacheEntry struct {
	drain   *Drain
	fetched time.Time // when its lookup ended
	started time.Time // when its lookup started: it saw every change committed before
}

type flight struct {
	start time.Time
	done  chan struct{}
	drain *Drain
	err   error
	stale error // the lookup failed and drain is the cached entry: why
}

const (
	// LookupTimeout bounds one database lookup: well inside logplex's 5 s.
	LookupTimeout = 1500 * time.Millisecond
	// NegativeTTL is how long an unknown id is remembered.
	NegativeTTL = 10 * time.Second
	// maxUnknown bounds the unknown ids remembered.
	maxUnknown = 10_000
	// RecheckInterval is how often Recheck reads one drain at most.
	RecheckInterval = time.Second
	// RecheckRate is how many lookups a second Recheck starts at most, all
	// drains together (with bursts of as many).
	RecheckRate = 20

	// UnknownLookupRate and UnknownLookupBurst bound the database lookups
	// of ids the cache does not hold, across the process.
	UnknownLookupRate  = 50 // a second
	UnknownLookupBurst = 100

	// IDRefresh is how often the set of drain ids is read again.
	IDRefresh = 5 * time.Second
)

// LoadIDs reads the set of every drain id (disabled ones included: they
// exist, and are refused for that).
func (c *DrainCache) LoadIDs(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := c.drains.pool.Query(ctx, `SELECT id FROM drains`)
	if err != nil {
		return fmt.Errorf("drain ids: %w", err)
	}
	ids := map[string]struct{}{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("drain ids: %w", err)
		}
		ids[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("drain ids: %w", err)
	}
	c.mu.Lock()
	c.ids = ids
	c.mu.Unlock()
	return nil
}

// RunIDs reloads the set of drain ids every IDRefresh until ctx is done
// (a failed load keeps the set it had).
func (c *DrainCache) RunIDs(ctx context.Context) {
	t := time.NewTicker(IDRefresh)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.LoadIDs(ctx)
		if ctx.Err() != nil {
			return
		}
		if (err != nil) != failing {
			failing = err != nil
			if failing {
				c.log.Warn("cannot reload the drain ids; keeping the last set", "err", err)
			}
		}
	}
}

// ErrRecheckBusy means that Recheck could not read the drain now (too many
// credentials failed at once): the drain endpoint answers 503, and logplex
// retries.
var ErrRecheckBusy = errors.New("auth: too many failed credentials to re-check now")

// ErrLookupLimited is Lookup's answer for an id it does not hold once the
// lookups of such ids are over their rate: the id may be a new drain, so
// the caller asks for a retry.
var ErrLookupLimited = errors.New("postgres: too many lookups of drain ids not cached; retry later")

// NewDrainCache returns a cache over drains.
func NewDrainCache(drains *Drains, ttl time.Duration, log *slog.Logger, now func() time.Time) *DrainCache {
	return &DrainCache{drains: drains, ttl: ttl, log: log, now: now,
		known: map[string]*cacheEntry{}, unknown: map[string]time.Time{}, flights: map[string]*flight{},
		forced:   map[string]time.Time{},
		rechecks: ratelimit.Bucket{Rate: RecheckRate, Burst: RecheckRate},
		lookups:  ratelimit.Bucket{Rate: UnknownLookupRate, Burst: UnknownLookupBurst}}
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
		if _, exists := c.ids[id]; !exists && !c.lookups.Take(now) {
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

// Recheck reads drain id again after a credential failed against its
// cached entry (a secret rotated since it was read), and returns the drain
// as a lookup that started after the call saw it (nil: there is no such
// drain any more). Lookups of one drain in flight are shared and no lock is
// held while one runs. A drain is read at most once per RecheckInterval:
// calls in between wait for the next lookup (within ctx). Beyond RecheckRate
// lookups a second, all drains together, it returns ErrRecheckBusy. An
// error means it could not tell (the handler answers 503): unlike Lookup,
// it never answers with the cached entry when the database is away.
func (c *DrainCache) Recheck(ctx context.Context, id string) (*Drain, error) {
	asked := c.now()
	for {
		var wait time.Duration
		c.mu.Lock()
		if e := c.known[id]; e != nil && !e.started.Before(asked) {
			c.mu.Unlock()
			return e.drain, nil // read since: another call's lookup
		}
		f := c.flights[id]
		if f == nil {
			now := c.now()
			if next := c.forced[id].Add(RecheckInterval); now.Before(next) {
				wait = next.Sub(now)
			} else if !c.rechecks.Take(now) {
				c.mu.Unlock()
				return nil, ErrRecheckBusy
			} else {
				c.forceLocked(id, now)
				f = c.startLocked(id)
			}
		}
		c.mu.Unlock()
		if f == nil {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			continue
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		if f.stale != nil {
			return nil, f.stale // the database could not tell: 503, logplex retries
		}
		if !f.start.Before(asked) {
			return f.drain, nil
		}
		// That lookup started before the call: it may have missed the
		// change. Wait for one that did not.
	}
}

// Crowded reports whether failed credentials are being rate-limited now:
// the lookups of ids it does not hold, or the re-checks of drains it does,
// are over their rate. The drain endpoint then answers every credential
// failure alike (503, after the same delay), so that which budget ran out
// never tells whether an id exists.
func (c *DrainCache) Crowded() bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rechecks.Tokens(now) < 1 || c.lookups.Tokens(now) < 1
}

// forceLocked records a lookup started by Recheck. c.mu is held.
func (c *DrainCache) forceLocked(id string, now time.Time) {
	if len(c.forced) >= maxUnknown {
		for k, at := range c.forced {
			if now.Sub(at) >= RecheckInterval {
				delete(c.forced, k)
			}
		}
	}
	c.forced[id] = now
}

// startLocked starts a lookup of id. c.mu is held.
func (c *DrainCache) startLocked(id string) *flight {
	f := &flight{start: c.now(), done: make(chan struct{})}
	c.flights[id] = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), LookupTimeout)
		d, err := c.drains.ByID(ctx, id)
		cancel()
		now := c.now()
		c.mu.Lock()
		var stale error
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
			if c.ids != nil {
				delete(c.ids, id)
			}
		case err != nil:
			if e := c.known[id]; e != nil {
				c.log.Warn("drain lookup failed; using the cached drain", "drain", id, "err", err)
				d, err, stale = e.drain, nil, err
				e.fetched = now.Add(-c.ttl / 2) // serve it a while longer, then try again
			}
		default:
			c.known[id] = &cacheEntry{drain: d, fetched: now, started: f.start}
			delete(c.unknown, id)
			if c.ids != nil {
				c.ids[id] = struct{}{}
			}
		}
		delete(c.flights, id)
		c.mu.Unlock()
		f.drain, f.err, f.stale = d, err, stale
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
