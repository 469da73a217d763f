// Package tenant is who a drain is and where its metrics go. A Tenants
// answers, for the rest of the program:
//
//   - the drain endpoint (drain.Authenticator): which drain Basic-auth
//     credentials name, and how its series are named (a drain.Caller);
//   - the outlets and the durable poster (outlet.Destinations,
//     postgres.Reloader): a drain's name, attributes and outlets as
//     configured now (an outlet.Destination);
//   - the owners' status pages (status.OwnerAuth): whether a drain id and
//     secret open that drain's page.
//
// There are two kinds of drains. The built-in drain (id
// status.BuiltinDrainID) is configured by config vars: any user name, the
// password DRAIN_SECRET, its outlets from the outlet config vars; the user
// name of its URL names the sending app unless APP_NAME names the drain.
// With a database, the drains table holds the others (drainmeter drains
// add): the user name is the drain id ("d" and 16 hex digits), the password
// the drain's secret (or, during a rotation's overlap, the previous one),
// read through a postgres.DrainCache.
//
// Secrets are compared in constant time (drain.SecretAuth,
// postgres.Drain.CheckSecret). A refusal tells the client nothing of which
// ids exist: while failed credentials are rate-limited, every failure is
// answered alike (drain.ErrBusy).
package tenant

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
	"github.com/drainmeter/drainmeter/status"
)

// Config configures Tenants.
type Config struct {
	// Builtin is how the built-in drain names its series (its ID is set to
	// status.BuiltinDrainID; App is set per request). Nil: the built-in
	// drain takes no requests (a database and no DRAIN_SECRET), though its
	// outlets still post its self-metrics.
	Builtin *drain.Caller
	// Secret is the built-in drain's password (DRAIN_SECRET). Empty: any
	// password is accepted (the server warns, and refuses that on a dyno).
	Secret string
	// Outlets are the built-in drain's outlets, from config vars. Empty:
	// the log outlet.
	Outlets []outlet.Outlet
	// AppName names the built-in drain (APP_NAME or OTEL_SERVICE_NAME).
	// Empty: each sending app names its own series.
	AppName string
	// Attributes are the built-in drain's own (OTEL_RESOURCE_ATTRIBUTES).
	Attributes []outlet.Attribute
	// LibratoURL is the URL of every Librato outlet of the table's drains
	// (LIBRATO_URL).
	LibratoURL string
	// Cache reads the drains table. Nil: no database, only the built-in
	// drain.
	Cache *postgres.DrainCache
	// Now is the clock of secret rotations' overlaps; nil: time.Now.
	Now func() time.Time
}

// Tenants authenticates drains and finds their outlets: the built-in drain
// of the config vars (any user name, DRAIN_SECRET) and, with a database,
// the drains table (user name = drain id).
type Tenants struct {
	builtin        *drain.SecretAuth    // nil: the built-in drain takes no requests
	builtinOutlets []outlet.Outlet      // from config vars; empty: the log outlet
	appName        string               // APP_NAME (or OTEL_SERVICE_NAME)
	attributes     []outlet.Attribute   // OTEL_RESOURCE_ATTRIBUTES
	libratoURL     string               // LIBRATO_URL, for the table's Librato outlets
	cache          *postgres.DrainCache // nil: no database
	now            func() time.Time
}

var (
	_ drain.Authenticator = (*Tenants)(nil)
	_ postgres.Reloader   = (*Tenants)(nil) // and so outlet.Destinations
	_ status.OwnerAuth    = (*Tenants)(nil)
)

// New returns the tenants cfg describes.
func New(cfg Config) *Tenants {
	t := &Tenants{builtinOutlets: cfg.Outlets, appName: cfg.AppName, attributes: cfg.Attributes,
		libratoURL: cfg.LibratoURL, cache: cfg.Cache, now: cfg.Now}
	if t.now == nil {
		t.now = time.Now
	}
	if cfg.Builtin != nil {
		c := *cfg.Builtin
		c.ID = status.BuiltinDrainID
		t.builtin = drain.NewSecretAuth(c, cfg.Secret)
	}
	return t
}

// BuiltinID is the built-in drain's id (status.BuiltinDrainID) when it takes
// requests, and empty when it does not (a database and no DRAIN_SECRET).
func (t *Tenants) BuiltinID() string {
	if t.builtin == nil {
		return ""
	}
	return status.BuiltinDrainID
}

// errCrowded is every credential failure while failed credentials are
// rate-limited: one answer, whichever limit ran out.
var errCrowded = fmt.Errorf("%w: too many failed credentials; retry later", drain.ErrBusy)

// Authenticate finds the drain that Basic-auth credentials name
// (drain.Authenticator): the built-in drain for its secret, whatever the
// user name; otherwise the table's drain whose id is the user name, if the
// secret is its own and it is not disabled.
func (t *Tenants) Authenticate(ctx context.Context, user, pass string) (drain.Caller, bool, error) {
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
		refused.ID = status.BuiltinDrainID
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

// Destination returns a drain's outlets as configured now (outlet.Destinations);
// false for an id that names no drain, or while the database cannot tell
// and nothing is cached.
func (t *Tenants) Destination(id string) (*outlet.Destination, bool) {
	if id == status.BuiltinDrainID {
		return t.Builtin(), true
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
	return t.destination(d), true
}

// Reload reads a drain's outlets from the database now (postgres.Reloader);
// the built-in drain's are those of the config.
func (t *Tenants) Reload(ctx context.Context, id string) (*outlet.Destination, bool, error) {
	if id == status.BuiltinDrainID || t.cache == nil {
		d, ok := t.Destination(id)
		return d, ok, nil
	}
	d, err := t.cache.Refresh(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if d == nil {
		return nil, false, nil
	}
	return t.destination(d), true, nil
}

func (t *Tenants) destination(d *postgres.Drain) *outlet.Destination {
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

// Builtin is the built-in drain's Destination, whether it takes requests
// or not (its outlets post its self-metrics). Its name (service.name, job) is
// APP_NAME; without it each sending app's series carry their app
// (parse.AppDim), which the outlets make their service.name and job, and
// the series of no app (drainmeter's self-metrics) are the drain's own,
// named status.BuiltinDrainName: never an app chosen when posting.
func (t *Tenants) Builtin() *outlet.Destination {
	d := &outlet.Destination{ID: status.BuiltinDrainID, Name: t.appName, Attributes: t.attributes, Outlets: slices.Clone(t.builtinOutlets)}
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
func (t *Tenants) Owner(ctx context.Context, id, secret string) (bool, error) {
	if id == status.BuiltinDrainID {
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
