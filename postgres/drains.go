// Package postgres keeps drainmeter's durable state in Postgres (pgx v5):
// the drains (tenants), the ids of batches already counted, and, with the
// durable rollups, the partial minutes of every web dyno.
package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/parse"
)

// Drain is a row of the drains table, with its outlets' credentials
// opened.
type Drain struct {
	ID         string
	Name       string
	SecretHash []byte
	// PreviousSecretHash is the secret before the last rotation, valid
	// until PreviousExpiresAt (the overlap): nil when there is none.
	PreviousSecretHash []byte
	PreviousExpiresAt  *time.Time
	Prefix             string
	SourcePrefix       string
	ProcessTypes       bool
	RouteMetrics       parse.RouteMode    // per-route series of router lines
	Routes             []string           // route templates, in order of precedence
	Attributes         []outlet.Attribute // the user's own (outlet.CheckAttributes), in order
	CreatedAt          time.Time
	UpdatedAt          time.Time
	DisabledAt         *time.Time
	// Outlets are the drain's destinations, ordered by kind; their secrets
	// are opened only by Get and ByID (List leaves Token, Headers and the
	// URL's credentials empty). Librato outlets have no URL here: the
	// LIBRATO_URL config var applies.
	Outlets []outlet.Outlet
}

// CheckSecret compares a password with the drain's secret, and with its
// previous secret while the rotation's overlap lasts (until
// PreviousExpiresAt), in constant time.
func (d *Drain) CheckSecret(password string, now time.Time) bool {
	sum := sha256.Sum256([]byte(password))
	cur := subtle.ConstantTimeCompare(sum[:], d.SecretHash) == 1
	prev := d.PreviousSecretHash != nil && subtle.ConstantTimeCompare(sum[:], d.PreviousSecretHash) == 1
	return cur || prev && d.PreviousExpiresAt != nil && now.Before(*d.PreviousExpiresAt)
}

// Errors of the drains store.
var (
	ErrNotFound = errors.New("no such drain")
	ErrNameUsed = errors.New("a drain with that name exists")
)

// Drains is the drains table.
type Drains struct {
	pool *pgxpool.Pool
	keys *Keyring
}

// NewDrains returns the drains store; keys seals and opens Librato tokens.
func NewDrains(pool *pgxpool.Pool, keys *Keyring) *Drains { return &Drains{pool: pool, keys: keys} }

// Spec is what `drains add` and `drains set` change. Nil fields are left
// alone. Routes given without RouteMetrics, to a drain whose route metrics
// are off, turn them to templates.
type Spec struct {
	Name         *string
	Prefix       *string
	SourcePrefix *string
	ProcessTypes *bool
	RouteMetrics *parse.RouteMode
	Routes       *[]string     // route templates (parse.CheckRouteTemplate); empty clears them
	Outlets      []OutletSpec  // outlets to add or change (at most one per kind)
	Remove       []outlet.Kind // outlets to remove
	// Attributes are set (a key already there gets the new value in its
	// place); RemoveAttributes are removed.
	Attributes       []outlet.Attribute
	RemoveAttributes []string
}

