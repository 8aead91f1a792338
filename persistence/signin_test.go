package persistence_test

import (
	"testing"
	"time"

	"github.com/octostore/octostore/persistence/storetest"
)

// SignIn is the whole sign-in policy in one transaction (the contract in
// persistence/storetest, RunSignIn): new user, repeat sign-in, the token
// cap, a rename, a login that belongs to another account (refused, nothing
// written), rotation and revocation, and two accounts racing for one login
// (the check and the writes are one transaction on the single writer).
func TestSignIn(t *testing.T) {
	storetest.RunSignIn(t, func(t *testing.T, now func() time.Time) storetest.SignInStore {
		db, s := openTokenStore(t)
		db.Now = now
		return s
	})
}
