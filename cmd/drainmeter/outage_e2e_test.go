package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

func (s *server) health(t *testing.T) string {
	t.Helper()
	resp := s.do(t, post{method: "GET", path: "/health"})
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitHealth(t *testing.T, s *server, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.health(t), want) {
		if time.Now().After(deadline) {
			t.Fatalf("/health never showed %s: %s", want, s.health(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebDuringDatabaseOutage: with Postgres down, known drains keep being
// accepted (never a 4xx), unknown ones get 503 so that logplex retries,
// /health says so, and everything recovers when Postgres is back.
func TestWebDuringDatabaseOutage(t *testing.T) {
	t.Parallel() // waits up to a minute for its minute to be posted
	pg := pgtest.NewServer(t)
	fake := fakelibrato.New(map[string]string{"a@example.com": "tok"})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	env := []string{"DATABASE_URL=" + pg.URL, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	mustCLI(t, env, "migrate")
	id, secret := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "a", "--librato-user", "a@example.com", "--librato-token", "tok"))
	s := startServer(t, append(env, "LIBRATO_URL="+ts.URL, "DRAIN_CACHE_TTL=1s", "GRACE=2s",
		"PARTIAL_FLUSH_INTERVAL=1s")...)

	send := func(n int, user string, want int) {
		t.Helper()
		resp := s.do(t, post{user: user, pass: secret, body: []byte(appLine(time.Now(), "web.1", "count#hits="+string(rune('0'+n))))})
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d", resp.StatusCode, want)
		}
	}
	send(1, id, 200)
	waitHealth(t, s, `"database":"ok"`)

	pg.Stop()
	time.Sleep(1500 * time.Millisecond) // past the cache TTL: the refresh fails, the cached drain serves
	send(2, id, 200)
	send(1, "d0123456789abcdef", 503)
	waitHealth(t, s, `"database":"unreachable"`)

	pg.Start()
	waitHealth(t, s, `"database":"ok"`)
	send(3, id, 200)

	eventually(t, 150*time.Second, "the minutes posted", func() bool {
		return sumsByUser(fake)["a@example.com hits web.1"] >= 6
	})
	if _, err := s.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if total := sumsByUser(fake)["a@example.com hits web.1"]; total != 6 {
		t.Fatalf("hits = %v, want 6 (1+2+3)", total)
	}
	out := s.out.String()
	for _, want := range []string{"database unreachable; still accepting frames", "database reachable again"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
