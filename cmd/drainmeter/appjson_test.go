package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// appJSON is what the test reads of app.json; every key is checked against
// Heroku's app.json schema.
type appJSON struct {
	Name        string                     `json:"name"`
	Description string                     `json:"description"`
	Repository  string                     `json:"repository"`
	Keywords    []string                   `json:"keywords"`
	SuccessURL  string                     `json:"success_url"`
	Env         map[string]json.RawMessage `json:"env"`
	Addons      []json.RawMessage          `json:"addons"`
	Formation   map[string]struct {
		Quantity int    `json:"quantity"`
		Size     string `json:"size"`
	} `json:"formation"`
}

// The top-level keys of Heroku's app.json schema.
var appJSONKeys = []string{"name", "description", "keywords", "website", "repository", "logo", "success_url",
	"scripts", "env", "formation", "image", "addons", "buildpacks", "environments", "stack"}

// TestAppJSON: app.json follows Heroku's schema, names only variables that
// Config reads, and gives a Heroku Deploy everything Config requires.
func TestAppJSON(t *testing.T) {
	app := appJSONRead(t)
	appJSONCheckFields(t, app)
	procfile, err := os.ReadFile("../../Procfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"release: drainmeter migrate", "web: drainmeter web"} {
		if !slices.Contains(strings.Split(string(procfile), "\n"), l) {
			t.Errorf("Procfile lacks %q", l)
		}
	}
	generated := appJSONCheckEnv(t, app)

	// What a Deploy boots with: the generated and given values, and what
	// Heroku sets (PORT, DYNO; DATABASE_URL from the add-on). Config must
	// find nothing missing, with the add-on and without it.
	for _, withDB := range []bool{true, false} {
		for _, v := range configVars() {
			t.Setenv(v.Name, "")
			os.Unsetenv(v.Name)
		}
		for k, v := range generated {
			t.Setenv(k, v)
		}
		t.Setenv("PORT", "31337")
		t.Setenv("DYNO", "web.1")
		if withDB {
			t.Setenv("DATABASE_URL", "postgres://u:p@db.example.com:5432/d")
		}
		if _, err := loadOSConfig(); err != nil {
			t.Errorf("a Deploy (database %v) lacks a variable Config requires: %v", withDB, err)
		}
	}
}

// appJSONRead reads app.json and checks that its top-level keys are all
// keys of Heroku's app.json schema.
func appJSONRead(t *testing.T) appJSON {
	t.Helper()
	raw, err := os.ReadFile("../../app.json")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("app.json: %v", err)
	}
	for k := range top {
		if !slices.Contains(appJSONKeys, k) {
			t.Errorf("app.json: %q is not a key of Heroku's app.json schema", k)
		}
	}
	var app appJSON
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatalf("app.json: %v", err)
	}
	return app
}

// appJSONCheckFields checks app.json's name, description, repository,
// keywords, success URL, formation and its heroku-postgresql add-on with a
// named plan.
func appJSONCheckFields(t *testing.T, app appJSON) {
	t.Helper()
	switch {
	case app.Name == "" || len(app.Name) > 30:
		t.Errorf("name %q: 1 to 30 characters", app.Name)
	case app.Description == "" || len(app.Description) > 140:
		t.Errorf("description: 1 to 140 characters, not %d", len(app.Description))
	case app.Repository != "https://github.com/drainmeter/drainmeter":
		t.Errorf("repository %q", app.Repository)
	case len(app.Keywords) == 0:
		t.Error("no keywords")
	case app.SuccessURL != "/":
		t.Errorf("success_url %q, want / (the status page)", app.SuccessURL)
	case app.Formation["web"].Quantity != 1 || app.Formation["web"].Size == "":
		t.Errorf("formation %+v: want one web dyno of a named size", app.Formation)
	}
	postgres := false
	for _, a := range app.Addons {
		var addon struct {
			Plan string `json:"plan"`
		}
		if err := json.Unmarshal(a, &addon); err != nil || addon.Plan == "" {
			t.Errorf("addon %s: want an object with a plan", a)
		}
		service, plan, _ := strings.Cut(addon.Plan, ":")
		if service == "heroku-postgresql" {
			postgres = true
			if plan == "" {
				t.Errorf("addon %s: name the plan (heroku-postgresql:essential-0): the default plan changes", a)
			}
		}
	}
	if !postgres {
		t.Error("no heroku-postgresql add-on")
	}
}

// appJSONCheckEnv checks every env entry: an object with a description and
// a value, a generator or required; and a variable of Config; the secrets
// generated. It returns what a Deploy sets: the generated and given values.
func appJSONCheckEnv(t *testing.T, app appJSON) (generated map[string]string) {
	t.Helper()
	known := map[string]bool{}
	for _, v := range configVars() {
		known[v.Name] = true
	}
	generated = map[string]string{} // what a Deploy sets
	for name, rawEntry := range app.Env {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(rawEntry, &e); err != nil {
			t.Errorf("env %s: not an object", name)
			continue
		}
		for k := range e {
			if !slices.Contains([]string{"description", "value", "required", "generator"}, k) {
				t.Errorf("env %s: %q is not a key of an env entry", name, k)
			}
		}
		var entry struct {
			Description string `json:"description"`
			Value       *string
			Required    *bool
			Generator   *string
		}
		if err := json.Unmarshal(rawEntry, &entry); err != nil {
			t.Errorf("env %s: %v", name, err)
			continue
		}
		if entry.Description == "" {
			t.Errorf("env %s: no description", name)
		}
		if entry.Value == nil && entry.Required == nil && entry.Generator == nil {
			t.Errorf("env %s: give a value, a generator or required", name)
		}
		if entry.Generator != nil && *entry.Generator != "secret" {
			t.Errorf("env %s: generator %q (Heroku knows only secret)", name, *entry.Generator)
		}
		if !known[name] {
			t.Errorf("env %s: not a variable of Config (drainmeter web --help)", name)
		}
		switch {
		case entry.Generator != nil:
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			generated[name] = hex.EncodeToString(b) // what generator: secret makes today: 64 hex digits
		case entry.Value != nil:
			generated[name] = *entry.Value
		}
	}
	for _, name := range []string{"DRAIN_SECRET", "DRAINMETER_KEY", "ADMIN_PASSWORD"} {
		var e struct{ Generator string }
		_ = json.Unmarshal(app.Env[name], &e)
		if e.Generator != "secret" {
			t.Errorf("env %s: want generator secret", name)
		}
	}
	return generated
}
