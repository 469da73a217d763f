package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// TestConfigTags: every setting is an environment variable with a meaning,
// so that web --help and the README's table cover them all.
func TestConfigTags(t *testing.T) {
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("envconfig")
		if name == "" {
			t.Errorf("Config.%s has no envconfig tag", f.Name)
			continue
		}
		if d := f.Tag.Get("desc"); d == "" || strings.Contains(d, "\n") || len(d) > 120 {
			t.Errorf("%s: desc %q: want one short line", name, d)
		}
	}
}

// TestConfigAllProblems: every bad variable is reported, one line each; a
// variable that cannot be read is not reported again by the checks that
// depend on it, and no secret is printed.
func TestConfigAllProblems(t *testing.T) {
	for _, kv := range [][2]string{
		{"PORT", "abc"}, {"GRACE", "soon"}, {"OUTLET_MAX_PENDING", "later"}, {"MAX_BODY_BYTES", "12"},
		{"LIBRATO_USER", "me@example.com"}, {"DRAINMETER_KEY", "hunter2-is-my-key"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%zzsecret-header"}, {"OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example.com"},
		{"DRAIN_SECRET", "s3cret"}, {"LOG_LEVEL", "loud"},
		{"REMOTE_WRITE_URL", "https://prom.example.com/api/v1/write"}, {"REMOTE_WRITE_HEADERS", "Authorization: Basic c2VjcmV0LWJhc2lj="},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
	} {
		t.Setenv(kv[0], kv[1])
	}
	_, err := loadOSConfig()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	want := []string{
		`config: 10 problems:`,
		`  PORT="abc" is not a valid whole number`,
		`  GRACE="soon" is not a valid duration (like 90s or 5m)`,
		`  OUTLET_MAX_PENDING="later" is not a valid duration (like 90s or 5m)`,
		`  MAX_BODY_BYTES=12 is too small (at least 1024)`,
		`  set both LIBRATO_USER and LIBRATO_TOKEN, or neither (rollups are then logged)`,
		`  LOG_LEVEL="loud" is not one of debug, info, warn, error`,
		`  OTEL_EXPORTER_OTLP_PROTOCOL="grpc": drainmeter sends OTLP/HTTP with protobuf (http/protobuf): use your vendor's OTLP/HTTP endpoint (often port 4318; 4317 is gRPC) and set it to http/protobuf or unset it`,
		`  OTEL_EXPORTER_OTLP_HEADERS: header Authorization: the value is not percent-encoded correctly`,
		`  REMOTE_WRITE_HEADERS: entry 1: the key is not a header name (key=value, the key a token such as Authorization)`,
		`  DRAINMETER_KEY: key 1: too short: use at least 32 characters (drainmeter keys generate prints a key)`,
	}
	if got := strings.Split(msg, "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("error:\n%s\nwant:\n%s", msg, strings.Join(want, "\n"))
	}
	for _, secret := range []string{"hunter2", "secret-header", "s3cret", "c2VjcmV0LWJhc2lj"} {
		if strings.Contains(msg, secret) {
			t.Errorf("the error prints a secret (%s)", secret)
		}
	}
}

// TestConfigKeyChecked: DRAINMETER_KEY is checked whenever it is set, even
// without a database; Heroku's generator's output and opaque secrets pass.
func TestConfigKeyChecked(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{strings.Repeat("0f", 32), true},
		{"an-opaque-secret-of-forty-characters-ok", true},
		{"too-short", false},
	} {
		t.Setenv("DRAINMETER_KEY", tc.key)
		c, err := loadOSConfig()
		if (err == nil) != tc.ok || tc.ok && c.keys == nil {
			t.Errorf("DRAINMETER_KEY of %d characters: %v", len(tc.key), err)
		}
		if err != nil && strings.Contains(err.Error(), tc.key) {
			t.Errorf("the error prints the key: %v", err)
		}
	}
}

