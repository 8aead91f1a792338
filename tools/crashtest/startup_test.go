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
)

// TestServeRefusesBadDatabases: `octostore serve` exits with status 1 and
// a clear message instead of serving a database written by a newer
// octostore, or a file that is not a database.
func TestServeRefusesBadDatabases(t *testing.T) {
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
	for _, c := range []struct{ db, want string }{
		{newer, fmt.Sprintf("schema version %d", v)},
		{garbage, "not a database"},
	} {
		cmd := exec.Command(binary(t), "serve", "--addr", "127.0.0.1:0", "--db", c.db, "--static-tokens", "a:tok")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("serve on %s: %v, want exit status 1 (stderr %q)", filepath.Base(c.db), err, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Fatalf("serve on %s: stderr %q does not say %q", filepath.Base(c.db), stderr.String(), c.want)
		}
	}
}
