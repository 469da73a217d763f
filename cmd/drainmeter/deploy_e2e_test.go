package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/pgtest"
)

// The README's Heroku steps, walked as far as they run here: what Heroku
// does is played by the test (config vars are the environment, a restart
// is a new process, `heroku run` is the CLI with the dyno metadata).

// herokuSecret is what app.json's "generator": "secret" makes today: 64 hex
// digits (drainmeter takes it as opaque).
func herokuSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// The app's address on Heroku, as the dyno metadata tells it.
const (
	herokuApp    = "my-drainmeter"
	herokuDomain = "my-drainmeter-1a2b3c4d5e6f.herokuapp.com"
)

// heroku-run environment: a one-off dyno after
// `heroku labs:enable runtime-dyno-metadata`.
func oneOffEnv(env []string) []string {
	return append(env[:len(env):len(env)], "DYNO=run.1234", "HEROKU_APP_NAME="+herokuApp,
		"HEROKU_APP_DEFAULT_DOMAIN_NAME="+herokuDomain)
}

// rollupRe matches the log outlet's count lines (the built-in drain's
// carry their app).
var rollupRe = regexp.MustCompile(`(?m)^at=rollup drain=(\S+) minute=\S+ kind=count name=(\S+) source=(\S+)(?: app=\S+)? value=(\S+)$`)

// countRollups adds up the values of a drain's count rollups of name and
// source in the output.
func countRollups(out, drain, name, source string) float64 {
	var sum float64
	for _, m := range rollupRe.FindAllStringSubmatch(out, -1) {
		if m[1] == drain && m[2] == name && m[3] == source {
			v, _ := strconv.ParseFloat(m[4], 64)
			sum += v
		}
	}
	return sum
}

// TestDeployAsTheREADMESays: config vars before the first push, a first
// boot without a database, Postgres attached (the dynos restart on an
// unmigrated database and must come up), `drains add` as on a one-off dyno,
// then a secret rotation with the overlap while traffic flows: every batch
// accepted, every line in the rollups, once.
func TestDeployAsTheREADMESays(t *testing.T) {
	t.Parallel() // waits a minute and more for its minutes to be posted

	drainSecret, webEnv, key := deployFirstBoots(t)
	w, dsn := deployAttachPostgres(t, webEnv)
	// heroku run -a my-drainmeter -- drainmeter drains add --name myapp
	cliEnv := oneOffEnv([]string{key, dsn})
	id, secret := deployDrainsAdd(t, cliEnv)

	// Traffic: a batch every 50 ms, 5 lines each, through whichever drain
	// URLs the app has.
	tr := deployStartTraffic(w, id, secret)
	time.Sleep(4 * time.Second)
	secret2 := deployRotateSecret(t, cliEnv, tr, id, secret)
	close(tr.stop)
	<-tr.done

	tr.refusedMu.Lock()
	if len(tr.refused) > 0 {
		t.Errorf("%d batches refused, e.g. %s", len(tr.refused), tr.refused[0])
	}
	tr.refusedMu.Unlock()
	if got := w.do(t, post{user: id, pass: "not-the-secret", body: []byte(appLine(time.Now(), "web.1", "count#deploy.bad=1"))}).StatusCode; got != 401 {
		t.Errorf("a wrong secret: status %d, want 401", got)
	}

	deployCheckRollups(t, w, id, float64(tr.sent.Load()))
	if _, err := w.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, w.out)
	}
	for _, s := range []string{drainSecret, secret, secret2} {
		if strings.Contains(w.out.String(), s) {
			t.Error("a secret was logged")
		}
	}
}

