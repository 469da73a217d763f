package main

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// TestReadVarLikeEnvconfig: readVar reads each kind of field Config has as
// envconfig.Process reads it from the process's environment: the same
// value, and the same error for a value it cannot read, whether the
// variable is unset, empty or set, with a default or without.
func TestReadVarLikeEnvconfig(t *testing.T) {
	type spec struct {
		Int   int           `envconfig:"DM_TEST_INT" default:"5"`
		Int64 int64         `envconfig:"DM_TEST_INT64"`
		Dur   time.Duration `envconfig:"DM_TEST_DUR" default:"90s"`
		Bool  bool          `envconfig:"DM_TEST_BOOL" default:"true"`
		False bool          `envconfig:"DM_TEST_FALSE"`
		Str   string        `envconfig:"DM_TEST_STR" default:"x"`
		NoDef string        `envconfig:"DM_TEST_NODEF"`
	}
	const unset = "\x00unset"
	values := []string{unset, "", "0", "12", "-3", "0x10", "0o17", "1_000", " 1", "9223372036854775808", "abc", "1.5",
		"90s", "1h2m", "-5ms", "0", "true", "FALSE", "t", "yes", "héllo, world"}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[spec]()) {
		name := f.Tag.Get("envconfig")
		for _, val := range values {
			if val == unset {
				t.Setenv(name, "")
				os.Unsetenv(name)
			} else {
				t.Setenv(name, val)
			}
			want := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
			wantErr := envconfig.Process("", want.Interface())
			got := reflect.New(f.Type).Elem()
			gotErr := readVar(f, got, lookupIn(os.Getenv, os.Environ()))
			what := name + "=" + strings.ReplaceAll(val, unset, "(unset)")
			if (gotErr == nil) != (wantErr == nil) {
				t.Errorf("%s: error %v, envconfig's %v", what, gotErr, wantErr)
				continue
			}
			if wantErr != nil {
				var g, w *envconfig.ParseError
				if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) || g.Error() != w.Error() ||
					g.KeyName != w.KeyName || g.TypeName != w.TypeName || g.Value != w.Value {
					t.Errorf("%s: error %#v, envconfig's %#v", what, gotErr, wantErr)
				}
				continue
			}
			if g, w := got.Interface(), want.Elem().Field(0).Interface(); g != w {
				t.Errorf("%s: read %v, envconfig %v", what, g, w)
			}
		}
	}
}

// TestReadVarEveryConfigField: every field of Config is of a kind readVar
// reads, and every default is a valid value.
func TestReadVarEveryConfigField(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for _, f := range reflect.VisibleFields(v.Type()) {
		if f.Tag.Get("envconfig") != "" {
			if err := readVar(f, v.FieldByIndex(f.Index), none); err != nil {
				t.Errorf("Config.%s: %v", f.Name, err)
			}
		}
	}
	if c.Port != 5000 || c.Grace != 90*time.Second || !c.ProcessTypes || c.MaxBodyBytes != 1<<20 || c.LibratoURL == "" {
		t.Errorf("defaults not read: %+v", c)
	}
}

// TestLoadConfigFromGetenv: run's environment, not the process's, is read;
// a variable listed in environ with an empty value is set to "" (an error
// for a number, as with os.LookupEnv), not unset; environ's other names are
// checked for typos.
func TestLoadConfigFromGetenv(t *testing.T) {
	t.Setenv("GRACE", "soon") // the process's: not read
	env := map[string]string{"PORT": "", "REMOTE_WRITE_ULR": "https://prom.example.com/api/v1/write", "PARTIAL_BUFFER_BYTES": "2097152"}
	getenv := func(k string) string { return env[k] }
	environ := []string{"PORT=", "REMOTE_WRITE_ULR=https://prom.example.com/api/v1/write", "PARTIAL_BUFFER_BYTES=2097152"}
	c, err := loadConfig(getenv, environ)
	if err == nil || err.Error() != `config: PORT="" is not a valid whole number` {
		t.Errorf("PORT set to \"\": %v", err)
	}
	if len(c.warnings) != 1 || !strings.Contains(c.warnings[0], "REMOTE_WRITE_ULR is not a drainmeter setting (ignored): did you mean REMOTE_WRITE_URL?") {
		t.Errorf("warnings: %q", c.warnings)
	}
	if !c.set["PARTIAL_BUFFER_BYTES"] || c.set["GRACE"] || c.PartialBufferBytes != 2<<20 || c.Grace != 90*time.Second {
		t.Errorf("set %v, PARTIAL_BUFFER_BYTES %d, GRACE %s", c.set, c.PartialBufferBytes, c.Grace)
	}
	// Not listed in environ, an empty value is not set: the default.
	delete(env, "PORT")
	if c, err := loadConfig(getenv, nil); err != nil || c.Port != 5000 {
		t.Errorf("no environ: port %d, %v", c.Port, err)
	}
}
