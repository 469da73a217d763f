// Package ratelimit is the token bucket behind drainmeter's limits on what
// strangers can make it do: lookups of drain ids it does not know, re-checks
// of credentials, failed sign-ins to the pages. It runs on the caller's
// clock, so that tests and the caller's lock decide time and concurrency.
package ratelimit

import "time"

// Bucket earns Rate tokens a second, holds at most Burst, and starts full.
// It is not safe for concurrent use: its owner holds a lock around it.
type Bucket struct {
	Rate, Burst float64

	tokens float64
	last   time.Time // when tokens was brought up to date; zero: never (full)
}

// Tokens returns the tokens the bucket holds at now, taking none. A clock
// that goes back earns nothing.
func (b *Bucket) Tokens(now time.Time) float64 {
	if b.last.IsZero() {
		return b.Burst
	}
	if d := now.Sub(b.last); d > 0 {
		return min(b.Burst, b.tokens+d.Seconds()*b.Rate)
	}
	return b.tokens
}

// Take takes a token at now if the bucket holds a whole one, and reports
// whether it did.
func (b *Bucket) Take(now time.Time) bool {
	b.fill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Spend takes a token at now whether or not the bucket holds a whole one,
// down to none: for what is counted after it happened (a failed sign-in).
func (b *Bucket) Spend(now time.Time) {
	b.fill(now)
	b.tokens = max(b.tokens-1, 0)
}

// fill brings the tokens up to date at now.
func (b *Bucket) fill(now time.Time) {
	b.tokens = b.Tokens(now)
	if now.After(b.last) {
		b.last = now
	}
}
