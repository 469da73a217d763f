package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// lookupIn is os.LookupEnv over run's environment: getenv's value, and
// whether the variable is set, which environ ("K=V", os.Environ's form)
// tells for a variable set to "" (PORT= is an error, not the default).
func lookupIn(getenv func(string) string, environ []string) func(string) (string, bool) {
	set := make(map[string]bool, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	return func(name string) (string, bool) {
		v := getenv(name)
		return v, v != "" || set[name]
	}
}

// readVar sets field, a struct field with an envconfig tag, from the
// variable the tag names, as envconfig.Process (v1.4.0) does from the
// process's environment: the default tag's value when the variable is not
// set (nothing when there is none); strings as they are, whole numbers in
// any base (0x10, 1_000), booleans by strconv.ParseBool, durations by
// time.ParseDuration. Process reads only the process's environment (its
// lookup is os.LookupEnv, not replaceable), hence this, for the kinds
// Config has; a test holds the two to the same values and errors. A value
// it cannot read is an *envconfig.ParseError, as from Process.
func readVar(f reflect.StructField, field reflect.Value, lookup func(string) (string, bool)) error {
	key := strings.ToUpper(f.Tag.Get("envconfig"))
	value, ok := lookup(key)
	if def := f.Tag.Get("default"); !ok {
		if def == "" {
			return nil
		}
		value = def
	}
	var err error
	switch t := field.Type(); {
	case t == reflect.TypeFor[time.Duration]():
		var d time.Duration
		if d, err = time.ParseDuration(value); err == nil {
			field.SetInt(int64(d))
		}
	case t.Kind() == reflect.String:
		field.SetString(value)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		var n int64
		if n, err = strconv.ParseInt(value, 0, t.Bits()); err == nil {
			field.SetInt(n)
		}
	case t.Kind() == reflect.Bool:
		var b bool
		if b, err = strconv.ParseBool(value); err == nil {
			field.SetBool(b)
		}
	default:
		return fmt.Errorf("a field of type %s is not read from the environment", t)
	}
	if err != nil {
		return &envconfig.ParseError{KeyName: key, FieldName: f.Name, TypeName: field.Type().String(), Value: value, Err: err}
	}
	return nil
}
