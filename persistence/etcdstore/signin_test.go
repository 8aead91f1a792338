package etcdstore

import (
	"testing"
	"time"

	"github.com/octostore/octostore/persistence/storetest"
)

// SignIn on etcd has persistence.Store.SignIn's policy: the sign-in
// contract of persistence/storetest (RunSignIn), as SQLite meets it.
func TestSignIn(t *testing.T) {
	c := startCluster(t, 1, nil)[0].Client()
	storetest.RunSignIn(t, func(t *testing.T, now func() time.Time) storetest.SignInStore {
		s, _ := openTestStore(t, c, Options{Prefix: "/signin/", Now: now})
		return s
	})
}
