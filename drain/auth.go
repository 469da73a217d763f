package drain

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
)

// SecretAuth authenticates the built-in drain configured by config vars: any
// user name (it names the sending app) with the password Secret. With an
// empty Secret every password is accepted; the server warns about it at
// start-up and refuses to run that way on a Heroku dyno.
type SecretAuth struct {
	caller Caller
	secret [sha256.Size]byte
	open   bool
}

// NewSecretAuth returns an Authenticator for one drain and one secret.
func NewSecretAuth(d Caller, secret string) *SecretAuth {
	return &SecretAuth{caller: d, secret: sha256.Sum256([]byte(secret)), open: secret == ""}
}

// Authenticate compares the password in constant time (over fixed-length
// hashes, so not even the secret's length leaks). A refusal names the
// drain (any user name is its).
func (a *SecretAuth) Authenticate(_ context.Context, _, password string) (Caller, bool, error) {
	got := sha256.Sum256([]byte(password))
	if a.open || subtle.ConstantTimeCompare(got[:], a.secret[:]) == 1 {
		return a.caller, true, nil
	}
	return Caller{ID: a.caller.ID}, false, nil
}
