package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/drainmeter/drainmeter/internal/logtest"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err          error
		state, cause string
	}{
		{nil, DBOK, ""},
		{fmt.Errorf("partials: %w", &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}), DBReadOnly, "read_only_sql_transaction"},
		{&pgconn.PgError{Code: "53100"}, DBWriteFailing, "disk_full"},
		{&pgconn.PgError{Code: "53300"}, DBWriteFailing, "too_many_connections"},
		{&pgconn.PgError{Code: "57P03"}, DBUnreachable, "cannot_connect_now"},
		{&pgconn.PgError{Code: "23505"}, DBWriteFailing, "sqlstate_23505"},
		{context.DeadlineExceeded, DBUnreachable, "timeout"},
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), DBUnreachable, "connection"},
	} {
		if s, c := Classify(tc.err); s != tc.state || c != tc.cause {
			t.Errorf("Classify(%v) = %s, %s; want %s, %s", tc.err, s, c, tc.state, tc.cause)
		}
	}
}

// TestDBHealth: a read-only database answers pings and refuses writes:
// read_only. A database that flaps once a second logs one line per
// dbLogEvery with the number of changes, not one line per change.
func TestDBHealth(t *testing.T) {
	var out logtest.Buffer
	now := time.Unix(1_800_000_000, 0)
	h := NewDBHealth(slog.New(slog.NewTextHandler(&out, nil)), func() time.Time { return now })
	ro := &pgconn.PgError{Code: "25006"}
	h.Pinged(nil)
	h.Wrote(ro)
	if s := h.State(); s != DBReadOnly {
		t.Fatalf("pings answered, writes refused read-only: %s, want read_only", s)
	}
	h.Pinged(errors.New("connection refused"))
	if s := h.State(); s != DBUnreachable {
		t.Fatalf("pings unanswered: %s, want unreachable", s)
	}
	now = now.Add(time.Minute)
	h.Pinged(nil)
	h.Wrote(nil)
	if s := h.State(); s != DBOK {
		t.Fatalf("all well: %s", s)
	}
	// 90 flaps in a minute (the connection limit: one write through, the next refused).
	for i := range 90 {
		now = now.Add(667 * time.Millisecond)
		if i%2 == 0 {
			h.Wrote(&pgconn.PgError{Code: "53300"})
		} else {
			h.Wrote(nil)
		}
	}
	lines := out.Lines()
	t.Logf("log:\n%s", strings.Join(lines, "\n"))
	if len(lines) > 6 {
		t.Errorf("%d log lines for one read-only spell and 90 flaps in a minute, want at most 6:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "read-only") || !strings.Contains(lines[0], "database=read_only") {
		t.Errorf("first line: %s", lines[0])
	}
	var flaps bool
	for _, l := range lines {
		if strings.Contains(l, "cause=too_many_connections") && strings.Contains(l, "changes=") {
			flaps = true
		}
		if strings.Contains(l, "unreachable") && strings.Contains(l, "too_many_connections") {
			t.Errorf("the connection limit logged as unreachable: %s", l)
		}
	}
	if !flaps {
		t.Errorf("no line names the connection limit with the number of changes:\n%s", strings.Join(lines, "\n"))
	}
}
