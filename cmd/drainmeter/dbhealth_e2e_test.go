package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// TestReadOnlyDatabase is issue 19's acceptance run for the database
// health: Postgres turned read-only (ALTER SYSTEM, reloaded: the sessions
// already open turn read-only too, as on a failover to a replica) answers
// pings and refuses every write. Within 10 s /health and the status page
// say read_only, with the partial minutes queued and the oldest minute not
// written; the drain keeps accepting lines, which are written once
// Postgres takes writes again, and the logs call it read-only, never
// unreachable, in a line or two, not one per failed write.
func TestReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	pg := pgtest.NewServer(t)
	env := []string{"DATABASE_URL=" + pg.URL, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	mustCLI(t, env, "migrate")
	id, secret := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "a"))
	const admin = "admin-password-for-the-test"
	s := startServer(t, append(env, "ADMIN_PASSWORD="+admin, "GRACE=2s", "PARTIAL_FLUSH_INTERVAL=1s", "SELF_METRICS=false")...)
	send := func(n int) {
		t.Helper()
		resp := s.do(t, post{user: id, pass: secret, body: []byte(strings.Repeat(appLine(time.Now(), "web.1", "count#hits=1"), n))})
		if resp.StatusCode != 200 {
			t.Fatalf("POST /logs: %d", resp.StatusCode)
		}
	}
	send(2)
	waitHealth(t, s, `"database":"ok"`)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := func(q string) {
		t.Helper()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	sql(`ALTER SYSTEM SET default_transaction_read_only = on`)
	sql(`SELECT pg_reload_conf()`)
	turned := time.Now()
	send(3)
	type snapshot struct {
		Database         string     `json:"database"`
		PartialsQueued   int        `json:"partials_queued"`
		NotRecordedSince *time.Time `json:"not_recorded_since"`
	}
	var snap snapshot
	eventually(t, 10*time.Second, "read_only on /health and /status.json", func() bool {
		code, b := get(t, s.url+"/status.json", "admin", admin)
		if code != 200 {
			t.Fatalf("/status.json: %d %s", code, b)
		}
		if err := json.Unmarshal([]byte(b), &snap); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(s.health(t), `"database":"read_only"`) && snap.Database == "read_only" && snap.NotRecordedSince != nil
	})
	took := time.Since(turned)
	t.Logf("read_only shown %v after the database turned read-only", took.Round(100*time.Millisecond))
	if snap.NotRecordedSince.After(turned) {
		t.Errorf("the oldest minute not written is %v, after the database turned read-only at %v", snap.NotRecordedSince, turned)
	}
	code, page := get(t, s.url+"/", "admin", admin)
	for _, want := range []string{`data-meta="database">read_only<`, "The database is read-only", "not yet recorded", "data-unrecorded"} {
		if code != 200 || !strings.Contains(page, want) {
			t.Errorf("the status page (%d) lacks %s", code, want)
		}
	}

	sql(`SET default_transaction_read_only = off`)
	sql(`ALTER SYSTEM RESET default_transaction_read_only`)
	sql(`SELECT pg_reload_conf()`)
	waitHealth(t, s, `"database":"ok"`)
	eventually(t, 15*time.Second, "everything written", func() bool {
		_, b := get(t, s.url+"/status.json", "admin", admin)
		var after snapshot
		_ = json.Unmarshal([]byte(b), &after)
		return after.Database == "ok" && after.NotRecordedSince == nil && after.PartialsQueued == 0
	})
	// Every line counted: the frames held in memory were written.
	eventually(t, 15*time.Second, "5 frames on /status.json", func() bool {
		_, b := get(t, s.url+"/status.json", "admin", admin)
		var st struct{ Drains []struct{ Frames uint64 } }
		_ = json.Unmarshal([]byte(b), &st)
		return len(st.Drains) == 1 && st.Drains[0].Frames == 5
	})
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	out := s.out.String()
	if !strings.Contains(out, `msg="database is read-only`) {
		t.Errorf("no log line says the database is read-only")
	}
	var dbLines int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "database=read_only") {
			dbLines++
		}
		if strings.Contains(l, "unreachable") {
			t.Errorf("a read-only database logged as unreachable: %s", l)
		}
	}
	if dbLines == 0 || dbLines > 8 {
		t.Errorf("%d log lines about the read-only database, want a few (one per component, rate-limited)", dbLines)
	}
}
