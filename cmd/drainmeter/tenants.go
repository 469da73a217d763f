package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/internal/text"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/postgres"
	"github.com/drainmeter/drainmeter/stats"
	"github.com/drainmeter/drainmeter/status"
)

// tenants authenticates drains and finds their outlets: the built-in drain
// of the config vars (any user name, DRAIN_SECRET) and, with a database,
// the drains table (user name = drain id).
type tenants struct {
	builtin        *drain.SecretAuth  // nil: no built-in drain
	builtinOutlets []outlet.Outlet    // from config vars; empty: the log outlet
	appName        string             // APP_NAME (or OTEL_SERVICE_NAME)
	attributes     []outlet.Attribute // OTEL_RESOURCE_ATTRIBUTES
	libratoURL     string             // LIBRATO_URL, for the table's Librato outlets
	stats          *stats.Registry
	cache          *postgres.DrainCache // nil: no database
	drains         *postgres.Drains     // nil: no database
	now            func() time.Time
}

// errCrowded is every credential failure while failed credentials are
// rate-limited: one answer, whichever limit ran out.
var errCrowded = fmt.Errorf("%w: too many failed credentials; retry later", drain.ErrBusy)

func (t *tenants) Authenticate(ctx context.Context, user, pass string) (drain.Caller, bool, error) {
	// A refusal names the drain the credentials named, if it exists: the
	// built-in drain for a user name that is no drain id (any is its).
	var refused drain.Caller
	if t.builtin != nil {
		if d, ok, _ := t.builtin.Authenticate(ctx, user, pass); ok {
			if t.appName == "" {
				// Each sending app is its own service.name / job, with its
				// own sources: a dimension of every series it sends.
				d.App = builtinApp(user)
			}
			return d, true, nil
		}
		refused.ID = builtinDrain
	}
	if t.cache == nil || !looksLikeDrainID(user) {
		return refused, false, nil
	}
	// A failure while failed credentials are rate-limited is answered as
	// "busy" (503, after the refusal delay, as every credential failure),
	// whether the id exists or not: which limit ran out would tell.
	fail := func(d drain.Caller) (drain.Caller, bool, error) {
		if t.cache.Crowded() {
			return d, false, errCrowded
		}
		return d, false, nil
	}
	d, err := t.cache.Lookup(ctx, user)
	if errors.Is(err, postgres.ErrLookupLimited) {
		return drain.Caller{}, false, errCrowded
	}
	if err != nil {
		return drain.Caller{}, false, err // the handler answers 503: logplex retries
	}
	if d == nil {
		return fail(drain.Caller{})
	}
	if d.DisabledAt != nil {
		return fail(drain.Caller{ID: d.ID})
	}
	if !d.CheckSecret(pass, t.now()) {
		// Maybe a secret rotated since the entry was cached: read the drain
		// again (rate-limited), so that the new URL works at once.
		id := d.ID
		if d, err = t.cache.Recheck(ctx, user); errors.Is(err, postgres.ErrRecheckBusy) {
			return drain.Caller{ID: id}, false, errCrowded
		} else if err != nil {
			return drain.Caller{ID: id}, false, err // 503: logplex retries
		}
		if d == nil || d.DisabledAt != nil || !d.CheckSecret(pass, t.now()) {
			return fail(drain.Caller{ID: id})
		}
	}
	return drain.Caller{ID: d.ID, Prefix: d.Prefix, SourcePrefix: d.SourcePrefix, ProcessTypes: d.ProcessTypes,
		RouteMetrics: d.RouteMetrics, Routes: d.Routes}, true, nil
}

// looksLikeDrainID spares the database lookups for user names that cannot
// be drain ids ("d" and 16 hex digits).
func looksLikeDrainID(s string) bool {
	if len(s) != 17 || s[0] != 'd' {
		return false
	}
	return strings.Trim(s[1:], "0123456789abcdef") == ""
}

// Drain returns a drain's outlets as configured now (outlet.Destinations).
func (t *tenants) Drain(id string) (*outlet.Destination, bool) {
	if id == builtinDrain {
		return t.builtinDrain(), true
	}
	if t.cache == nil || !looksLikeDrainID(id) {
		return nil, false
	}
	// Through Lookup, not the cache alone: an entry older than
	// DRAIN_CACHE_TTL is read again, so that a dyno that gets no traffic for
	// the drain (whose entry only the sealer and the poster read) follows
	// drains set within the TTL like the others. While the database is
	// unreachable the cached entry serves.
	ctx, cancel := context.WithTimeout(context.Background(), postgres.LookupTimeout)
	defer cancel()
	d, err := t.cache.Lookup(ctx, id)
	if err != nil {
		return nil, false
	}
	if d == nil {
		return nil, false
	}
	return t.outletDrain(d), true
}

// Reload reads a drain's outlets from the database now.
func (t *tenants) Reload(ctx context.Context, id string) (*outlet.Destination, bool, error) {
	if id == builtinDrain || t.cache == nil {
		d, ok := t.Drain(id)
		return d, ok, nil
	}
	d, err := t.cache.Refresh(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if d == nil {
		return nil, false, nil
	}
	return t.outletDrain(d), true, nil
}

func (t *tenants) outletDrain(d *postgres.Drain) *outlet.Destination {
	od := &outlet.Destination{ID: d.ID, Name: d.Name, Attributes: d.Attributes, Outlets: slices.Clone(d.Outlets)}
	for i := range od.Outlets {
		if od.Outlets[i].Kind == outlet.Librato {
			od.Outlets[i].URL = t.libratoURL
		}
	}
	if len(od.Outlets) == 0 {
		od.Outlets = []outlet.Outlet{{Kind: outlet.Log}}
	}
	return od
}

// builtinApp is the app a user name of the built-in drain's URL names: the
// name as the status page shows it (printable, at most 64 bytes).
func builtinApp(user string) string {
	if user == "" {
		return status.BuiltinDrainName
	}
	return text.Clip(user, drain.MaxLoggedNameBytes)
}

// builtinDrain is the config-var drain. Its name (service.name, job) is
// APP_NAME; without it each sending app's series carry their app
// (parse.AppDim), which the outlets make their service.name and job, and
// the series of no app (drainmeter's self-metrics) are the drain's own,
// named status.BuiltinDrainName: never an app chosen when posting.
func (t *tenants) builtinDrain() *outlet.Destination {
	d := &outlet.Destination{ID: builtinDrain, Name: t.appName, Attributes: t.attributes, Outlets: slices.Clone(t.builtinOutlets)}
	if d.Name == "" {
		d.Name = status.BuiltinDrainName
	}
	if len(d.Outlets) == 0 {
		d.Outlets = []outlet.Outlet{{Kind: outlet.Log}}
	}
	return d
}

// Owner checks a drain owner's credentials for their status page: the
// drain id and the secret of its drain URL (status.OwnerAuth).
func (t *tenants) Owner(ctx context.Context, id, secret string) (bool, error) {
	if id == builtinDrain {
		if t.builtin == nil {
			return false, nil
		}
		_, ok, err := t.builtin.Authenticate(ctx, id, secret)
		return ok, err
	}
	if t.cache == nil || !looksLikeDrainID(id) {
		return false, nil
	}
	d, err := t.cache.Lookup(ctx, id)
	if err != nil {
		return false, err
	}
	return d != nil && d.DisabledAt == nil && d.CheckSecret(secret, t.now()), nil
}