func TestDrainBaseURL(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	flagURL := func(s string) optString { return optString{v: s, set: true} }
	for _, tc := range []struct {
		name    string
		flag    optString
		env     func(string) string
		want    string
		wantErr string
	}{
		{"flag", flagURL("https://dm-1a2b3c4d5e6f.herokuapp.com"), env("DRAINMETER_URL", "https://other.example.com"), "https://dm-1a2b3c4d5e6f.herokuapp.com", ""},
		{"flag with /logs", flagURL("https://dm.example.com/logs"), env(), "https://dm.example.com", ""},
		{"flag with /logs/", flagURL("https://dm.example.com/logs/"), env(), "https://dm.example.com", ""},
		{"flag with /", flagURL("https://dm.example.com/"), env(), "https://dm.example.com", ""},
		{"flag with a base path", flagURL("http://127.0.0.1:5000/meter/logs"), env(), "http://127.0.0.1:5000/meter", ""},
		{"bare host", flagURL("dm-1a2b3c4d5e6f.herokuapp.com"), env(), "https://dm-1a2b3c4d5e6f.herokuapp.com", ""},
		{"DRAINMETER_URL", optString{}, env("DRAINMETER_URL", "https://dm.example.com/logs", "HEROKU_APP_DEFAULT_DOMAIN_NAME", "x.herokuapp.com"), "https://dm.example.com", ""},
		{"dyno metadata", optString{}, env("HEROKU_APP_NAME", "dm", "HEROKU_APP_DEFAULT_DOMAIN_NAME", "dm-1a2b3c4d5e6f.herokuapp.com"), "https://dm-1a2b3c4d5e6f.herokuapp.com", ""},
		{"app name alone", optString{}, env("HEROKU_APP_NAME", "dm"), "", "pass --url https://dm-1a2b3c4d5e6f.herokuapp.com (heroku apps:info -a dm --json | jq -r .app.web_url prints it), set DRAINMETER_URL, or let Heroku tell it to dynos: heroku labs:enable runtime-dyno-metadata -a dm"},
		{"nothing", optString{}, env(), "", "pass --url"},
		{"credentials", flagURL("https://u:hunter2@dm.example.com"), env(), "", "without credentials"},
		{"query", flagURL("https://dm.example.com/logs?prefix=x"), env(), "", "without credentials, query or fragment"},
		{"not http", flagURL("ftp://dm.example.com"), env(), "", "is not the app's http(s) URL"},
		{"bad DRAINMETER_URL", optString{}, env("DRAINMETER_URL", "mailto:x"), "", "DRAINMETER_URL:"},
	} {
		got, err := drainBaseURL(tc.flag, tc.env)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %q %v, want an error with %q", tc.name, got, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the error prints a password: %v", tc.name, err)
		}
	}
	if u := drainURL("https://dm.example.com", "d0123456789abcdef", "s3"); u != "https://d0123456789abcdef:s3@dm.example.com/logs" {
		t.Errorf("drain URL %s", u)
	}
}

// TestHelp: every command's --help (and -h) prints its own usage on stdout
// and exits 0; web --help is the config help.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"web", "--help"}, {"web", "-h"}, {"parse", "--help"}, {"parse", "-h"}, {"migrate", "--help"},
		{"drains", "--help"}, {"drains", "add", "--help"}, {"drains", "list", "-h"}, {"drains", "rm", "--help"},
		{"drains", "rotate-secret", "--help"}, {"drains", "set", "--help"}, {"drains", "reencrypt", "--help"},
		{"keys", "--help"}, {"keys", "generate", "--help"}, {"version", "--help"},
	} {
		cmd := exec.Command(binPath, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PORT=abc"} // help needs no valid config
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil || stderr.Len() > 0 || !strings.HasPrefix(stdout.String(), "usage: drainmeter") {
			t.Errorf("%v: exit %v, stderr %q, stdout %.80q…", args, err, stderr.String(), stdout.String())
			continue
		}
		if len(args) > 2 && args[0] == "drains" && !strings.HasPrefix(stdout.String(), "usage: drainmeter drains "+args[1]) {
			t.Errorf("%v: not that command's usage: %.80q…", args, stdout.String())
		}
	}
	out := mustCLI(t, nil, "web", "--help")
	if out != configHelp() {
		t.Errorf("web --help is not configHelp():\n%s", out)
	}
	for _, v := range configVars() {
		if !regexp.MustCompile(`(?m)^  ` + v.Name + ` +\S+ +\S`).MatchString(out) {
			t.Errorf("web --help lacks %s with its default and meaning", v.Name)
		}
	}
}

