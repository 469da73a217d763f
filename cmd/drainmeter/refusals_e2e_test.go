package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drainmeter/drainmeter/internal/browsertest"
	"github.com/drainmeter/drainmeter/internal/pgtest"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/status"
)

// answer is what a refused sender sees.
type answer struct {
	status int
	body   string
	close  bool
	took   time.Duration
}

// sendAs posts one frame as user:pass (none when both are empty) with
// contentType.
func sendAs(t *testing.T, url, user, pass, contentType string) answer {
	t.Helper()
	msg := fmt.Sprintf("<190>1 %s host app web.1 - count#refusals.test=1", time.Now().UTC().Format(time.RFC3339))
	req, _ := http.NewRequest(http.MethodPost, url+"/logs", bytes.NewBufferString(fmt.Sprintf("%d %s", len(msg), msg)))
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", contentType)
	start := time.Now()
	resp, err := loadClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Close, time.Since(start)}
}

// refusalsRun is TestRefusalsVisibleEndToEnd's web, its drain myapp and the
// browser that reads its pages.
type refusalsRun struct {
	s                    *server
	b                    *browsertest.Browser
	env                  []string
	admin, builtinSecret string
	id, secret, secret2  string // myapp's; secret2 after rotate-secret
}

// TestRefusalsVisibleEndToEnd is issue 21's "refusals are visible": a
// sender without credentials, one with a wrong secret, one with the old
// secret after `drains rotate-secret --finish` (and one with a
// Content-Type drainmeter cannot read): each answer says why in one plain
// line and closes the connection; each refusal is counted on its drain —
// the built-in drain for a URL without credentials, the drain named
// otherwise, "unknown drain" for a made-up id — and shown, with the time of
// the last one, on the status page and on the drain's owner page (read by
// a real Chromium), and logged at WARN.
func TestRefusalsVisibleEndToEnd(t *testing.T) {
	t.Parallel()
	b := browsertest.New(t)
	dsn := pgtest.NewDatabase(t, false)
	const admin, builtinSecret = "refusals-admin-1234", "builtin-secret-5678"
	env := []string{"DATABASE_URL=" + dsn, "DRAINMETER_KEY=" + postgres.NewKey(), "DRAINMETER_URL=http://127.0.0.1"}
	id, secret := drainCreds(t, mustCLI(t, env, "drains", "add", "--name", "myapp"))
	s := startServer(t, append(env, "ADMIN_PASSWORD="+admin, "DRAIN_SECRET="+builtinSecret, "DRAIN_CACHE_TTL=1s",
		"PARTIAL_FLUSH_INTERVAL=1s")...)
	r := &refusalsRun{s: s, b: b, env: env, admin: admin, builtinSecret: builtinSecret, id: id, secret: secret}

	if a := sendAs(t, s.url, id, secret, "application/logplex-1"); a.status != 200 {
		t.Fatalf("the drain's own URL: %d %s", a.status, a.body)
	}
	r.sendRefused(t)
	r.rotate(t)
	myRefused := r.counted(t)
	r.pages(t, myRefused)
	r.logged(t)
}

// oneLine checks a refusal's answer: its status, Connection: close and one
// line saying says; never a secret or the body.
func (r *refusalsRun) oneLine(t *testing.T, what string, a answer, status int, says string) {
	t.Helper()
	if a.status != status || !a.close || !strings.HasSuffix(a.body, "\n") || strings.Count(a.body, "\n") != 1 ||
		!strings.Contains(a.body, says) {
		t.Errorf("%s: %d close=%v %q, want %d, Connection: close and one line saying %q", what, a.status, a.close, a.body, status, says)
	}
	for _, sec := range []string{r.secret, r.builtinSecret, "count#"} {
		if strings.Contains(a.body, sec) {
			t.Errorf("%s: the answer shows a secret or the body: %q", what, a.body)
		}
	}
}

// sendRefused sends without credentials, with a wrong secret, as a made-up
// id (as fast as a wrong secret: no oracle of ids) and with a form
// Content-Type: each answer is one line.
func (r *refusalsRun) sendRefused(t *testing.T) {
	t.Helper()
	r.oneLine(t, "no credentials", sendAs(t, r.s.url, "", "", "application/logplex-1"), 401, "no credentials")
	wrong := sendAs(t, r.s.url, r.id, "not-the-secret", "application/logplex-1")
	r.oneLine(t, "a wrong secret", wrong, 401, "wrong drain id or secret")
	unknown := sendAs(t, r.s.url, "d0123456789abcdef", "whatever", "application/logplex-1")
	r.oneLine(t, "a made-up id", unknown, 401, "wrong drain id or secret")
	if d := wrong.took - unknown.took; d > 300*time.Millisecond || d < -300*time.Millisecond {
		t.Errorf("a wrong secret took %s on a drain, %s on a made-up id: an oracle of ids", wrong.took, unknown.took)
	}
	r.oneLine(t, "a form Content-Type", sendAs(t, r.s.url, r.id, r.secret, "application/x-www-form-urlencoded"), 415, "Content-Type")
}

