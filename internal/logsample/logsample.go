// Package logsample writes lines that outsiders can cause, at most one a
// second per kind.
package logsample

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log writes per-request lines (a refused request, a body cut short, a
// batch with bad framing, a refused owner): at most one line per message
// and reason per second, with the count of such events since the previous
// line, so that a flood of bad requests costs a line a second, not a line
// a request.
type Log struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	last map[sampleKey]*sample
}

type sampleKey struct{ msg, reason string }

type sample struct {
	at time.Time
	n  uint64
}

// New returns a Log writing to log.
func New(log *slog.Logger, now func() time.Time) *Log {
	return &Log{log: log, now: now, last: map[sampleKey]*sample{}}
}

// Sampled logs msg with reason and args, unless a line with the same
// message and reason was written less than a second ago; the line written
// carries count, the events since the previous one. msg and reason must be
// constants: they key the samples.
func (s *Log) Sampled(level slog.Level, msg, reason string, args ...any) {
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	now := s.now()
	k := sampleKey{msg, reason}
	s.mu.Lock()
	c := s.last[k]
	if c == nil {
		c = &sample{}
		s.last[k] = c
	}
	c.n++
	if !c.at.IsZero() && now.Sub(c.at) < time.Second {
		s.mu.Unlock()
		return
	}
	n := c.n
	c.at, c.n = now, 0
	s.mu.Unlock()
	s.log.Log(context.Background(), level, msg, append([]any{"reason", reason, "count", n}, args...)...)
}
