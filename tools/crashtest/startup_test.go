package crashtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/servertest"
)

// TestServeRefusesBadDatabases: `octostore serve` exits with status 1 and
// a clear message instead of serving a database another process serves, a
// database written by a newer octostore, or a file that is not a database:
// exactly the message docs/operations.md ("Start-up checks") quotes.
func TestServeRefusesBadDatabases(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	ops := strings.Join(strings.Fields(string(doc)), " ") // the doc wraps long messages
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	db, err := persistence.Open(newer)
	if err != nil {
		t.Fatal(err)
	}
	v := persistence.SchemaVersion() + 7
	if _, err := db.WriteDB().Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	// A database served by another process (the lock file's holder).
	served := filepath.Join(dir, "served.db")
	first := servertest.Serve(t, binary(t), "--db", served, "--static-tokens", "a:tok")
	for _, c := range []struct {
		db, doc string
		subst   []string // doc placeholder, value, ...
	}{
		{served, "database is being served by another process: PATH (pid N holds the lock on PATH.lock); stop that server first, or give this one another --db",
			[]string{"PATH.lock", persistence.LockPath(served), "PATH", served, "pid N", fmt.Sprint("pid ", first.Cmd.Process.Pid)}},
		{newer, "database schema is newer than this octostore: database PATH has schema version N, this binary knows up to M; upgrade octostore",
			[]string{"PATH", newer, "version N", fmt.Sprint("version ", v), "up to M", fmt.Sprint("up to ", persistence.SchemaVersion())}},
		{garbage, "open database PATH: file is not a database", []string{"PATH", garbage}},
	} {
		if !strings.Contains(ops, "`"+c.doc+"`") {
			t.Fatalf("docs/operations.md does not quote `%s`", c.doc)
		}
		cmd := exec.Command(binary(t), "serve", "--addr", "127.0.0.1:0", "--db", c.db, "--static-tokens", "a:tok")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("serve on %s: %v, want exit status 1 (stderr %q)", filepath.Base(c.db), err, stderr.String())
		}
		want := "octostore: " + strings.NewReplacer(c.subst...).Replace(c.doc) + "\n"
		if !strings.HasSuffix(stderr.String(), want) {
			t.Fatalf("serve on %s printed\n%q\ndocs/operations.md says\n%q", filepath.Base(c.db), stderr.String(), want)
		}
	}
	if !strings.Contains(ops, "`octostore serve` then exits with status 1 and the message on stderr") {
		t.Fatal("docs/operations.md no longer says serve exits with status 1")
	}
}
