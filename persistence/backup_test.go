package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// TestBackupUnderLoadIsAPrefix takes a backup while writers commit
// continuously. Writes get increasing numbers in commit order (lock
// "k<i mod 50>" gets token i), so a consistent copy holds exactly the
// writes up to some number n: every key's token is the largest i <= n of
// its residue. Every write acknowledged before the backup began is in it;
// the copy passes integrity_check and opens as an octostore database.
func TestBackupUnderLoadIsAPrefix(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	db, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Close(); db.Close() }()

	const keys = 50
	var (
		mu      sync.Mutex // orders numbering with enqueueing
		next    uint64
		ackedMu sync.Mutex
		acked   uint64 // every write <= acked has committed
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan error, 1)
				mu.Lock()
				next++
				i := next
				now := time.Now().Truncate(time.Millisecond)
				_, err := w.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: fmt.Sprint("k", i%keys), Holder: "h", LeaseID: "l",
					Token: i, ExpiresAt: now.Add(time.Hour), AcquiredAt: now}}, func(err error) { done <- err })
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				if err := <-done; err != nil {
					t.Error(err)
					return
				}
				ackedMu.Lock()
				if i > acked {
					acked = i // callbacks run in commit order: everything before i committed too
				}
				ackedMu.Unlock()
			}
		}()
	}
	waitUntil := func(n uint64) {
		for {
			ackedMu.Lock()
			a := acked
			ackedMu.Unlock()
			if a >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil(500)
	ackedMu.Lock()
	before := acked
	ackedMu.Unlock()
	dst := filepath.Join(dir, "backup.db")
	info, err := Backup(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(before + 200) // the load went on during and after the backup
	close(stop)
	wg.Wait()
	t.Logf("backup: %+v; %d writes acknowledged before it began", info, before)

	// The copy is a prefix of the writes.
	copyDB, err := sql.Open("sqlite3", "file:"+dst+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	tokens := map[uint64]uint64{}
	var n uint64
	rows, err := copyDB.Query(`SELECT name, fencing_token FROM locks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var tok uint64
		rows.Scan(&name, &tok)
		var k uint64
		fmt.Sscanf(name, "k%d", &k)
		tokens[k] = tok
		if tok > n {
			n = tok
		}
	}
	rows.Close()
	if n < before {
		t.Fatalf("backup holds writes up to %d, but %d were acknowledged before it began", n, before)
	}
	for k := uint64(0); k < keys; k++ {
		want := n - (n+keys-k)%keys // the largest i <= n with i mod keys == k
		if tokens[k] != want {
			t.Fatalf("backup is not a consistent snapshot: it holds write %d but key k%d has token %d, want %d", n, k, tokens[k], want)
		}
	}
	if info.Locks != keys {
		t.Fatalf("info.Locks = %d, want %d", info.Locks, keys)
	}
	if _, err := os.Stat(dst + "-wal"); err == nil {
		t.Fatal("the backup needs a -wal file: it is not self-contained")
	}
	// It opens as an octostore database (schema and quick_check).
	restored, err := Open(dst)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	restored.Close()

	if _, err := Backup(context.Background(), src, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("backup over an existing file: %v, want a refusal", err)
	}
}

// TestOpenRefusesNewerSchema: a database written by a newer octostore
// (higher user_version) is refused with a message that says what to do.
func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion() + 1
	if _, err := db.WriteDB().Exec(fmt.Sprintf("PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open a schema-%d database: %v, want ErrNewerSchema", newer, err)
	}
	for _, want := range []string{path, fmt.Sprint(newer), fmt.Sprint(SchemaVersion()), "upgrade octostore"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q does not mention %q", err, want)
		}
	}
}

// TestOpenRefusesCorruptDatabase: a damaged database is refused at start
// (quick_check or SQLite's own checks), never served.
func TestOpenRefusesCorruptDatabase(t *testing.T) {
	t.Run("garbage file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "garbage.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("this is not a database\n", 500)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "not a database") {
			t.Fatalf("open garbage: %v, want an error saying it is not a database", err)
		}
	})
	t.Run("damaged pages", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "damaged.db")
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(db, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := NewStore(db, w)
		now := time.Now().Truncate(time.Millisecond)
		for i := 0; i < 3000; i++ {
			if _, err := st.Enqueue(actors.PutLock{Lock: actors.LockRecord{Name: fmt.Sprintf("lock-%05d-%s", i, strings.Repeat("x", 40)), Holder: "h",
				LeaseID: "l", Token: uint64(i + 1), ExpiresAt: now.Add(time.Hour), AcquiredAt: now}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Apply(actors.PutLock{Lock: actors.LockRecord{Name: "last", Token: 1}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, err := db.WriteDB().Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		// Overwrite the middle of the file (b-tree pages of the locks
		// table), keeping the header intact.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		if fi.Size() < 64<<10 {
			t.Fatalf("database only %d bytes", fi.Size())
		}
		junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 4096))
		for off := int64(8192); off+int64(len(junk)) < fi.Size()-4096; off += 32 << 10 {
			f.WriteAt(junk, off)
		}
		f.Close()
		_, err = Open(path)
		if err == nil {
			t.Fatal("a database with damaged pages was opened")
		}
		if !strings.Contains(err.Error(), "integrity") && !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("open a damaged database: %v; want an integrity/malformed error", err)
		}
		t.Logf("refused: %v", err)
	})
}
