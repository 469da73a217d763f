package postgres

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The database states /health and the status page show.
const (
	DBOK           = "ok"            // the last writes succeeded
	DBReadOnly     = "read_only"     // Postgres refuses writes: read-only (a failover, a plan over its limit, default_transaction_read_only)
	DBWriteFailing = "write_failing" // reachable, but writes fail: a full disk, the connection limit, …
	DBUnreachable  = "unreachable"   // no answer: the network, Postgres down or restarting
)

// Classify reads a failed operation's error: the database state it shows,
// and a short cause for the logs (a condition name, never the error's text,
// which may quote a query). A nil error is DBOK.
func Classify(err error) (state, cause string) {
	if err == nil {
		return DBOK, ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "25006": // read_only_sql_transaction
			return DBReadOnly, "read_only_sql_transaction"
		case pe.Code == "53100":
			return DBWriteFailing, "disk_full"
		case pe.Code == "53300":
			return DBWriteFailing, "too_many_connections"
		case pe.Code == "53400":
			return DBWriteFailing, "configuration_limit_exceeded"
		case pe.Code == "57P03":
			return DBUnreachable, "cannot_connect_now" // starting up, shutting down, in recovery
		case strings.HasPrefix(pe.Code, "57P"):
			return DBUnreachable, "admin_shutdown"
		case strings.HasPrefix(pe.Code, "08"):
			return DBUnreachable, "connection_exception"
		case pe.Code == "28P01" || pe.Code == "28000":
			return DBWriteFailing, "invalid_authorization"
		}
		return DBWriteFailing, "sqlstate_" + pe.Code
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return DBUnreachable, "timeout"
	case pgconn.Timeout(err):
		return DBUnreachable, "timeout"
	}
	return DBUnreachable, "connection"
}

// DBHealth is the database's state as the last writes and pings found it:
// a ping only tells that Postgres answers, while a read-only or full
// database answers pings and refuses writes. The partial writer reports
// every write (one a second at least: its heartbeat), the pinger every
// ping. It logs each change of state: a recovery at once, a failure at most
// once per dbLogEvery (with the number of changes in between), so that a
// flapping database does not flood the logs.
type DBHealth struct {
	log *slog.Logger
	now func() time.Time

	mu          sync.Mutex
	write, ping result
	logged      string // the state last logged
	loggedAt    time.Time
	changes     int // changes of state since the last line
	current     string
}

type result struct {
	state, cause string
	at           time.Time
}

// dbLogEvery is the least time between two lines about the database state.
const dbLogEvery = 30 * time.Second

// NewDBHealth returns a health that starts ok (the process has just
// reached and migrated the database).
func NewDBHealth(log *slog.Logger, now func() time.Time) *DBHealth {
	return &DBHealth{log: log, now: now, logged: DBOK, current: DBOK,
		write: result{state: DBOK}, ping: result{state: DBOK}}
}

// Wrote records the outcome of a write.
func (h *DBHealth) Wrote(err error) { h.report(&h.write, err) }

// Pinged records the outcome of a ping.
func (h *DBHealth) Pinged(err error) { h.report(&h.ping, err) }

func (h *DBHealth) report(r *result, err error) {
	state, cause := Classify(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	*r = result{state: state, cause: cause, at: h.now()}
	if s := h.stateLocked(); s != h.current {
		h.current = s
		h.changes++
	}
	h.logLocked()
}

// stateLocked combines the two: no answer to pings is unreachable whatever
// the last write said; otherwise the last write tells.
func (h *DBHealth) stateLocked() string {
	if h.ping.state == DBUnreachable {
		return DBUnreachable
	}
	if h.write.state == DBOK && h.ping.state != DBOK {
		return h.ping.state // a ping refused (the connection limit) while writes on open connections succeed
	}
	return h.write.state
}

func (h *DBHealth) logLocked() {
	if h.current == h.logged || h.current != DBOK && h.now().Sub(h.loggedAt) < dbLogEvery {
		return // a recovery is told at once; a failure at most once per dbLogEvery
	}
	cause := h.write.cause
	if h.ping.state == DBUnreachable || h.write.state == DBOK {
		cause = h.ping.cause
	}
	args := []any{"database", h.current}
	if cause != "" {
		args = append(args, "cause", cause)
	}
	if h.changes > 1 {
		args = append(args, "changes", h.changes)
	}
	switch h.current {
	case DBOK:
		msg := "database writes succeed again"
		if h.logged == DBUnreachable {
			msg = "database reachable again"
		}
		h.log.Info(msg, args...)
	case DBUnreachable:
		h.log.Error("database unreachable; still accepting frames", args...)
	case DBReadOnly:
		h.log.Error("database is read-only: nothing is written (partials held in memory); still accepting frames", args...)
	default:
		h.log.Error("database refuses writes: nothing is written (partials held in memory); still accepting frames", args...)
	}
	h.logged, h.loggedAt, h.changes = h.current, h.now(), 0
}

// State returns the database state: DBOK, DBReadOnly, DBWriteFailing or
// DBUnreachable. It also logs a change whose line was held back.
func (h *DBHealth) State() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logLocked()
	return h.current
}

// OK reports whether the state is DBOK.
func (h *DBHealth) OK() bool { return h.State() == DBOK }
