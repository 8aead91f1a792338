package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/client"
)

// TestTokenAdminWhileServing runs `octostore token create|list|revoke` (the
// real binary) against the database of a server that is running in this
// process: a created token is accepted without a restart, a revoked one is
// refused within the server's poll interval.
func TestTokenAdminWhileServing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	staticTok := "static-token-for-alice-0123456789"
	app := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Config.StaticTokens = db, map[string]string{staticTok: "alice"} })
	status := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", app.URL()+"/locks", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := apitest.Client(t, nil).Do(req) // checked against docs/openapi.yaml
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// waitRefused polls until tok is refused; the server checks the auth
	// epoch every httpd.PollInterval, so this is bounded by a few of those.
	waitRefused := func(tok, what string) {
		t.Helper()
		start := time.Now()
		deadline := start.Add(10 * httpd.PollInterval)
		for status(tok) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still accepted %v after the revocation", what, time.Since(start))
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s: refused after %v", what, time.Since(start).Round(time.Millisecond))
	}
	create := func(user string) string {
		t.Helper()
		r := octo(t, "", "", "token", "create", "--db", db, "--user", user).mustCode(t, exitOK, "token create")
		tok := strings.TrimSpace(r.stdout)
		if !strings.HasPrefix(tok, "octo_") || strings.Contains(tok, "\n") {
			t.Fatalf("token create printed %q", r.stdout)
		}
		fp := persistence.Fingerprint(persistence.HashToken(tok))
		if !strings.Contains(r.stderr, fp) || strings.Contains(r.stderr, tok) {
			t.Fatalf("token create note %q: want the fingerprint %s, never the token", r.stderr, fp)
		}
		return tok
	}
	fp := func(tok string) string { return persistence.Fingerprint(persistence.HashToken(tok)) }

	// create: accepted at once, no restart, no wait.
	carol1 := create("carol")
	if st := status(carol1); st != http.StatusOK {
		t.Fatalf("a token created while serving: %d, want 200 at once", st)
	}
	carol2, dave := create("carol"), create("dave")
	if status(carol2) != 200 || status(dave) != 200 {
		t.Fatal("created tokens refused")
	}

	// list: users, sources, fingerprints; never a token.
	r := octo(t, "", "", "token", "list", "--db", db).mustCode(t, exitOK, "token list")
	for _, want := range []string{"USER", "FINGERPRINT", "alice", "static", "carol", "dave", "cli", fp(carol1), fp(carol2), fp(dave), fp(staticTok)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("token list lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, tok := range []string{carol1, carol2, dave, staticTok} {
		if strings.Contains(r.stdout+r.stderr, tok) {
			t.Fatalf("token list shows a token:\n%s", r.stdout)
		}
	}
	r = octo(t, "", "", "token", "list", "--db", db, "--user", "carol", "--json").mustCode(t, exitOK, "token list --json")
	var listed struct {
		Tokens []struct{ User, Source, Fingerprint string } `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed.Tokens) != 2 ||
		listed.Tokens[0].User != "carol" || listed.Tokens[0].Source != "cli" || listed.Tokens[0].Fingerprint != fp(carol1) {
		t.Fatalf("token list --user carol --json: %v %s", err, r.stdout)
	}

	// revoke --user with two tokens is ambiguous: nothing revoked.
	r = octo(t, "", "", "token", "revoke", "--db", db, "--user", "carol").mustCode(t, exitUsage, "ambiguous revoke")
	if !strings.Contains(r.stderr, fp(carol1)) || !strings.Contains(r.stderr, "--all-for-user") {
		t.Fatalf("ambiguous revoke should list the candidates and the way out: %s", r.stderr)
	}

	// revoke --fingerprint: that token only.
	octo(t, "", "", "token", "revoke", "--db", db, "--fingerprint", fp(carol1)).mustCode(t, exitOK, "revoke --fingerprint")
	waitRefused(carol1, "revoked by fingerprint")
	if status(carol2) != 200 {
		t.Fatal("revoking one fingerprint revoked another token")
	}

	// revoke --user with a single token.
	octo(t, "", "", "token", "revoke", "--db", db, "--user", "dave").mustCode(t, exitOK, "revoke --user")
	waitRefused(dave, "revoked by user")

	// revoke --user --all-for-user.
	carol3 := create("carol")
	r = octo(t, "", "", "token", "revoke", "--db", db, "--user", "carol", "--all-for-user").mustCode(t, exitOK, "revoke --all-for-user")
	if strings.Count(r.stdout, "revoked ") != 2 {
		t.Fatalf("revoke --all-for-user output: %s", r.stdout)
	}
	waitRefused(carol2, "revoked with all-for-user")
	waitRefused(carol3, "revoked with all-for-user")
	if status(staticTok) != 200 {
		t.Fatal("the static token of another user was revoked")
	}

	// Errors and exit codes.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"revoke", "--db", db, "--user", "nobody"}, exitNotFound},
		{[]string{"revoke", "--db", db, "--fingerprint", "00000000"}, exitNotFound},
		{[]string{"revoke", "--db", db}, exitUsage},
		{[]string{"revoke", "--db", db, "--fingerprint", "zz"}, exitUsage},
		{[]string{"revoke", "--db", db, "--all-for-user"}, exitUsage},
		{[]string{"revoke", "--db", db, "--user", "carol", "--fingerprint", fp(carol1)}, exitUsage},
		{[]string{"create", "--db", db, "--user", "bad name"}, exitUsage},
		{[]string{"create", "--db", db}, exitUsage},
		{[]string{"create", "--user", "carol"}, exitUsage},
		{[]string{"list", "--db", filepath.Join(t.TempDir(), "missing.db")}, exitNotFound},
	} {
		octo(t, "", "", append([]string{"token"}, tc.args...)...).mustCode(t, tc.code, strings.Join(tc.args, " "))
	}

	// The database never held a raw token (the files, WAL included).
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(db + "*")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{carol1, carol2, carol3, dave, staticTok} {
			if bytes.Contains(b, []byte(tok)) {
				t.Fatalf("%s holds a raw token", filepath.Base(p))
			}
		}
	}
}

// TestTokenRevokeEndsOpenStreams: `octostore token revoke` (the real
// binary, another process writing the database) ends the open /events and
// /watch streams of the revoked token with a revoked event, within the
// server's auth-epoch poll interval (issue 12 §4); the user's stream of
// another token goes on.
func TestTokenRevokeEndsOpenStreams(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	app := mustRunMain(t, func(m *Main) { m.Config.DBPath = db })
	newToken := func() string {
		t.Helper()
		r := octo(t, "", "", "token", "create", "--db", db, "--user", "carol").mustCode(t, exitOK, "token create")
		return strings.TrimSpace(r.stdout)
	}
	tok, other := newToken(), newToken()
	ctx := context.Background()
	open := func(tok string, watch bool) *client.EventStream {
		t.Helper()
		c, err := client.New(app.URL(), tok, client.WithRetries(0), // every exchange checked against docs/openapi.yaml
			client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var s *client.EventStream
		if watch {
			s, err = c.WatchLock(ctx, "job")
		} else {
			s, err = c.Events(ctx, client.EventFilter{})
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	events, watch, survivor := open(tok, false), open(tok, true), open(other, false)

	start := time.Now()
	fp := persistence.Fingerprint(persistence.HashToken(tok))
	octo(t, "", "", "token", "revoke", "--db", db, "--fingerprint", fp).mustCode(t, exitOK, "token revoke")
	bound := time.After(10 * httpd.PollInterval) // a bound on the wait, which ends on the stream's end
	for _, s := range []*client.EventStream{events, watch} {
		var last client.Event
	read:
		for {
			select {
			case e, ok := <-s.C:
				if !ok {
					break read
				}
				last = e
			case <-bound:
				t.Fatalf("a stream of the revoked token still open %v after token revoke", time.Since(start))
			}
		}
		if last.Type != client.EventRevoked || !errors.Is(s.Err(), client.ErrRevoked) {
			t.Fatalf("the stream ended with %+v (%v), want a revoked event", last, s.Err())
		}
	}
	t.Logf("streams of the revoked token ended %v after token revoke began", time.Since(start).Round(time.Millisecond))
	select {
	case e, ok := <-survivor.C:
		t.Fatalf("the other token's stream got %+v (open %v)", e, ok)
	default:
	}
}

// TestTokenCreateBeforeFirstServe: self-hosting without GitHub: a token made
// before the server ever ran (token create --create) works when it starts
// (and no dev token appears). Without --create a missing database is "not
// found" (a mistyped path must not start a new, empty one).
func TestTokenCreateBeforeFirstServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	octo(t, "", "", "token", "create", "--db", db, "--user", "erin").mustCode(t, exitNotFound, "token create without --create")
	if _, err := os.Stat(db); err == nil {
		t.Fatal("token create without --create made a database")
	}
	tok := strings.TrimSpace(octo(t, "", "", "token", "create", "--db", db, "--user", "erin", "--create").mustCode(t, exitOK, "token create --create").stdout)
	var out bytes.Buffer
	app := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Stdout = db, &out })
	req, _ := http.NewRequest("GET", app.URL()+"/locks", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apitest.Client(t, nil).Do(req) // checked against docs/openapi.yaml
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token from token create: %d", resp.StatusCode)
	}
	if strings.Contains(out.String(), "octo_") {
		t.Fatalf("serve created a dev token although one existed: %s", out.String())
	}
}