// deployFirstBoots plays the config vars before the first push and the
// first boots without a database: the first web dyno with DRAIN_SECRET
// posts its rollups in the log; a restart with DRAINMETER_KEY exits
// cleanly. It returns the drain secret, the web's environment and the
// DRAINMETER_KEY=… variable.
func deployFirstBoots(t *testing.T) (drainSecret string, webEnv []string, key string) {
	t.Helper()
	// heroku config:set DRAIN_SECRET=… (and no outlet: rollups in the log);
	// git push heroku main: the first web dyno boots.
	drainSecret = herokuSecret()[:48]
	webEnv = []string{"DRAIN_SECRET=" + drainSecret, "DYNO=web.1"}
	w := startProcess(t, webEnv...)
	if !strings.Contains(w.out.String(), " store=memory outlets=log ") {
		t.Errorf("the start-up line does not say where rollups go:\n%s", w.out)
	}
	now := time.Now()
	if got := w.do(t, post{user: "myapp", pass: drainSecret, body: []byte(appLine(now, "web.1", "count#deploy.first=3"))}).StatusCode; got != 200 {
		t.Fatalf("the README's drain URL: status %d", got)
	}
	if _, err := w.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, w.out)
	}
	if got := countRollups(w.out.String(), "default", "deploy.first", "web.1"); got != 3 {
		t.Fatalf("first rollup: deploy.first=%v, want 3:\n%s", got, w.out)
	}

	// heroku config:set DRAINMETER_KEY=…: a restart, still no database.
	key = "DRAINMETER_KEY=" + herokuSecret()
	webEnv = append(webEnv, key)
	w = startProcess(t, webEnv...)
	if _, err := w.stop(t); err != nil {
		t.Fatalf("exit with DRAINMETER_KEY and no database: %v\n%s", err, w.out)
	}
	return drainSecret, webEnv, key
}

// deployAttachPostgres plays heroku addons:create heroku-postgresql:
// DATABASE_URL appears and the dynos restart, with no release phase: the
// web it returns has migrated the database. It also returns the
// DATABASE_URL=… variable.
func deployAttachPostgres(t *testing.T, webEnv []string) (w *server, dsn string) {
	t.Helper()
	dsn = "DATABASE_URL=" + pgtest.NewDatabase(t, false)
	webEnv = append(webEnv, dsn,
		// Shorter waits than the defaults, so that the minutes are posted
		// within the test; DRAIN_CACHE_TTL stays at its 30 s.
		"GRACE=5s", "PARTIAL_FLUSH_INTERVAL=2s", "SHUTDOWN_TIMEOUT=15s")
	w = startProcess(t, webEnv...)
	if !strings.Contains(w.out.String(), `msg="database migrated" applied=0001_drains,`) {
		t.Fatalf("web did not migrate the new database:\n%s", w.out)
	}
	return w, dsn
}

// deployDrainsAdd runs `drains add --name myapp` on a one-off dyno and
// checks it prints the heroku drains:add command with the app's domain.
func deployDrainsAdd(t *testing.T, cliEnv []string) (id, secret string) {
	t.Helper()
	out := mustCLI(t, cliEnv, "drains", "add", "--name", "myapp")
	id, secret = drainCreds(t, out)
	want := "heroku drains:add 'https://" + id + ":" + secret + "@" + herokuDomain + "/logs' -a myapp\n"
	if !strings.Contains(out, want) {
		t.Fatalf("drains add does not print %q:\n%s", want, out)
	}
	return id, secret
}

// deployCreds are a drain URL's credentials.
type deployCreds struct{ user, pass string }

// deployTraffic is TestDeployAsTheREADMESays's traffic: what it sends
// through (urls, changed as the app's drains change), how many lines were
// accepted and which batches were refused. Close stop and wait for done
// before reading sent or refused.
type deployTraffic struct {
	urls      atomic.Pointer[[]deployCreds]
	sent      atomic.Int64
	refusedMu sync.Mutex
	refused   []string
	stop      chan struct{}
	done      chan struct{}
}

// deployStartTraffic starts sending a batch every 50 ms, 5 lines each, to
// web w through drain id with secret, until tr.stop is closed.
func deployStartTraffic(w *server, id, secret string) *deployTraffic {
	tr := &deployTraffic{stop: make(chan struct{}), done: make(chan struct{})}
	tr.urls.Store(&[]deployCreds{{id, secret}})
	go func() {
		defer close(tr.done)
		client := &http.Client{Timeout: 10 * time.Second}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			var body bytes.Buffer
			for range 5 {
				body.WriteString(appLine(time.Now(), "web.1", "count#deploy.lines=1"))
			}
			cs := *tr.urls.Load()
			c := cs[i%len(cs)] // with two drains, each line goes through one of them
			req, _ := http.NewRequest(http.MethodPost, w.url+"/logs", &body)
			req.SetBasicAuth(c.user, c.pass)
			req.Header.Set("Content-Type", "application/logplex-1")
			req.Header.Set("Logplex-Msg-Count", "5")
			req.Header.Set("Logplex-Frame-Id", fmt.Sprintf("%032X", i))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				tr.refusedMu.Lock()
				tr.refused = append(tr.refused, fmt.Sprintf("batch %d: %v %v", i, err, resp))
				tr.refusedMu.Unlock()
				continue
			}
			tr.sent.Add(5)
		}
	}()
	return tr
}

