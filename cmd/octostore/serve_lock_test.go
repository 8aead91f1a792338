package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/servertest"
)

// TestSecondServeRefused: with one `octostore serve` on a database, a second
// one on the same file exits 1 with a message naming the lock file and the
// first server's pid, and changes nothing (before the serving lock it
// started, granted the lock the first had granted, and its static-token sync
// deleted the first's tokens). The token commands and backup keep working
// beside the server. When the first server is gone, even by kill -9, the
// database can be served again at once. Two real processes.
func TestSecondServeRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	serve := func(tokens string) []string {
		return []string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--static-tokens", tokens, "--log-level", "warn"}
	}
	start := func(what string) (*servertest.Proc, string) {
		t.Helper()
		var stderr bytes.Buffer
		p, err := servertest.Start(octostoreBin, serve("alice:"+tokA), &stderr, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v: %s", what, err, stderr.String())
		}
		t.Cleanup(func() { p.Stop(30 * time.Second) })
		px := apitest.Proxy(t, p.URL) // checked against docs/openapi.yaml
		t.Cleanup(px.Close)
		return p, px.URL
	}
	first, url := start("first server")
	octo(t, url, tokA, "lock", "acquire", "dup", "--ttl", "1m").mustCode(t, exitOK, "alice acquires from the first server")

	r := octo(t, "", "", serve("bob:"+tokB)...).mustCode(t, exitFailure, "a second serve on the same database")
	for _, want := range []string{"being served", persistence.LockPath(db), fmt.Sprintf("pid %d", first.Cmd.Process.Pid)} {
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
	first.Cmd.Process.Signal(syscall.SIGKILL)
	<-first.Done
	_, url2 := start("server after kill -9")
	if st := lockStatusJSON(t, url2, "dup"); st["holder"] != "alice" {
		t.Fatalf("lock after the restart: %v", st)
	}
}

// TestMainRefusesAServedDatabase: the same in one process: a second Main on
// the database of a running one fails to run with persistence.ErrServed,
// and the first keeps serving.
func TestMainRefusesAServedDatabase(t *testing.T) {
	first := mustRunMain(t, func(m *Main) { m.Config.StaticTokens = map[string]string{tokA: "alice"} })
	second := newTestMain(t)
	second.Config.DBPath = first.Config.DBPath
	second.Config.StaticTokens = map[string]string{tokB: "bob"}
	err := second.Run(context.Background())
	if err == nil {
		second.Close()
		t.Fatal("a second Main served the database of a running one")
	}
	if !errors.Is(err, persistence.ErrServed) {
		t.Fatalf("second Main: %v, want ErrServed", err)
	}
	if code, body := get(t, first.URL()+"/locks", tokA); code != 200 {
		t.Fatalf("the first server after the refused start: %d %s", code, body)
	}
}
