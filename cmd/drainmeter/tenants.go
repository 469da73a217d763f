package main

import (
	"context"
	"strings"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/postgres"
)

// tenants authenticates drains and finds their Librato accounts: the
// built-in drain of the config vars (any user name, DRAIN_SECRET) and, with
// a database, the drains table (user name = drain id).
type tenants struct {
	builtin       *drain.SecretAuth // nil: no built-in drain
	builtinTarget outlet.Target
	cache         *postgres.DrainCache // nil: no database
}

func (t *tenants) Authenticate(ctx context.Context, user, pass string) (drain.Drain, bool, error) {
	if t.builtin != nil {
		if d, ok, _ := t.builtin.Authenticate(ctx, user, pass); ok {
			return d, true, nil
		}
	}
	if t.cache == nil || !looksLikeDrainID(user) {
		return drain.Drain{}, false, nil
	}
	d, err := t.cache.Lookup(ctx, user)
	if err != nil {
		return drain.Drain{}, false, err // the handler answers 503: logplex retries
	}
	if d == nil || d.DisabledAt != nil || !d.CheckSecret(pass) {
		return drain.Drain{}, false, nil
	}
	return drain.Drain{ID: d.ID, Prefix: d.Prefix, SourcePrefix: d.SourcePrefix, ProcessTypes: d.ProcessTypes}, true, nil
}

// looksLikeDrainID spares the database lookups for user names that cannot
// be drain ids ("d" and 16 hex digits).
func looksLikeDrainID(s string) bool {
	if len(s) != 17 || s[0] != 'd' {
		return false
	}
	return strings.Trim(s[1:], "0123456789abcdef") == ""
}

func (t *tenants) Target(id string) (outlet.Target, bool) {
	if id == builtinDrain {
		return t.builtinTarget, true
	}
	if t.cache == nil {
		return outlet.Target{}, false
	}
	d, ok := t.cache.Cached(id)
	if !ok {
		var err error
		if d, err = t.cache.Lookup(context.Background(), id); err != nil {
			return outlet.Target{}, false
		}
	}
	if d == nil {
		return outlet.Target{}, false
	}
	return outlet.Target{User: d.LibratoUser, Token: d.LibratoToken}, true
}