// rotate checks the old secret is refused after the rotation is finished,
// and the new one accepted.
func (r *refusalsRun) rotate(t *testing.T) {
	t.Helper()
	_, r.secret2 = drainCreds(t, mustCLI(t, r.env, "drains", "rotate-secret", "myapp"))
	if a := sendAs(t, r.s.url, r.id, r.secret, "application/logplex-1"); a.status != 200 {
		t.Fatalf("the old secret during the overlap: %d %s", a.status, a.body)
	}
	mustCLI(t, r.env, "drains", "rotate-secret", "myapp", "--finish")
	var old answer
	eventually(t, 10*time.Second, "the old secret refused after --finish", func() bool {
		old = sendAs(t, r.s.url, r.id, r.secret, "application/logplex-1")
		return old.status == 401
	})
	r.oneLine(t, "the old secret after --finish", old, 401, "rotate-secret --finish")
	if a := sendAs(t, r.s.url, r.id, r.secret2, "application/logplex-1"); a.status != 200 {
		t.Fatalf("the new secret: %d %s", a.status, a.body)
	}
}

// counted checks the refusals are counted: 2 + n (the old secret's tries)
// 401 and one 415 on myapp; one 401 on the built-in drain; one on the
// unknown drain; each with the time of the last. It returns myapp's 401s.
func (r *refusalsRun) counted(t *testing.T) uint64 {
	t.Helper()
	var snap status.Snapshot
	drainOf := func(id string) *status.Report {
		for i := range snap.Drains {
			if snap.Drains[i].ID == id {
				return &snap.Drains[i]
			}
		}
		return nil
	}
	eventually(t, 20*time.Second, "the refusals counted on the status page", func() bool {
		st, body := get(t, r.s.url+"/status.json", "admin", r.admin)
		snap = status.Snapshot{}
		if st != 200 || json.Unmarshal([]byte(body), &snap) != nil {
			return false
		}
		my, builtin := drainOf(r.id), drainOf("default")
		return my != nil && builtin != nil && snap.Unknown != nil && my.Refused["unauthorized"] >= 2 && my.Refused["unsupported"] == 1 &&
			builtin.Refused["unauthorized"] == 1 && snap.Unknown.Refused["unauthorized"] == 1
	})
	my := drainOf(r.id)
	if my.LastRefusedAt == nil || time.Since(*my.LastRefusedAt) > 2*time.Minute || drainOf("default").LastRefusedAt == nil ||
		snap.Unknown.LastRefusedAt == nil {
		t.Errorf("last refused: myapp %v, default %v, unknown %v", my.LastRefusedAt, drainOf("default").LastRefusedAt, snap.Unknown.LastRefusedAt)
	}
	return my.Refused["unauthorized"]
}

// pages checks the pages, in a browser: the status page and each owner's page.
func (r *refusalsRun) pages(t *testing.T, myRefused uint64) {
	t.Helper()
	r.b.Open(r.s.url+"/", "admin", r.admin)
	row := func(drain, kind string) string {
		t.Helper()
		got, _ := r.b.TextOf(`[data-drain="` + drain + `"] [data-refused="` + kind + `"] td`)
		return got
	}
	if got := row(r.id, "unauthorized"); got != fmt.Sprint(myRefused) {
		t.Errorf("status page: myapp's 401s read %q, want %d", got, myRefused)
	}
	if got := row(r.id, "unsupported"); got != "1" {
		t.Errorf("status page: myapp's 415s read %q", got)
	}
	if got := row("default", "unauthorized"); got != "1" {
		t.Errorf("status page: the built-in drain's 401s read %q", got)
	}
	if got := row("unknown", "unauthorized"); got != "1" {
		t.Errorf("status page: the unknown drain's 401s read %q", got)
	}
	if r.b.Count(`[data-drain="`+r.id+`"] [data-last-refused]`) != 1 {
		t.Error("status page: no time of myapp's last refusal")
	}
	if r.b.Count(`#connections [data-conns="open"]`) != 1 {
		t.Error("status page: no connection counts")
	}
	r.b.Open(r.s.url+"/drains/"+r.id, r.id, r.secret2)
	if got := row(r.id, "unauthorized"); got != fmt.Sprint(myRefused) {
		t.Errorf("owner page: 401s read %q, want %d", got, myRefused)
	}
	if r.b.Count(`[data-drain="`+r.id+`"] [data-last-refused]`) != 1 || r.b.Count(`[data-drain="unknown"]`) != 0 || r.b.Count(`#connections`) != 0 {
		t.Error("owner page: the time of the last refusal missing, or another's figures shown")
	}
	r.b.Open(r.s.url+"/drains/default", "anyapp", r.builtinSecret)
	if got := row("default", "unauthorized"); got != "1" {
		t.Errorf("the built-in drain's owner page: 401s read %q", got)
	}
}

// logged checks the refusals are logged at WARN, sampled; never a secret.
func (r *refusalsRun) logged(t *testing.T) {
	t.Helper()
	out := r.s.out.String()
	for _, want := range []string{`level=WARN msg="drain refused" reason="no credentials"`, `level=WARN msg="drain refused" reason="bad credentials"`,
		`reason="unknown Content-Type`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	for _, sec := range []string{r.secret, r.secret2, r.builtinSecret} {
		if strings.Contains(out, sec) {
			t.Error("the log shows a secret")
		}
	}
}
