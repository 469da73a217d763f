package postgres

import (
	"log/slog"
	"sync"
	"time"
)

// outage logs a component losing Postgres and getting it back, on each
// change of the database state its operations find (Classify: unreachable,
// read-only, refusing writes), however many operations fail in between.
// A recovery is logged at once, a failure at most once per dbLogEvery: a
// database that flaps (the connection limit lets one operation through and
// not the next) gets a line now and then with the number of changes, not
// one per change.
type outage struct {
	log     *slog.Logger
	downMsg string
	upMsg   string
	now     func() time.Time

	mu       sync.Mutex
	state    string // the state the last operation found
	logged   string // the state last logged
	loggedAt time.Time
	changes  int
	cause    string
}

func newOutage(log *slog.Logger, downMsg, upMsg string) *outage {
	return &outage{log: log, downMsg: downMsg, upMsg: upMsg, now: time.Now, state: DBOK, logged: DBOK}
}

// report records the result of an operation on Postgres.
func (o *outage) report(err error) {
	state, cause := Classify(err)
	o.mu.Lock()
	defer o.mu.Unlock()
	if state != o.state {
		o.state = state
		o.changes++
	}
	if cause != "" {
		o.cause = cause
	}
	if o.state == o.logged || o.state != DBOK && o.now().Sub(o.loggedAt) < dbLogEvery {
		return // a recovery is told at once; a failure at most once per dbLogEvery
	}
	args := []any{"database", o.state}
	if o.changes > 1 {
		args = append(args, "changes", o.changes)
	}
	if o.state == DBOK {
		o.log.Info(o.upMsg, args...)
	} else {
		args = append(args, "cause", o.cause)
		if err != nil {
			args = append(args, "err", err)
		}
		o.log.Error(o.downMsg, args...)
	}
	o.logged, o.loggedAt, o.changes = o.state, o.now(), 0
}