// TestREADMEConfigTable: the README's configuration table has every
// variable of web --help with its default, and nothing else.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no ## Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	inTable := map[string]string{} // variable → default
	row := regexp.MustCompile("(?m)^\\| ((?:`[A-Z0-9_]+`(?:, )?)+) \\| ([^|]*) \\|")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		def := strings.Trim(strings.TrimSpace(m[2]), "`")
		if def == "—" {
			def = "-"
		}
		for _, name := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(m[1], -1) {
			if _, dup := inTable[name[1]]; dup {
				t.Errorf("README table: %s twice", name[1])
			}
			inTable[name[1]] = def
		}
	}
	inHelp := map[string]string{}
	lines := strings.Split(configHelp(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  VARIABLE ") {
			for _, l := range lines[i+1:] {
				if f := strings.Fields(l); len(f) >= 3 {
					inHelp[f[0]] = f[1]
				}
			}
			break
		}
	}
	if len(inHelp) != len(configVars()) {
		t.Fatalf("read %d variables from the help, want %d", len(inHelp), len(configVars()))
	}
	for name, def := range inHelp {
		got, ok := inTable[name]
		switch {
		case !ok:
			t.Errorf("README table lacks %s (default %s)", name, def)
		case got != def:
			t.Errorf("README table: %s default %q, web --help says %q", name, got, def)
		}
	}
	for name := range inTable {
		if _, ok := inHelp[name]; !ok {
			t.Errorf("README table has %s, which web --help does not list", name)
		}
	}
}

// TestConfigRoutes: ROUTES and ROUTE_METRICS are read and checked together.
func TestConfigRoutes(t *testing.T) {
	for _, tc := range []struct {
		routes, mode, max string
		want              string // the error; empty: none
	}{
		{"/users/:id, /api/*", "templates", "", ""},
		{"", "auto", "50", ""},
		{"", "", "", ""},
		{"/users/:id", "", "", "config: ROUTES is set but ROUTE_METRICS is off: set ROUTE_METRICS=templates (or auto) to get per-route series"},
		{"", "templates", "", "config: ROUTE_METRICS=templates needs ROUTES (comma-separated templates such as /users/:id,/api/*), or use auto"},
		{"/users/:id", "sometimes", "", `config: ROUTE_METRICS="sometimes" is not off, templates or auto`},
		{"users", "auto", "", `config: ROUTES: route template "users": starts with /`},
		{"", "auto", "0", "config: MAX_ROUTES_PER_DRAIN=0 must be at least 1"},
	} {
		t.Setenv("ROUTES", tc.routes)
		t.Setenv("ROUTE_METRICS", tc.mode)
		t.Setenv("MAX_ROUTES_PER_DRAIN", tc.max)
		if tc.mode == "" {
			os.Unsetenv("ROUTE_METRICS")
		}
		if tc.max == "" {
			os.Unsetenv("MAX_ROUTES_PER_DRAIN")
		}
		c, err := loadOSConfig()
		if got := fmt.Sprint(err); (tc.want == "") != (err == nil) || err != nil && got != tc.want {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
			continue
		}
		if err == nil && tc.routes == "/users/:id, /api/*" && (c.routeMode != parse.RoutesTemplates || !reflect.DeepEqual(c.routes, []string{"/users/:id", "/api/*"})) {
			t.Errorf("read %v %q", c.routeMode, c.routes)
		}
		if err == nil && tc.max == "" && c.MaxRoutesPerDrain != 200 {
			t.Errorf("MAX_ROUTES_PER_DRAIN default %d", c.MaxRoutesPerDrain)
		}
	}
}

