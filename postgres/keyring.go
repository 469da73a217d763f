package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Keyring encrypts outlet credentials at rest with AES-256-GCM.
// DRAINMETER_KEY holds one or more comma-separated keys; the first encrypts,
// all decrypt, so a key is rotated by putting a new one first, running
// `drainmeter drains reencrypt`, then removing the old one. Each key is
//
//   - 64 hex digits, or base64 of 32 bytes: the AES key itself;
//   - any other secret of at least MinSecretChars characters (what Heroku's
//     app.json "generator": "secret" makes, taken as opaque): the AES key is
//     derived from it with HKDF-SHA-256.
type Keyring struct {
	keys []ringKey
}

type ringKey struct {
	id   [4]byte // the first bytes of SHA-256(key): says which key sealed a token
	aead cipher.AEAD
}

// ciphertext layout: version(1) | key id(4) | nonce(12) | sealed token
const sealVersion = 1

// ErrNoKey means DRAINMETER_KEY is not set.
var ErrNoKey = errors.New("DRAINMETER_KEY is not set (generate one with: drainmeter keys generate)")

// ParseKeyring reads DRAINMETER_KEY. An empty value gives an empty keyring
// that can neither encrypt nor decrypt.
func ParseKeyring(s string) (*Keyring, error) {
	k := &Keyring{}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		raw, err := decodeKey(f)
		if err != nil {
			return nil, fmt.Errorf("DRAINMETER_KEY: key %d: %w", i+1, err)
		}
		block, _ := aes.NewCipher(raw) // 32 bytes: cannot fail
		aead, _ := cipher.NewGCM(block)
		sum := sha256.Sum256(raw)
		rk := ringKey{aead: aead}
		copy(rk.id[:], sum[:4])
		k.keys = append(k.keys, rk)
	}
	return k, nil
}

// MinSecretChars is the length from which a DRAINMETER_KEY entry that is
// not a 32-byte key in hex or base64 is taken as a secret to derive the key
// from.
const MinSecretChars = 32

// hkdfInfo binds keys derived from a secret to their use. Changing it would
// make every token sealed under a derived key unreadable.
const hkdfInfo = "drainmeter outlet credentials v1"

// decodeKey returns the AES-256 key of one DRAINMETER_KEY entry. Its errors
// never quote the entry.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	if len(s) < MinSecretChars {
		return nil, fmt.Errorf("too short: use at least %d characters (drainmeter keys generate prints a key)", MinSecretChars)
	}
	return hkdf.Key(sha256.New, []byte(s), nil, hkdfInfo, 32)
}

// NewKey returns a fresh key in DRAINMETER_KEY's format.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux
	return base64.StdEncoding.EncodeToString(b)
}

// Empty reports whether the keyring has no key.
func (k *Keyring) Empty() bool { return len(k.keys) == 0 }

// Seal encrypts plain, bound to aad (the drain id).
func (k *Keyring) Seal(plain, aad []byte) ([]byte, error) {
	if k.Empty() {
		return nil, ErrNoKey
	}
	rk := k.keys[0]
	out := make([]byte, 1+4+12, 1+4+12+len(plain)+16)
	out[0] = sealVersion
	copy(out[1:5], rk.id[:])
	_, _ = rand.Read(out[5:17])
	return rk.aead.Seal(out, out[5:17], plain, aad), nil
}

// Open decrypts what Seal made, with whichever key sealed it.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if k.Empty() {
		return nil, ErrNoKey
	}
	if len(sealed) < 1+4+12+16 || sealed[0] != sealVersion {
		return nil, errors.New("token: not a sealed token")
	}
	for _, rk := range k.keys {
		if [4]byte(sealed[1:5]) == rk.id {
			plain, err := rk.aead.Open(nil, sealed[5:17], sealed[17:], aad)
			if err != nil {
				return nil, fmt.Errorf("token: %w", err)
			}
			return plain, nil
		}
	}
	return nil, errors.New("token: sealed with a key that is not in DRAINMETER_KEY")
}

// Current reports whether sealed was made with the first (current) key.
func (k *Keyring) Current(sealed []byte) bool {
	return !k.Empty() && len(sealed) >= 5 && [4]byte(sealed[1:5]) == k.keys[0].id
}
