package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/persistence"
)

func mustOpen(t *testing.T, path string) *persistence.DB {
	t.Helper()
	db, err := persistence.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func schemaVersion(t *testing.T, db *persistence.DB) int {
	t.Helper()
	var v int
	if err := db.ReadDB().QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOpenRefusesASecondServer: a database is served by one DB at a time.
// A second Open fails with ErrServed naming the lock file and the holder's
// pid; tools open it beside the server with OpenShared; after Close the
// database can be served again. (Before the serving lock, the second Open
// succeeded and two servers granted the same lock.)
func TestOpenRefusesASecondServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	first := mustOpen(t, path)
	second, err := persistence.Open(path)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second Open of a served database succeeded")
	}
	if !errors.Is(err, persistence.ErrServed) {
		t.Fatalf("second Open: %v, want ErrServed", err)
	}
	for _, want := range []string{path, persistence.LockPath(path), fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q does not name %q", err, want)
		}
	}

	// A tool beside the server: reads and writes through SQLite's locking.
	tool, err := persistence.OpenShared(path)
	if err != nil {
		t.Fatalf("OpenShared beside a server: %v", err)
	}
	raw, info, err := tool.CreateToken(context.Background(), "erin", persistence.SourceCLI, time.Now())
	if err != nil || raw == "" {
		t.Fatalf("create token beside a server: %v", err)
	}
	toks, err := first.ListTokens(context.Background(), "erin")
	if err != nil || len(toks) != 1 || toks[0].Fingerprint() != info.Fingerprint() {
		t.Fatalf("the server does not see the tool's token: %v %v", toks, err)
	}
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustOpen(t, path)
	again.Close()
}

// TestOpenSharedDoesNotMigrateBesideAServer: a tool of another version must
// not change the schema under a running server; it refuses instead.
func TestOpenSharedDoesNotMigrateBesideAServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	srv := mustOpen(t, path)
	defer srv.Close()
	older := persistence.SchemaVersion() - 1
	if _, err := srv.WriteDB().Exec(fmt.Sprintf("PRAGMA user_version = %d", older)); err != nil {
		t.Fatal(err)
	}
	tool, err := persistence.OpenShared(path)
	if err == nil {
		tool.Close()
		t.Fatal("OpenShared beside a server of an older schema succeeded")
	}
	if !strings.Contains(err.Error(), "does not migrate") {
		t.Fatalf("OpenShared: %v", err)
	}
	if v := schemaVersion(t, srv); v != older {
		t.Fatalf("the tool changed the schema version to %d", v)
	}
	// A newer schema is refused beside a server as anywhere.
	if _, err := srv.WriteDB().Exec(fmt.Sprintf("PRAGMA user_version = %d", persistence.SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	if tool, err := persistence.OpenShared(path); !errors.Is(err, persistence.ErrNewerSchema) {
		if err == nil {
			tool.Close()
		}
		t.Fatalf("OpenShared of a newer schema: %v", err)
	}
}

// TestOpenSharedAlone: with no server, a tool creates and migrates the
// database (token create before the first serve), and a server can start
// once the tool has closed it.
func TestOpenSharedAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	tool, err := persistence.OpenShared(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, tool); v != persistence.SchemaVersion() {
		t.Fatalf("schema version %d after OpenShared of a new database", v)
	}
	// A server starting while the tool works waits for it (schema lock),
	// then serves.
	started := make(chan error, 1)
	go func() {
		db, err := persistence.Open(path)
		if err == nil {
			db.Close()
		}
		started <- err
	}()
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("Open after the tool: %v", err)
	}
}
