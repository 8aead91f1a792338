package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A static-tokens file takes comments after the entry; a token is one word.
func TestStaticTokensFileComments(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       map[string]string // token → login
		err        string            // substring of the error, "" for none
	}{
		{"trailing comment", "ci-bot:tok # the CI's token\n", map[string]string{"tok": "ci-bot"}, ""},
		{"comment after a tab", "ci-bot:tok\t# note\n", map[string]string{"tok": "ci-bot"}, ""},
		{"whole-line comments and blanks", "# tokens\n\n   # indented\nalice:tokA\n", map[string]string{"tokA": "alice"}, ""},
		{"# inside a token", "alice:tok#1 # the first\n", map[string]string{"tok#1": "alice"}, ""},
		{"white space inside a token", "alice:tokA\nbob:to s3cr3t\n", nil, "line 2"},
		{"comment without a space is part of the token", "bob:tok#note\n", map[string]string{"tok#note": "bob"}, ""},
		{"no colon", "alice\n", nil, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			err := parseStaticTokensFile(strings.NewReader(tc.file), got)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("the error quotes the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("tokens %q, want %q", got, tc.want)
			}
			for tok, login := range tc.want {
				if got[tok] != login {
					t.Fatalf("tokens %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// A server started with a commented static-tokens file accepts the token
// without its comment (the real binary, as docs/operations.md shows it).
func TestStaticTokensFileCommentsServe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("ci-bot:ci-token-0123456789abcdef  # rotated 2026-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startListening(t, "serve", "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "o.db"), "--static-tokens-file", file)
	octo(t, url, "ci-token-0123456789abcdef", "lock", "list").mustCode(t, exitOK, "the token without its comment")
	octo(t, url, "ci-token-0123456789abcdef  # rotated 2026-01", "lock", "list").mustCode(t, exitAuth, "the whole line as a token")
}

// writeFile writes body to a new file of dir with mode perm (chmod, so the
// umask does not change it) and returns its path.
func writeFile(t *testing.T, dir, name, body string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// --token-file (and OCTOSTORE_TOKEN_FILE) reads the first line of a file
// only its owner may read, on every client command, the TUI and the load
// tester.
func TestTokenFile(t *testing.T) {
	url := startServer(t)
	dir := t.TempDir()
	good := writeFile(t, dir, "alice", tokA+"\nsecond line ignored\n", 0o600)
	crlf := writeFile(t, dir, "alice-crlf", "  "+tokA+"\r\n", 0o400)
	open := writeFile(t, dir, "open", tokA+"\n", 0o644)
	group := writeFile(t, dir, "group", tokA+"\n", 0o640)
	empty := writeFile(t, dir, "empty", "\nlater\n", 0o600)

	octoEnv(t, url, "", nil, "lock", "acquire", "tf", "--token-file", good).mustCode(t, exitOK, "--token-file")
	octoEnv(t, url, "", nil, "lock", "status", "tf", "--token-file", crlf).mustCode(t, exitOK, "CRLF and spaces around the token")
	octoEnv(t, url, "", []string{"OCTOSTORE_TOKEN_FILE=" + good}, "lock", "list").mustCode(t, exitOK, "OCTOSTORE_TOKEN_FILE")
	for _, f := range []string{open, group} {
		r := octoEnv(t, url, "", nil, "lock", "list", "--token-file", f).mustCode(t, exitAuth, "a file others may read")
		if !strings.Contains(r.stderr, "readable by others") || !strings.Contains(r.stderr, "chmod 600") || strings.Contains(r.stderr, tokA) {
			t.Fatalf("stderr %q: want the refusal and its fix, never the token", r.stderr)
		}
		octoEnv(t, url, "", nil, "tui", "--token-file", f).mustCode(t, exitAuth, "tui with a file others may read")
	}
	octoEnv(t, url, "", nil, "loadtest", "lock-cycle", "-d", "200ms", "--warmup", "0s", "-c", "2", "--token-file", open).mustCode(t, exitAuth, "loadtest with a file others may read")
	octoEnv(t, url, "", nil, "loadtest", "lock-cycle", "-d", "200ms", "--warmup", "0s", "-c", "2", "--token-file", good).mustCode(t, exitOK, "loadtest --token-file")
	octoEnv(t, url, "", nil, "lock", "list", "--token-file", empty).mustCode(t, exitAuth, "an empty first line")
	octoEnv(t, url, "", nil, "lock", "list", "--token-file", filepath.Join(dir, "missing")).mustCode(t, exitAuth, "a missing file")

	// One credential: both flags is a usage error; a flag beats the other's
	// variable; both variables is a usage error.
	octoEnv(t, url, "", nil, "lock", "list", "--token", tokA, "--token-file", good).mustCode(t, exitUsage, "both flags")
	octoEnv(t, url, "wrong", nil, "lock", "list", "--token-file", good).mustCode(t, exitOK, "--token-file over OCTOSTORE_TOKEN")
	octoEnv(t, url, "", []string{"OCTOSTORE_TOKEN_FILE=" + open}, "lock", "list", "--token", tokA).mustCode(t, exitOK, "--token over OCTOSTORE_TOKEN_FILE")
	octoEnv(t, url, tokA, []string{"OCTOSTORE_TOKEN_FILE=" + good}, "lock", "list").mustCode(t, exitUsage, "both variables")
}

// lock run gives the command no credential unless --pass-token.
func TestLockRunStripsToken(t *testing.T) {
	url := startServer(t)
	file := writeFile(t, t.TempDir(), "tok", tokA+"\n", 0o600)
	show := []string{"--", "sh", "-c", `echo "token=${OCTOSTORE_TOKEN:-none} file=${OCTOSTORE_TOKEN_FILE:-none} lock=$OCTOSTORE_LOCK_NAME"`}
	for _, tc := range []struct {
		name  string
		token string
		extra []string
		args  []string
		want  string
	}{
		{"from the environment", tokA, nil, nil, "token=none file=none lock=env"},
		{"from a file variable", "", []string{"OCTOSTORE_TOKEN_FILE=" + file}, nil, "token=none file=none lock=env"},
		{"--pass-token", tokA, nil, []string{"--pass-token"}, "token=" + tokA + " file=none lock=env"},
		{"--pass-token with --token-file", "", nil, []string{"--token-file", file, "--pass-token"}, "token=" + tokA + " file=none lock=env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"lock", "run", "env"}, tc.args...), show...)
			r := octoEnv(t, url, tc.token, tc.extra, args...).mustCode(t, exitOK, "lock run")
			if strings.TrimSpace(r.stdout) != tc.want {
				t.Fatalf("the command saw %q, want %q", r.stdout, tc.want)
			}
		})
	}
	octo(t, url, tokA, "lock", "run", "env", "--json", "--", "true").mustCode(t, exitUsage, "lock run --json")
}

// token create on a path with no database is "not found" unless --create.
func TestTokenCreateNeedsADatabase(t *testing.T) {
	_, db := startServerDB(t)
	typo := db + "x"
	r := octo(t, "", "", "token", "create", "--db", typo, "--user", "carol").mustCode(t, exitNotFound, "a mistyped --db")
	if !strings.Contains(r.stderr, "--create") || r.stdout != "" {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if _, err := os.Stat(typo); err == nil {
		t.Fatal("a database was created at the mistyped path")
	}
	octo(t, "", "", "token", "create", "--db", "sqlite://"+db, "--user", "carol").mustCode(t, exitOK, "the URL form of --db")
}
