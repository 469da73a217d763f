package postgres

import (
	"log/slog"
	"sync"
)

// outage logs a component losing Postgres and getting it back, once each,
// however many operations fail in between.
type outage struct {
	log     *slog.Logger
	downMsg string
	upMsg   string
	mu      sync.Mutex
	down    bool
}

func newOutage(log *slog.Logger, downMsg, upMsg string) *outage {
	return &outage{log: log, downMsg: downMsg, upMsg: upMsg}
}

// report records the result of an operation on Postgres.
func (o *outage) report(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err != nil && !o.down:
		o.down = true
		o.log.Error(o.downMsg, "err", err)
	case err == nil && o.down:
		o.down = false
		o.log.Info(o.upMsg)
	}
}
