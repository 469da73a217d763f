package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drainmeter/drainmeter/internal/fakelibrato"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
)

// cli runs the binary with the given environment and arguments.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, env, args...)
	if err != nil {
		t.Fatalf("drainmeter %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

var drainURLRe = regexp.MustCompile(`https?://(d[0-9a-f]{16}):([0-9a-f]{48})@[^/\s]+/logs`)

// drainCreds extracts the drain id and secret from `drains add` output.
func drainCreds(t *testing.T, out string) (id, secret string) {
	t.Helper()
	m := drainURLRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no drain URL in:\n%s", out)
	}
	return m[1], m[2]
}

func TestDrainsCLI(t *testing.T) {
	dsn := pgtest.NewDatabase(t, false)
	key := postgres.NewKey()
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + key, "DRAINMETER_URL=https://my-drainmeter.herokuapp.com"}

	// Right after Postgres is attached, drains commands may run before any
	// web has migrated the database: they migrate it themselves.
	if _, e, err := cli(t, env, "drains", "list"); err != nil || !strings.Contains(e, "applied migration 0001_drains") {
		t.Fatalf("list before migrate: %v %s", err, e)
	}
	if out := mustCLI(t, env, "migrate"); out != "database is up to date\n" {
		t.Fatalf("migrate after: %q", out)
	}

	out := mustCLI(t, env, "drains", "add", "--name", "myapp", "--librato-user", "me@example.com", "--librato-token", "TOKEN-SECRET-123", "--prefix", "shop")
	id, secret := drainCreds(t, out)
	wantURL := "https://" + id + ":" + secret + "@my-drainmeter.herokuapp.com/logs"
	if !strings.Contains(out, "heroku drains:add '"+wantURL+"' -a myapp\n") {
		t.Fatalf("add output lacks the heroku line:\n%s", out)
	}

	drainsCLICheckErrors(t, env, key)

	list := mustCLI(t, env, "drains", "list")
	if !strings.Contains(list, id) || !strings.Contains(list, "myapp") || !strings.Contains(list, "shop") {
		t.Fatalf("list:\n%s", list)
	}
	if strings.Contains(list, secret) || strings.Contains(list, "TOKEN-SECRET-123") {
		t.Fatal("list printed a secret or token")
	}

	// Nothing readable in the table: dump every column as text.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var dump string
	if err := conn.QueryRow(context.Background(), "SELECT string_agg(d::text, ' ') FROM drains d").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, "TOKEN-SECRET-123") || strings.Contains(dump, secret) ||
		strings.Contains(dump, "544f4b454e2d5345435245542d313233") { // the token in hex
		t.Fatal("the token or secret is readable in the drains table")
	}

	drainsCLICheckRotate(t, env, id, secret)
	mustCLI(t, env, "drains", "set", id, "--source-prefix", "prod", "--process-types=false")
	if list := mustCLI(t, env, "drains", "list"); !strings.Contains(list, "prod") || !strings.Contains(list, "false") {
		t.Fatalf("set not shown:\n%s", list)
	}
	if out := mustCLI(t, env, "drains", "rm", "myapp"); !strings.Contains(out, "removed") {
		t.Fatalf("rm: %s", out)
	}
	if list := mustCLI(t, env, "drains", "list"); strings.Contains(list, id) {
		t.Fatal("removed drain still listed")
	}
	if list := mustCLI(t, env, "drains", "list", "--all"); !strings.Contains(list, id) {
		t.Fatal("removed drain missing from list --all")
	}
}