// TestConfigOTLPProtocol: only http/protobuf is spoken; the metrics
// variable wins over the generic one (the OTel spec); without an OTLP
// endpoint neither matters.
func TestConfigOTLPProtocol(t *testing.T) {
	for _, tc := range []struct {
		endpoint, generic, metrics string
		ok                         bool
	}{
		{"https://otlp.example.com", "grpc", "http/protobuf", true},
		{"https://otlp.example.com", "http/protobuf", "", true},
		{"https://otlp.example.com", "", "http/json", false},
		{"https://otlp.example.com", "grpc", "", false},
		{"", "grpc", "", true},
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.generic)
		t.Setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", tc.metrics)
		if _, err := loadOSConfig(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

// TestConfigHistogramOptions: OTLP_MAX_BUCKETS and REMOTE_WRITE_HISTOGRAMS
// reach the built-in drain's outlets, and bad values are refused by name.
func TestConfigHistogramOptions(t *testing.T) {
	for _, tc := range []struct {
		maxBuckets, hists string
		problem           string // "" for none
		wantMax           int
		wantNative        bool
	}{
		{"", "", "", 160, false},
		{"1000", "native", "", 1000, true},
		{"160", "summary", "", 160, false},
		{"1", "", "OTLP_MAX_BUCKETS: 1 buckets: 2 to 4096", 0, false},
		{"5000", "", "OTLP_MAX_BUCKETS: 5000 buckets: 2 to 4096", 0, false},
		{"", "classic", `REMOTE_WRITE_HISTOGRAMS: remote write histograms "classic": native or summary`, 0, false},
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example.com")
		t.Setenv("REMOTE_WRITE_URL", "https://prom.example.com/api/v1/write")
		t.Setenv("OTLP_MAX_BUCKETS", tc.maxBuckets)
		t.Setenv("REMOTE_WRITE_HISTOGRAMS", tc.hists)
		if tc.maxBuckets == "" {
			os.Unsetenv("OTLP_MAX_BUCKETS")
		}
		if tc.hists == "" {
			os.Unsetenv("REMOTE_WRITE_HISTOGRAMS")
		}
		c, err := loadOSConfig()
		if tc.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%+v: error %v, want %q", tc, err, tc.problem)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		d := &outlet.Destination{Outlets: c.outlets}
		o, ok := d.Outlet(outlet.OTLP)
		r, ok2 := d.Outlet(outlet.RemoteWrite)
		if !ok || !ok2 || o.MaxBuckets != tc.wantMax || r.Native() != tc.wantNative {
			t.Errorf("%+v: outlets %+v", tc, d.Outlets)
		}
	}
}

// TestHeaderFlagsReadLikeTheConfig: `drains add|set --otlp-header` takes
// what OTEL_EXPORTER_OTLP_HEADERS takes (Grafana's Basic%20… pasted as is),
// with the same refusals; values never appear in an error.
func TestHeaderFlagsReadLikeTheConfig(t *testing.T) {
	sr := &secretReader{stdin: strings.NewReader("")}
	got, err := headerFlags("otlp-header", optList{v: []string{"Authorization=Basic%20c2VjcmV0", "X-Scope-OrgID=tenant 1"}, set: true}, sr)
	if err != nil || len(got) != 2 || got[0].Value != "Basic c2VjcmV0" || got[1].Value != "tenant 1" {
		t.Fatalf("%+v %v", got, err)
	}
	cfg, err := parseHeaders("Authorization=Basic%20c2VjcmV0,X-Scope-OrgID=tenant 1")
	if err != nil || !slices.Equal(cfg, got) {
		t.Errorf("config %+v %v, flags %+v", cfg, err, got)
	}
	for _, bad := range []string{"Authorization: Basic c2VjcmV0=", "Authorization=Basic%zzc2VjcmV0", "Authorization=a%0Db"} {
		_, err := headerFlags("otlp-header", optList{v: []string{bad}, set: true}, sr)
		if err == nil || strings.Contains(err.Error(), "c2VjcmV0") || !strings.Contains(err.Error(), "--otlp-header number 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// loadOSConfig is loadConfig over the test process's environment, as main
// reads it (these tests set it with t.Setenv).
func loadOSConfig() (Config, error) { return loadConfig(os.Getenv, os.Environ()) }
