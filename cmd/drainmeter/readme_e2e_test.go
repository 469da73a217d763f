package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQuickStartAsTheREADMEShows runs the README's quick start as written —
// `drainmeter web` with no configuration, the README's curl line, Ctrl-C —
// and compares the rollups printed with the ones the README shows.
func TestQuickStartAsTheREADMEShows(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	m := regexp.MustCompile(`(?m)^msg="(.*)"$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the README has no msg= line")
	}
	var want []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "at=rollup ") {
			want = append(want, line)
		}
	}
	if len(want) == 0 {
		t.Fatal("the README shows no rollup")
	}

	s := startServer(t) // no configuration at all, as `go run ./cmd/drainmeter web`
	msg := strings.ReplaceAll(m[1], "$now", time.Now().UTC().Format("2006-01-02T15:04:05+00:00"))
	resp := s.do(t, post{user: "myapp", pass: "dev", body: []byte(strconv.Itoa(len(msg)) + " " + msg),
		headers: map[string]string{"Content-Type": "application/logplex-1"}})
	if resp.StatusCode != 200 {
		t.Fatalf("the README's curl line got %d", resp.StatusCode)
	}
	if page := s.do(t, post{method: "GET", path: "/"}); page.StatusCode != 200 {
		t.Errorf("the status page the README points to answered %d", page.StatusCode)
	}
	if _, err := s.stop(t); err != nil { // Ctrl-C
		t.Fatalf("exit: %v\n%s", err, s.out)
	}
	var got []string
	for _, line := range strings.Split(s.out.String(), "\n") {
		if strings.HasPrefix(line, "at=rollup ") {
			got = append(got, line)
		}
	}
	minute := regexp.MustCompile(`minute=\S+`)
	norm := func(ls []string) string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = minute.ReplaceAllString(l, "minute=M")
		}
		return strings.Join(out, "\n")
	}
	if norm(got) != norm(want) {
		t.Errorf("the quick start printed\n%s\nthe README shows\n%s", norm(got), norm(want))
	}
}