// drainsCLICheckErrors checks that drains commands given the wrong
// environment or arguments exit with an error that says what is wrong.
func drainsCLICheckErrors(t *testing.T, env []string, key string) {
	t.Helper()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{env[:2], []string{"drains", "add", "--name", "other"}, "pass --url"},
		{[]string{env[0], env[2]}, []string{"drains", "add", "--name", "x", "--librato-user", "u", "--librato-token", "t"}, "DRAINMETER_KEY is not set"},
		{env, []string{"drains", "add", "--name", "myapp"}, `a drain named "myapp" exists already`},
		{env, []string{"drains", "add"}, "needs a --name"},
		{env, []string{"drains", "add", "--name", "x", "--librato-user", "u"}, "give both --librato-user and --librato-token"},
		{env, []string{"drains", "rm", "nosuch"}, `no drain "nosuch"`},
		{env, []string{"drains", "set", "myapp"}, "nothing to change"},
		{env, []string{"drains", "frobnicate"}, "unknown drains command"},
		{[]string{"DRAINMETER_KEY=" + key}, []string{"drains", "list"}, "DATABASE_URL is not set"},
	} {
		o, e, err := cli(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(o+e, tc.want) {
			t.Errorf("%v: exit %v, output %q, want an error containing %q", tc.args, err, o+e, tc.want)
		}
	}
}

// drainsCLICheckRotate checks `drains rotate-secret` on drain myapp (id,
// secret): a new secret, the commands in order, and --finish twice.
func drainsCLICheckRotate(t *testing.T, env []string, id, secret string) {
	t.Helper()
	rot := mustCLI(t, env, "drains", "rotate-secret", "myapp", "--url", "https://my-drainmeter-1a2b3c4d5e6f.herokuapp.com/logs/")
	_, secret2 := drainCreds(t, rot)
	if secret2 == secret || strings.Contains(rot, secret) {
		t.Fatal("rotate-secret printed the old secret or did not change it")
	}
	newURL := "https://" + id + ":" + secret2 + "@my-drainmeter-1a2b3c4d5e6f.herokuapp.com/logs"
	for _, want := range []string{
		"  heroku drains:add '" + newURL + "' -a myapp\n",
		"  heroku drains:remove 'OLD-URL' -a myapp",
		"The old URL keeps working until you remove it, or until the overlap ends at ",
		"rotate-secret myapp --finish",
	} {
		if !strings.Contains(rot, want) {
			t.Errorf("rotate-secret output lacks %q:\n%s", want, rot)
		}
	}
	if strings.Index(rot, "drains:add") > strings.Index(rot, "drains:remove") {
		t.Error("rotate-secret says to remove the old drain before adding the new one")
	}
	if out := mustCLI(t, env, "drains", "rotate-secret", "myapp", "--finish"); !strings.Contains(out, "the overlap is over") {
		t.Errorf("--finish: %s", out)
	}
	if out := mustCLI(t, env, "drains", "rotate-secret", "myapp", "--finish"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second --finish: %s", out)
	}
}

