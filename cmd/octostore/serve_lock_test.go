package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/octostore/octostore/persistence"
)

// TestSecondServeRefused: with one `octostore serve` on a database, a second
// one on the same file exits 1 with a message naming the lock file and the
// first server's pid, and changes nothing (before the serving lock it
// started, granted the lock the first had granted, and its static-token sync
// deleted the first's tokens). The token commands and backup keep working
// beside the server. When the first server is gone, even by kill -9, the
// database can be served again at once.
func TestSecondServeRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	serve := func(tokens string) []string {
		return []string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--static-tokens", tokens, "--log-level", "warn"}
	}
	url, first := startListeningCmd(t, "first server", serve("alice:"+tokA)...)
	octo(t, url, tokA, "lock", "acquire", "dup", "--ttl", "1m").mustCode(t, exitOK, "alice acquires from the first server")

	r := octo(t, "", "", serve("bob:"+tokB)...).mustCode(t, exitFailure, "a second serve on the same database")
	for _, want := range []string{"being served", persistence.LockPath(db), fmt.Sprintf("pid %d", first.Process.Pid)} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("the refusal does not name %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "listening on") {
		t.Fatalf("the second server listened: %s", r.stdout)
	}
	// The first server is unharmed: alice's token still works, the lock is
	// still hers.
	if st := lockStatusJSON(t, url, "dup"); st["holder"] != "alice" {
		t.Fatalf("lock after the refused start: %v", st)
	}

	// Operator tools beside the running server.
	tok := strings.TrimSpace(octo(t, "", "", "token", "create", "--db", db, "--user", "erin").mustCode(t, exitOK, "token create beside the server").stdout)
	octo(t, url, tok, "lock", "list").mustCode(t, exitOK, "the new token at the running server")
	if r := octo(t, "", "", "token", "list", "--db", db, "--user", "erin").mustCode(t, exitOK, "token list beside the server"); !strings.Contains(r.stdout, "erin") {
		t.Fatalf("token list: %s", r.stdout)
	}
	octo(t, "", "", "token", "revoke", "--db", db, "--user", "erin").mustCode(t, exitOK, "token revoke beside the server")
	octo(t, "", "", "backup", "--db", db, filepath.Join(t.TempDir(), "copy.db")).mustCode(t, exitOK, "backup beside the server")

	// kill -9: the kernel drops the lock with the process.
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	url2 := startListening(t, "server after kill -9", serve("alice:"+tokA)...)
	if st := lockStatusJSON(t, url2, "dup"); st["holder"] != "alice" {
		t.Fatalf("lock after the restart: %v", st)
	}
}