// attributes returns a drain's attributes once s is applied to cur,
// checked (outlet.CheckAttributes).
func (s Spec) attributes(cur []outlet.Attribute) ([]outlet.Attribute, error) {
	out := slices.Clone(cur)
	for _, k := range s.RemoveAttributes {
		i := slices.IndexFunc(out, func(a outlet.Attribute) bool { return a.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("no attribute %q to remove", k)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, a := range s.Attributes {
		out = outlet.SetAttribute(out, a)
	}
	if err := outlet.CheckAttributes(out); err != nil {
		return nil, err
	}
	return out, nil
}

// flatAttributes is the attributes column: key, value, key, value …
func flatAttributes(as []outlet.Attribute) []string {
	out := make([]string, 0, 2*len(as))
	for _, a := range as {
		out = append(out, a.Key, a.Value)
	}
	return out
}

// OutletSpec changes one outlet of a drain. On an existing outlet, empty
// fields are left as they are (Headers: nil leaves them, an empty non-nil
// slice clears them).
type OutletSpec struct {
	Kind        outlet.Kind
	URL         string // OTLP: the full endpoint URL; remote write: the URL, userinfo = Basic auth
	User, Token string // Librato
	Headers     []outlet.Header
	Temporality outlet.Temporality
	// PercentileGauges (OTLP): also send each measure's percentiles as
	// gauges. nil leaves it as it is.
	PercentileGauges *bool
	// MaxBuckets (OTLP): buckets a side of an exponential histogram before
	// it is downscaled (outlet.CheckMaxBuckets). nil leaves it as it is.
	MaxBuckets *int
	// Histograms (remote write): measures as summaries or native
	// histograms. nil leaves it as it is.
	Histograms *outlet.Histograms
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// idLikeRe is what a drain id looks like ("d" and 16 hex digits): no
// drain may be named so, since commands that take an id or a name would
// take it for another drain's id.
var idLikeRe = regexp.MustCompile(`^d[0-9a-f]{16}$`)

func (s Spec) validate() error {
	if s.Name != nil && !nameRe.MatchString(*s.Name) {
		return fmt.Errorf("name %q: use 1-100 letters, digits, '.', '_' or '-'", *s.Name)
	}
	if s.Name != nil && idLikeRe.MatchString(*s.Name) {
		return fmt.Errorf("name %q looks like a drain id (d and 16 hex digits): choose another, so that no command takes one for the other", *s.Name)
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"prefix", s.Prefix}, {"source-prefix", s.SourcePrefix}} {
		if p.v != nil && *p.v != "" && !regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`).MatchString(*p.v) {
			return fmt.Errorf("%s %q: use letters, digits, '.', ':', '_' or '-'", p.flag, *p.v)
		}
	}
	if s.Routes != nil {
		if len(*s.Routes) > parse.MaxRouteTemplates {
			return fmt.Errorf("%d route templates: at most %d", len(*s.Routes), parse.MaxRouteTemplates)
		}
		for _, t := range *s.Routes {
			if err := parse.CheckRouteTemplate(t); err != nil {
				return err
			}
		}
	}
	for _, a := range s.Attributes {
		if err := outlet.CheckAttribute(a); err != nil {
			return err
		}
	}
	seen := map[outlet.Kind]bool{}
	for _, o := range s.Outlets {
		if seen[o.Kind] {
			return fmt.Errorf("two %s outlets: a drain has at most one of each kind", o.Kind)
		}
		seen[o.Kind] = true
		if err := o.validate(); err != nil {
			return err
		}
	}
	for _, k := range s.Remove {
		if k != outlet.Librato && k != outlet.OTLP && k != outlet.RemoteWrite {
			return fmt.Errorf("no outlet kind %q (librato, otlp, remotewrite)", k)
		}
		if seen[k] {
			return fmt.Errorf("the %s outlet is both changed and removed", k)
		}
	}
	return nil
}

func (o OutletSpec) validate() error {
	if o.URL != "" {
		if err := outlet.CheckEndpoint(o.URL); err != nil {
			return fmt.Errorf("%s URL: %w", o.Kind, err)
		}
	}
	for i, h := range o.Headers {
		if !outlet.HeaderName(h.Name) {
			// Not quoted: a mistyped "Name: secret" would be in it.
			return fmt.Errorf("%s header %d: the name is not a header name (NAME=VALUE, the name a token such as Authorization)", o.Kind, i+1)
		}
		if !outlet.HeaderValue(h.Value) || len(h.Value) > outlet.MaxHeaderValueBytes {
			return fmt.Errorf("%s header %s: the value has a line break or is too long", o.Kind, h.Name)
		}
	}
	switch o.Kind {
	case outlet.Librato:
		if o.URL != "" || len(o.Headers) > 0 || o.Temporality != "" || o.PercentileGauges != nil || o.MaxBuckets != nil || o.Histograms != nil {
			return errors.New("a Librato outlet takes only a user and a token (LIBRATO_URL sets the API)")
		}
	case outlet.OTLP:
		switch o.Temporality {
		case "", outlet.Cumulative, outlet.Delta:
		default:
			return fmt.Errorf("OTLP temporality %q: cumulative or delta", o.Temporality)
		}
		if o.MaxBuckets != nil {
			if err := outlet.CheckMaxBuckets(*o.MaxBuckets); err != nil {
				return fmt.Errorf("OTLP max buckets: %w", err)
			}
		}
		if o.Histograms != nil {
			return errors.New("native histograms are a remote write option (OTLP sends exponential histograms in delta mode)")
		}
	case outlet.RemoteWrite:
		if o.MaxBuckets != nil {
			return errors.New("max buckets is an OTLP option")
		}
		if o.Histograms != nil {
			if _, err := outlet.ParseHistograms(string(*o.Histograms)); err != nil {
				return err
			}
		}
		if o.Temporality != "" {
			return errors.New("remote write has no temporality (it is always cumulative)")
		}
		if o.PercentileGauges != nil {
			return errors.New("percentile gauges are an OTLP option (remote write always sends quantiles)")
		}
	default:
		return fmt.Errorf("no outlet kind %q (librato, otlp, remotewrite)", o.Kind)
	}
	if o.Kind != outlet.Librato && (o.User != "" || o.Token != "") {
		return fmt.Errorf("%s outlets take credentials as headers or in the URL, not --librato-*", o.Kind)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Add creates a drain and returns it with its secret, which is not stored
// and cannot be shown again.
func (d *Drains) Add(ctx context.Context, s Spec) (*Drain, string, error) {
	if s.Name == nil || *s.Name == "" {
		return nil, "", errors.New("a drain needs a --name (usually the Heroku app's name)")
	}
	if err := s.validate(); err != nil {
		return nil, "", err
	}
	for _, o := range s.Outlets {
		if err := o.complete(); err != nil {
			return nil, "", err
		}
	}
	id := "d" + randomHex(8)
	secret := randomHex(24)
	pt := true
	if s.ProcessTypes != nil {
		pt = *s.ProcessTypes
	}
	routes, mode, err := s.routes(nil, parse.RoutesOff)
	if err != nil {
		return nil, "", err
	}
	attrs, err := s.attributes(nil)
	if err != nil {
		return nil, "", err
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO drains (id, name, secret_hash, prefix, source_prefix, process_types, routes, route_metrics, attributes)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, *s.Name, hashSecret(secret), deref(s.Prefix), deref(s.SourcePrefix), pt, routes, mode.String(), flatAttributes(attrs))
		if err != nil {
			return nameErr(err)
		}
		for _, o := range s.Outlets {
			if err := d.putOutlet(ctx, tx, id, nil, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	dr, err := d.Get(ctx, id)
	return dr, secret, err
}

// routes returns a drain's route templates and mode once s is applied to
// the current ones, by parse's rule (ImpliedRouteMode, CheckRoutes).
func (s Spec) routes(cur []string, mode parse.RouteMode) ([]string, parse.RouteMode, error) {
	routes := cur
	if s.Routes != nil {
		routes = *s.Routes
		if s.RouteMetrics == nil {
			mode = parse.ImpliedRouteMode(mode, routes)
		}
	}
	if s.RouteMetrics != nil {
		mode = *s.RouteMetrics
	}
	if err := parse.CheckRoutes(mode, routes); err != nil && !errors.Is(err, parse.ErrRoutesOff) {
		return nil, 0, err // a drain keeps its templates while its route metrics are off
	}
	if routes == nil {
		routes = []string{}
	}
	return routes, mode, nil
}

// complete checks that a new outlet has what it needs.
func (o OutletSpec) complete() error {
	switch {
	case o.Kind == outlet.Librato && (o.User == "" || o.Token == ""):
		return errors.New("a Librato outlet needs both --librato-user and --librato-token")
	case o.Kind == outlet.OTLP && o.URL == "":
		return errors.New("an OTLP outlet needs --otlp-endpoint (the full URL, e.g. https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/metrics)")
	case o.Kind == outlet.RemoteWrite && o.URL == "":
		return errors.New("a remote-write outlet needs --remote-write-url")
	}
	return nil
}

// outletSecret is what is sealed for OTLP and remote-write outlets.
type outletSecret struct {
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers,omitempty"`
}

// putOutlet creates or changes one outlet of drain id in tx. cur is the
// outlet as it is (nil: a new one).
func (d *Drains) putOutlet(ctx context.Context, tx pgx.Tx, id string, cur *outlet.Outlet, o OutletSpec) error {
	merged := outlet.Outlet{Kind: o.Kind}
	if cur != nil {
		merged = *cur
	}
	if o.URL != "" {
		merged.URL = o.URL
	}
	if o.User != "" {
		merged.User = o.User
	}
	if o.Token != "" {
		merged.Token = o.Token
	}
	if o.Headers != nil {
		merged.Headers = o.Headers
	}
	if o.Temporality != "" {
		merged.Temporality = o.Temporality
	}
	if o.PercentileGauges != nil {
		merged.PercentileGauges = *o.PercentileGauges
	}
	if o.MaxBuckets != nil {
		merged.MaxBuckets = *o.MaxBuckets
	}
	if o.Histograms != nil {
		merged.Histograms = *o.Histograms
	}
	var plain, aad []byte
	if merged.Kind == outlet.Librato {
		plain, aad = []byte(merged.Token), []byte(id) // as drainmeter 0.1 sealed Librato tokens
	} else {
		sec := outletSecret{URL: merged.URL}
		for _, h := range merged.Headers {
			sec.Headers = append(sec.Headers, [2]string{h.Name, h.Value})
		}
		plain, _ = json.Marshal(sec)
		aad = []byte(id + "/" + string(merged.Kind))
	}
	sealed, err := d.keys.Seal(plain, aad)
	if err != nil {
		return err
	}
	maxBuckets := merged.MaxBuckets // 0: the default
	if merged.Kind != outlet.OTLP || maxBuckets == outlet.DefaultMaxBuckets {
		maxBuckets = 0
	}
	native := merged.Native()
	_, err = tx.Exec(ctx, `INSERT INTO outlets (drain_id, kind, url, username, secret, temporality, percentile_gauges,
			max_buckets, native_histograms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (drain_id, kind) DO UPDATE SET url = excluded.url, username = excluded.username,
			secret = excluded.secret, temporality = excluded.temporality, percentile_gauges = excluded.percentile_gauges,
			max_buckets = excluded.max_buckets, native_histograms = excluded.native_histograms,
			version = outlets.version + 1, updated_at = now()`,
		id, string(merged.Kind), redactedURL(merged), merged.User, sealed, string(merged.Temporality), merged.PercentileGauges,
		maxBuckets, native)
	if err != nil {
		return fmt.Errorf("drains: outlet: %w", err)
	}
	return nil
}

func redactedURL(o outlet.Outlet) string {
	if o.URL == "" {
		return ""
	}
	return outlet.RedactURL(o.URL)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nameErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return ErrNameUsed
	}
	return fmt.Errorf("drains: %w", err)
}

const drainCols = `id, name, secret_hash, previous_secret_hash, previous_secret_expires_at, prefix, source_prefix,
	process_types, routes, route_metrics, attributes, created_at, updated_at, disabled_at`

func scanDrain(row pgx.Row) (*Drain, error) {
	var dr Drain
	var mode string
	var attrs []string
	err := row.Scan(&dr.ID, &dr.Name, &dr.SecretHash, &dr.PreviousSecretHash, &dr.PreviousExpiresAt, &dr.Prefix, &dr.SourcePrefix,
		&dr.ProcessTypes, &dr.Routes, &mode, &attrs, &dr.CreatedAt, &dr.UpdatedAt, &dr.DisabledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	if dr.RouteMetrics, err = parse.ParseRouteMode(mode); err != nil { // the table's CHECK allows only these
		return nil, fmt.Errorf("drains: %w", err)
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		dr.Attributes = append(dr.Attributes, outlet.Attribute{Key: attrs[i], Value: attrs[i+1]})
	}
	return &dr, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadOutlets fills the drains' outlets; open decrypts their credentials.
func (d *Drains) loadOutlets(ctx context.Context, q querier, drains []*Drain, open bool) error {
	if len(drains) == 0 {
		return nil
	}
	byID := map[string]*Drain{}
	ids := make([]string, len(drains))
	for i, dr := range drains {
		byID[dr.ID], ids[i] = dr, dr.ID
	}
	rows, err := q.Query(ctx, `SELECT drain_id, kind, url, username, secret, temporality, percentile_gauges,
			max_buckets, native_histograms, version FROM outlets
		WHERE drain_id = ANY($1) ORDER BY drain_id, kind`, ids)
	if err != nil {
		return fmt.Errorf("drains: outlets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind, url, user, temp string
		var sealed []byte
		var version int64
		var pctGauges, native bool
		var maxBuckets int
		if err := rows.Scan(&id, &kind, &url, &user, &sealed, &temp, &pctGauges, &maxBuckets, &native, &version); err != nil {
			return fmt.Errorf("drains: outlets: %w", err)
		}
		o := outlet.Outlet{Kind: outlet.Kind(kind), URL: url, User: user, Temporality: outlet.Temporality(temp),
			PercentileGauges: pctGauges, MaxBuckets: maxBuckets, Version: version}
		if native {
			o.Histograms = outlet.NativeHistograms
		}
		if open {
			if err := d.openOutlet(id, &o, sealed); err != nil {
				return err
			}
		}
		byID[id].Outlets = append(byID[id].Outlets, o)
	}
	return rows.Err()
}

func (d *Drains) openOutlet(id string, o *outlet.Outlet, sealed []byte) error {
	if o.Kind == outlet.Librato {
		plain, err := d.keys.Open(sealed, []byte(id))
		if err != nil {
			return fmt.Errorf("drain %s: Librato token: %w", id, err)
		}
		o.Token = string(plain)
		return nil
	}
	plain, err := d.keys.Open(sealed, []byte(id+"/"+string(o.Kind)))
	if err != nil {
		return fmt.Errorf("drain %s: %s credentials: %w", id, o.Kind, err)
	}
	var sec outletSecret
	if err := json.Unmarshal(plain, &sec); err != nil {
		return fmt.Errorf("drain %s: %s credentials: %w", id, o.Kind, err)
	}
	o.URL = sec.URL
	for _, h := range sec.Headers {
		o.Headers = append(o.Headers, outlet.Header{Name: h[0], Value: h[1]})
	}
	return nil
}

// Get returns a drain by id or name, its outlets' credentials opened.
func (d *Drains) Get(ctx context.Context, idOrName string) (*Drain, error) {
	dr, err := scanDrain(d.pool.QueryRow(ctx, `SELECT `+drainCols+` FROM drains WHERE id = $1 OR name = $1
		ORDER BY (id = $1) DESC LIMIT 1`, idOrName))
	if err != nil {
		return nil, err
	}
	return dr, d.loadOutlets(ctx, d.pool, []*Drain{dr}, true)
}

// ByID returns a drain by id, its outlets' credentials opened; the auth
// path and the outlets use it.
func (d *Drains) ByID(ctx context.Context, id string) (*Drain, error) {
	dr, err := scanDrain(d.pool.QueryRow(ctx, `SELECT `+drainCols+` FROM drains WHERE id = $1`, id))
	if err != nil {
		return nil, err
	}
	return dr, d.loadOutlets(ctx, d.pool, []*Drain{dr}, true)
}

// List returns the drains (outlets without credentials), disabled ones
// only if all.
func (d *Drains) List(ctx context.Context, all bool) ([]*Drain, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+drainCols+` FROM drains WHERE $1 OR disabled_at IS NULL ORDER BY name`, all)
	if err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	var out []*Drain
	for rows.Next() {
		dr, err := scanDrain(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, dr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	return out, d.loadOutlets(ctx, d.pool, out, false)
}

// Remove disables a drain: its URL stops working (within the auth cache's
// expiry) and it leaves `drains list`; its row stays for the record.
func (d *Drains) Remove(ctx context.Context, idOrName string) (*Drain, error) {
	dr, err := d.Get(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if dr.DisabledAt != nil {
		return nil, ErrNotFound
	}
	_, err = d.pool.Exec(ctx, `UPDATE drains SET disabled_at = now(), updated_at = now(),
		name = name || '.removed.' || extract(epoch from now())::bigint WHERE id = $1`, dr.ID)
	if err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	return dr, nil
}

// MaxOverlap is the longest a previous secret can stay valid after a
// rotation.
const MaxOverlap = 7 * 24 * time.Hour

// RotateSecret gives a drain a new secret and returns it. The secret it
// replaces stays valid for overlap (0: it stops working within the auth
// cache's expiry), so that the app's old drain URL keeps working until it is
// replaced; a secret that was still in an earlier rotation's overlap is
// dropped. The drain returned has the new expiry.
func (d *Drains) RotateSecret(ctx context.Context, idOrName string, overlap time.Duration) (*Drain, string, error) {
	if overlap < 0 || overlap > MaxOverlap {
		return nil, "", fmt.Errorf("overlap %s: between 0 and %s", overlap, MaxOverlap)
	}
	dr, err := d.Get(ctx, idOrName)
	if err != nil {
		return nil, "", err
	}
	if dr.DisabledAt != nil {
		return nil, "", ErrNotFound
	}
	secret := randomHex(24)
	// The previous secret's expiry is the database's clock, as are the
	// other timestamps; dynos compare it with theirs (NTP-synchronized).
	err = d.pool.QueryRow(ctx, `UPDATE drains SET previous_secret_hash = CASE WHEN $3::float8 > 0 THEN secret_hash END,
			previous_secret_expires_at = CASE WHEN $3::float8 > 0 THEN now() + make_interval(secs => $3::float8) END,
			secret_hash = $2, updated_at = now()
		WHERE id = $1 RETURNING previous_secret_expires_at`, dr.ID, hashSecret(secret), overlap.Seconds()).Scan(&dr.PreviousExpiresAt)
	if err != nil {
		return nil, "", fmt.Errorf("drains: %w", err)
	}
	return dr, secret, nil
}

// FinishRotation ends a rotation's overlap now: the previous secret stops
// working within the auth cache's expiry. It reports whether there was an
// overlap to end.
func (d *Drains) FinishRotation(ctx context.Context, idOrName string) (*Drain, bool, error) {
	dr, err := d.Get(ctx, idOrName)
	if err != nil {
		return nil, false, err
	}
	if dr.DisabledAt != nil {
		return nil, false, ErrNotFound
	}
	tag, err := d.pool.Exec(ctx, `UPDATE drains SET previous_secret_hash = NULL, previous_secret_expires_at = NULL, updated_at = now()
		WHERE id = $1 AND previous_secret_expires_at > now()`, dr.ID)
	if err != nil {
		return nil, false, fmt.Errorf("drains: %w", err)
	}
	return dr, tag.RowsAffected() > 0, nil
}

// Set changes a drain's options and outlets, in one transaction. Every
// changed outlet gets a new version: dynos reload it at once when they next
// post, and a lane paused on its old credentials retries.
func (d *Drains) Set(ctx context.Context, idOrName string, s Spec) (*Drain, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	dr, err := d.Get(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if dr.DisabledAt != nil {
		return nil, ErrNotFound
	}
	sets, args := []string{"updated_at = now()"}, []any{dr.ID}
	add := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if s.Name != nil {
		add("name", *s.Name)
	}
	if s.Prefix != nil {
		add("prefix", *s.Prefix)
	}
	if s.SourcePrefix != nil {
		add("source_prefix", *s.SourcePrefix)
	}
	if s.ProcessTypes != nil {
		add("process_types", *s.ProcessTypes)
	}
	if s.Routes != nil || s.RouteMetrics != nil {
		routes, mode, err := s.routes(dr.Routes, dr.RouteMetrics)
		if err != nil {
			return nil, err
		}
		add("routes", routes)
		add("route_metrics", mode.String())
	}
	if len(s.Attributes) > 0 || len(s.RemoveAttributes) > 0 {
		attrs, err := s.attributes(dr.Attributes)
		if err != nil {
			return nil, err
		}
		add("attributes", flatAttributes(attrs))
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE drains SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...); err != nil {
			return nameErr(err)
		}
		for _, o := range s.Outlets {
			cur, ok := dr.outlet(o.Kind)
			if !ok {
				if err := o.complete(); err != nil {
					return err
				}
			}
			if err := d.putOutlet(ctx, tx, dr.ID, cur, o); err != nil {
				return err
			}
		}
		for _, k := range s.Remove {
			tag, err := tx.Exec(ctx, `DELETE FROM outlets WHERE drain_id = $1 AND kind = $2`, dr.ID, string(k))
			if err != nil {
				return fmt.Errorf("drains: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("drain %s has no %s outlet", dr.Name, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d.Get(ctx, dr.ID)
}

func (dr *Drain) outlet(k outlet.Kind) (*outlet.Outlet, bool) {
	for i := range dr.Outlets {
		if dr.Outlets[i].Kind == k {
			return &dr.Outlets[i], true
		}
	}
	return nil, false
}

// Reencrypt seals every outlet's credentials with the current (first) key
// and returns how many it changed.
func (d *Drains) Reencrypt(ctx context.Context) (int, error) {
	rows, err := d.pool.Query(ctx, `SELECT drain_id, kind, secret FROM outlets`)
	if err != nil {
		return 0, fmt.Errorf("drains: %w", err)
	}
	type sec struct {
		id, kind string
		sealed   []byte
	}
	var secs []sec
	for rows.Next() {
		var s sec
		if err := rows.Scan(&s.id, &s.kind, &s.sealed); err != nil {
			rows.Close()
			return 0, err
		}
		secs = append(secs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range secs {
		if d.keys.Current(s.sealed) {
			continue
		}
		aad := []byte(s.id + "/" + s.kind)
		if s.kind == string(outlet.Librato) {
			aad = []byte(s.id)
		}
		plain, err := d.keys.Open(s.sealed, aad)
		if err != nil {
			return n, fmt.Errorf("drain %s: %s: %w", s.id, s.kind, err)
		}
		sealed, err := d.keys.Seal(plain, aad)
		if err != nil {
			return n, err
		}
		// Not a new version: the credentials are the same.
		if _, err := d.pool.Exec(ctx, `UPDATE outlets SET secret = $3 WHERE drain_id = $1 AND kind = $2`, s.id, s.kind, sealed); err != nil {
			return n, fmt.Errorf("drains: %w", err)
		}
		n++
	}
	return n, nil
}
