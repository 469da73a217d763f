package rollup

import "time"

// The minutes of the pipeline are unix seconds, multiples of 60. These are
// the one definition of a minute's start, of when a minute closes, and of
// how a minute is written in logs; the store, the durable mode's writers
// and watermark (postgres) and the outlets all use them.

// FloorMinute returns the start of the minute holding unix (seconds),
// before 1970 too.
func FloorMinute(unix int64) int64 {
	if unix < 0 && unix%60 != 0 {
		return unix - unix%60 - 60
	}
	return unix - unix%60
}

// ClosedThrough is the close rule: a minute closes grace after it ends.
// It returns the start of the latest minute closed at now; every minute
// starting at or before it is closed, every later one open.
func ClosedThrough(now time.Time, grace time.Duration) int64 {
	return FloorMinute(now.Add(-grace).Unix() - 60)
}

// MinuteString writes the minute starting at start as logs show it
// (RFC 3339, UTC).
func MinuteString(start int64) string { return time.Unix(start, 0).UTC().Format(time.RFC3339) }
