//go:build unix

package persistence

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

// withUmask runs the test under a permissive umask (0000: the process would
// create 0666 files and 0777 directories by default) and restores it.
func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestFilesArePrivate: under a permissive umask the database, its WAL and
// shared-memory files and a backup are created 0600, and the data directory
// 0700 when Open creates it (issue 12, item 11). An existing database left
// world-readable by an older octostore is tightened at Open, and Open says
// so.
func TestFilesArePrivate(t *testing.T) {
	withUmask(t, 0)
	dir := filepath.Join(t.TempDir(), "data", "octo")
	path := filepath.Join(dir, "octostore.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(db, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, w)
	now := time.Now()
	if err := s.Apply(actors.PutLock{Lock: actors.LockRecord{Name: "a", Holder: "u:1", LeaseID: "l", Token: 1,
		ExpiresAt: now.Add(time.Hour), AcquiredAt: now}}); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(t, dir); got != 0o700 {
		t.Errorf("data directory created %v, want 0700", got)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", LockPath(path)} {
		if got := modeOf(t, p); got != 0o600 {
			t.Errorf("%s is %v, want 0600", filepath.Base(p), got)
		}
	}
	out := filepath.Join(t.TempDir(), "backup.db")
	if _, err := Backup(context.Background(), path, out); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(t, out); got != 0o600 {
		t.Errorf("backup is %v, want 0600", got)
	}
	s.Close()
	db.Close()

	// An older octostore left them world-readable: Open tightens them.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := modeOf(t, path); got != 0o600 {
		t.Errorf("reopened database is %v, want 0600", got)
	}
	if len(db.Tightened) == 0 {
		t.Error("Open tightened the database's mode without saying so (DB.Tightened)")
	}
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v after reopening, want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
}
