package persistence

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// Lock writes go to the journal; reads see the newest record (holder id
// included) whether or not it was folded; the journal is folded when it
// grows and at every start.
func TestLockJournalFold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := NewStore(db, w)
	const names = 300
	const writes = 3*foldThreshold + 123
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	latest := map[string]uint64{}
	maxRows := 0
	for i := 1; i <= writes; i++ {
		name := fmt.Sprint("n", i*7%names)
		if err := st.Apply(actors.PutLock{Lock: actors.LockRecord{Name: name, Holder: "h", HolderID: fmt.Sprint("id", i), LeaseID: "l", Token: uint64(i), ExpiresAt: exp}}); err != nil {
			t.Fatal(err)
		}
		latest[name] = uint64(i)
		if i%500 == 0 {
			var rows int
			db.ReadDB().QueryRow(`SELECT count(*) FROM lock_log`).Scan(&rows)
			if rows > maxRows {
				maxRows = rows
			}
			for n, tok := range latest {
				r, ok, err := st.LoadLock(n)
				if err != nil || !ok || r.Token != tok || r.HolderID != fmt.Sprint("id", tok) {
					t.Fatalf("after %d writes: %s = %+v ok=%v err=%v, want token %d", i, n, r, ok, err, tok)
				}
			}
		}
	}
	if maxRows > foldThreshold+1 || maxRows == 0 {
		t.Fatalf("journal grew to %d rows (threshold %d)", maxRows, foldThreshold)
	}
	var folded int
	db.ReadDB().QueryRow(`SELECT count(*) FROM locks`).Scan(&folded)
	if folded != names {
		t.Fatalf("locks has %d rows after folds, want %d", folded, names)
	}
	active := 0
	st.ActiveLocks(time.Now(), func(r actors.LockRecord) {
		active++
		if r.Token != latest[r.Name] || r.HolderID != fmt.Sprint("id", r.Token) {
			t.Errorf("ActiveLocks %s token %d, want %d", r.Name, r.Token, latest[r.Name])
		}
	})
	if active != names {
		t.Fatalf("ActiveLocks saw %d locks, want %d", active, names)
	}
	w.Close()
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err = NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st = NewStore(db, w)
	var rows int
	db.ReadDB().QueryRow(`SELECT count(*) FROM lock_log`).Scan(&rows)
	if rows != 0 {
		t.Fatalf("journal has %d rows after a start, want 0", rows)
	}
	for n, tok := range latest {
		r, ok, err := st.LoadLock(n)
		if err != nil || !ok || r.Token != tok || r.HolderID != fmt.Sprint("id", tok) {
			t.Fatalf("after restart: %s = %+v, want token %d", n, r, tok)
		}
	}
}
