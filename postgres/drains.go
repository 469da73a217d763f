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
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Drain is a row of the drains table, with the Librato token decrypted.
type Drain struct {
	ID           string
	Name         string
	SecretHash   []byte
	LibratoUser  string
	LibratoToken string // empty when the drain's rollups are logged
	Prefix       string
	SourcePrefix string
	ProcessTypes bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DisabledAt   *time.Time
}

// CheckSecret compares a password with the drain's secret in constant time.
func (d *Drain) CheckSecret(password string) bool {
	sum := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(sum[:], d.SecretHash) == 1
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

// Spec is what `drains add` and `drains set` change. Nil fields are left alone.
type Spec struct {
	Name         *string
	LibratoUser  *string
	LibratoToken *string
	Prefix       *string
	SourcePrefix *string
	ProcessTypes *bool
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

func (s Spec) validate() error {
	if s.Name != nil && !nameRe.MatchString(*s.Name) {
		return fmt.Errorf("name %q: use 1-100 letters, digits, '.', '_' or '-'", *s.Name)
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"prefix", s.Prefix}, {"source-prefix", s.SourcePrefix}} {
		if p.v != nil && *p.v != "" && !regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`).MatchString(*p.v) {
			return fmt.Errorf("%s %q: use letters, digits, '.', ':', '_' or '-'", p.flag, *p.v)
		}
	}
	if s.LibratoUser != nil && s.LibratoToken != nil && (*s.LibratoUser == "") != (*s.LibratoToken == "") {
		return errors.New("give both --librato-user and --librato-token, or neither (the drain's rollups are then logged)")
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
	id := "d" + randomHex(8)
	secret := randomHex(24)
	var token []byte
	if s.LibratoToken != nil && *s.LibratoToken != "" {
		var err error
		if token, err = d.keys.Seal([]byte(*s.LibratoToken), []byte(id)); err != nil {
			return nil, "", err
		}
	}
	pt := true
	if s.ProcessTypes != nil {
		pt = *s.ProcessTypes
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO drains (id, name, secret_hash, librato_user, librato_token, prefix, source_prefix, process_types)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		id, *s.Name, hashSecret(secret), deref(s.LibratoUser), token, deref(s.Prefix), deref(s.SourcePrefix), pt)
	if err != nil {
		return nil, "", nameErr(err)
	}
	dr, err := d.Get(ctx, id)
	return dr, secret, err
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

const drainCols = `id, name, secret_hash, librato_user, librato_token, prefix, source_prefix, process_types, created_at, updated_at, disabled_at`

func (d *Drains) scan(row pgx.Row, open bool) (*Drain, error) {
	var dr Drain
	var token []byte
	err := row.Scan(&dr.ID, &dr.Name, &dr.SecretHash, &dr.LibratoUser, &token, &dr.Prefix, &dr.SourcePrefix,
		&dr.ProcessTypes, &dr.CreatedAt, &dr.UpdatedAt, &dr.DisabledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	if open && token != nil {
		plain, err := d.keys.Open(token, []byte(dr.ID))
		if err != nil {
			return nil, fmt.Errorf("drain %s: Librato token: %w", dr.ID, err)
		}
		dr.LibratoToken = string(plain)
	}
	return &dr, nil
}

// Get returns a drain by id or name, its token decrypted.
func (d *Drains) Get(ctx context.Context, idOrName string) (*Drain, error) {
	return d.scan(d.pool.QueryRow(ctx, `SELECT `+drainCols+` FROM drains WHERE id = $1 OR name = $1
		ORDER BY (id = $1) DESC LIMIT 1`, idOrName), true)
}

// ByID returns a drain by id, its token decrypted; the auth path uses it.
func (d *Drains) ByID(ctx context.Context, id string) (*Drain, error) {
	return d.scan(d.pool.QueryRow(ctx, `SELECT `+drainCols+` FROM drains WHERE id = $1`, id), true)
}

// List returns the drains (tokens not decrypted), disabled ones only if all.
func (d *Drains) List(ctx context.Context, all bool) ([]*Drain, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+drainCols+` FROM drains WHERE $1 OR disabled_at IS NULL ORDER BY name`, all)
	if err != nil {
		return nil, fmt.Errorf("drains: %w", err)
	}
	defer rows.Close()
	var out []*Drain
	for rows.Next() {
		dr, err := d.scan(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, dr)
	}
	return out, rows.Err()
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

// RotateSecret gives a drain a new secret and returns it. The old one stops
// working within the auth cache's expiry.
func (d *Drains) RotateSecret(ctx context.Context, idOrName string) (*Drain, string, error) {
	dr, err := d.Get(ctx, idOrName)
	if err != nil {
		return nil, "", err
	}
	if dr.DisabledAt != nil {
		return nil, "", ErrNotFound
	}
	secret := randomHex(24)
	if _, err := d.pool.Exec(ctx, `UPDATE drains SET secret_hash = $2, updated_at = now() WHERE id = $1`, dr.ID, hashSecret(secret)); err != nil {
		return nil, "", fmt.Errorf("drains: %w", err)
	}
	return dr, secret, nil
}

// Set changes a drain's options.
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
	if s.LibratoUser != nil {
		add("librato_user", *s.LibratoUser)
	}
	if s.LibratoToken != nil {
		var token []byte
		if *s.LibratoToken != "" {
			if token, err = d.keys.Seal([]byte(*s.LibratoToken), []byte(dr.ID)); err != nil {
				return nil, err
			}
		}
		add("librato_token", token)
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
	if _, err := d.pool.Exec(ctx, `UPDATE drains SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...); err != nil {
		return nil, nameErr(err)
	}
	return d.Get(ctx, dr.ID)
}

// Reencrypt seals every token with the current (first) key and returns how
// many it changed.
func (d *Drains) Reencrypt(ctx context.Context) (int, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, librato_token FROM drains WHERE librato_token IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("drains: %w", err)
	}
	type tok struct {
		id     string
		sealed []byte
	}
	var toks []tok
	for rows.Next() {
		var t tok
		if err := rows.Scan(&t.id, &t.sealed); err != nil {
			rows.Close()
			return 0, err
		}
		toks = append(toks, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, t := range toks {
		if d.keys.Current(t.sealed) {
			continue
		}
		plain, err := d.keys.Open(t.sealed, []byte(t.id))
		if err != nil {
			return n, fmt.Errorf("drain %s: %w", t.id, err)
		}
		sealed, err := d.keys.Seal(plain, []byte(t.id))
		if err != nil {
			return n, err
		}
		if _, err := d.pool.Exec(ctx, `UPDATE drains SET librato_token = $2, updated_at = now() WHERE id = $1`, t.id, sealed); err != nil {
			return n, fmt.Errorf("drains: %w", err)
		}
		n++
	}
	return n, nil
}