// deployRotateSecret plays a secret rotation while the traffic flows:
// `drains rotate-secret` prints the commands, then the traffic goes
// through both URLs, then through the new one only. It returns the new
// secret.
func deployRotateSecret(t *testing.T, cliEnv []string, tr *deployTraffic, id, secret string) (secret2 string) {
	t.Helper()
	// drainmeter drains rotate-secret myapp (1 h overlap), with the web's
	// cache holding the old secret.
	rot := mustCLI(t, cliEnv, "drains", "rotate-secret", "myapp")
	_, secret2 = drainCreds(t, rot)
	for _, want := range []string{
		"heroku drains:add 'https://" + id + ":" + secret2 + "@" + herokuDomain + "/logs' -a myapp\n",
		"heroku drains:remove 'OLD-URL' -a myapp",
	} {
		if !strings.Contains(rot, want) {
			t.Errorf("rotate-secret does not print %q:\n%s", want, rot)
		}
	}
	// heroku drains:add NEW: logplex sends through both URLs ...
	tr.urls.Store(&[]deployCreds{{id, secret}, {id, secret2}})
	time.Sleep(4 * time.Second)
	// ... heroku drains:remove OLD: through the new one only.
	tr.urls.Store(&[]deployCreds{{id, secret2}})
	time.Sleep(4 * time.Second)
	return secret2
}

// deployCheckRollups checks that every line sent (total) is in the
// rollups the lanes post (the log outlet: this drain has no other), once.
func deployCheckRollups(t *testing.T, w *server, id string, total float64) {
	t.Helper()
	eventually(t, 150*time.Second, "every line posted", func() bool {
		return countRollups(w.out.String(), id, "deploy.lines", "web.1") >= total
	})
	time.Sleep(3 * time.Second) // a second post would show now
	if got := countRollups(w.out.String(), id, "deploy.lines", "web.1"); got != total {
		t.Errorf("rollups count %v lines, %v were sent", got, total)
	}
	if got := countRollups(w.out.String(), id, "deploy.lines", "web"); got != total {
		t.Errorf("the process-type rollup counts %v lines, %v were sent", got, total)
	}
}

// TestDeployOpaqueKey: a DRAINMETER_KEY that is neither hex nor base64 (an
// opaque 40-character secret) seals credentials that the web opens.
func TestDeployOpaqueKey(t *testing.T) {
	env := []string{"DATABASE_URL=" + pgtest.NewDatabase(t, false), "DRAINMETER_KEY=heroku-made-this-opaque-secret.012345678"} // 40 characters
	w := startProcess(t, append(env, "DYNO=web.1")...)
	// No DRAIN_SECRET with a database: no built-in drain, and the start-up
	// line does not claim an outlet for it.
	if !strings.Contains(w.out.String(), `store=postgres outlets="none (no built-in drain: DRAIN_SECRET is not set)"`) {
		t.Errorf("start-up line:\n%s", w.out)
	}
	out := mustCLI(t, oneOffEnv(env), "drains", "add", "--name", "myapp",
		"--otlp-endpoint", "https://otlp.example.com/v1/metrics", "--otlp-header", "Authorization=Basic c2VjcmV0")
	id, secret := drainCreds(t, out)
	// The web opens the drain's sealed credentials to accept its batch.
	if got := w.do(t, post{user: id, pass: secret, body: []byte(appLine(time.Now(), "web.1", "count#x=1"))}).StatusCode; got != 200 {
		t.Fatalf("status %d:\n%s", got, w.out)
	}
	if _, _, err := cli(t, []string{env[0], "DRAINMETER_KEY=" + herokuSecret()}, "drains", "list"); err != nil {
		t.Fatalf("drains list with another key: %v", err)
	}
	if o, e, err := cli(t, []string{env[0], "DRAINMETER_KEY=" + herokuSecret()}, "drains", "set", "myapp", "--prefix", "p"); err == nil ||
		!strings.Contains(e, "sealed with a key that is not in DRAINMETER_KEY") {
		t.Fatalf("another key and the sealed credentials: %v %s%s", err, o, e)
	}
	if _, err := w.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, w.out)
	}
}
