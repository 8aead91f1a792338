package persistence_test

import (
	"path/filepath"
	"testing"

	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/persistence/storetest"
)

// The store contract (persistence/storetest), against SQLite.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, err := persistence.Open(filepath.Join(t.TempDir(), "contract.db"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := persistence.NewWriter(db, persistence.WriterOptions{})
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		s := persistence.NewStore(db, w)
		t.Cleanup(func() {
			s.Close()
			db.Close()
		})
		return s
	})
}