// TestTwoWebsOneDatabase: two web processes share the drains table and the
// batch ids they counted; each drain goes to its own Librato account with
// its own prefixes.
func TestTwoWebsOneDatabase(t *testing.T) {
	t.Parallel() // waits up to a minute for its minute to be posted
	dsn := pgtest.NewDatabase(t, true)
	key := postgres.NewKey()
	fake := fakelibrato.New(map[string]string{"a@example.com": "tok-a", "b@example.com": "tok-b"})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + key, "DRAINMETER_URL=http://127.0.0.1"}
	idA, secA := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "app-a", "--librato-user", "a@example.com", "--librato-token", "tok-a", "--prefix", "pa"))
	idB, secB := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "app-b", "--librato-user", "b@example.com", "--librato-token", "tok-b", "--prefix", "pb", "--source-prefix", "sb"))

	webEnv := append(env[:2:2], "LIBRATO_URL="+ts.URL, "DRAIN_CACHE_TTL=1s", "GRACE=2s")
	w1 := startServer(t, webEnv...)
	w2 := startServer(t, webEnv...)
	now := time.Now()
	batchA := []byte(appLine(now, "web.1", "count#orders=5 measure#lat=12ms"))
	hdr := map[string]string{"Logplex-Frame-Id": "A1B2C3D4E5F60718293A4B5C6D7E8F90", "Logplex-Msg-Count": "1"}
	expect := func(s *server, user, pass string, body []byte, h map[string]string, want int) {
		t.Helper()
		if got := s.do(t, post{user: user, pass: pass, body: body, headers: h}).StatusCode; got != want {
			t.Fatalf("%s as %s: status %d, want %d", s.url, user, got, want)
		}
	}
	expect(w1, idA, secA, batchA, hdr, 200)
	time.Sleep(2 * time.Second)             // logplex retries after a 5 s timeout at the earliest
	expect(w2, idA, secA, batchA, hdr, 200) // the retry reaches the other dyno
	expect(w2, idB, secB, []byte(appLine(now, "web.1", "count#orders=7")), nil, 200)
	expect(w1, idB, secA, batchA, nil, 401)                 // another drain's secret
	expect(w1, idA, "wrong", batchA, nil, 401)              // wrong secret
	expect(w1, "d0123456789abcdef", secA, batchA, nil, 401) // no such drain

	// Rotate B's secret without an overlap and remove A: both take effect
	// within the cache TTL (TestDeployAsTheREADMESays rotates with one).
	_, secB2 := drainCreds(t, mustCLI(t, env, "drains", "rotate-secret", "app-b", "--overlap", "0"))
	mustCLI(t, env, "drains", "rm", "app-a")
	time.Sleep(1500 * time.Millisecond)
	for _, s := range []*server{w1, w2} {
		expect(s, idA, secA, batchA, nil, 401)
		expect(s, idB, secB, batchA, nil, 401)
	}
	// Stamped now: the refusals above took 1.25 s each (the refusal delay),
	// and a line of the first minute could be late by now (GRACE=2s).
	expect(w1, idB, secB2, []byte(appLine(time.Now(), "web.2", "count#orders=1")), nil, 200)

	// The minutes are posted once ready (GRACE + POST_DELAY after they end),
	// by whichever web claims them.
	want := map[string]float64{
		"a@example.com pa.orders web.1":    5, // counted once although posted to both dynos
		"a@example.com pa.orders web":      5,
		"a@example.com pa.lat web.1":       1,
		"b@example.com pb.orders sb.web.1": 7,
		"b@example.com pb.orders sb.web.2": 1,
	}
	eventually(t, 150*time.Second, "every minute posted", func() bool {
		sums := sumsByUser(fake)
		for k, v := range want {
			if sums[k] < v {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // anything posted twice would show up now
	for _, s := range []*server{w1, w2} {
		if _, err := s.stop(t); err != nil {
			t.Fatalf("exit: %v\n%s", err, s.out)
		}
	}
	if !strings.Contains(w2.out.String(), "duplicates=1") {
		t.Errorf("web 2 did not count the retried batch as a duplicate:\n%s", w2.out)
	}
	if d := fake.Duplicates(); len(d) > 0 {
		t.Errorf("%d measurements posted twice", len(d))
	}
	// Per tenant: A's series under pa.* at a@, B's under pb.* with source sb.* at b@.
	sums := sumsByUser(fake)
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %v, want %v", k, sums[k], v)
		}
	}
	for k := range sums {
		user, name, _ := strings.Cut(k, " ")
		if strings.HasPrefix(name, "drainmeter.") {
			continue // drainmeter's own counters of each drain (self-metrics), unprefixed
		}
		if (user == "a@example.com") != strings.HasPrefix(name, "pa.") {
			t.Errorf("series routed to the wrong account: %s", k)
		}
	}
}

// sumsByUser adds up, per "user name source", the values (or counts) the
// fake stored.
func sumsByUser(fake *fakelibrato.Server) map[string]float64 {
	sums := map[string]float64{}
	for _, m := range fake.Measurements() {
		if m.Value != nil {
			sums[m.User+" "+m.Name+" "+m.Source] += *m.Value
		} else if m.Count != nil {
			sums[m.User+" "+m.Name+" "+m.Source] += float64(*m.Count)
		}
	}
	return sums
}
