package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// parseServe parses serve's flags (and environment) into a configuration,
// as `octostore serve` does before Run.
func parseServe(t *testing.T, args ...string) (ServeConfig, error) {
	t.Helper()
	var cfg ServeConfig
	app := &cli.App{
		Writer: os.Stderr, ErrWriter: os.Stderr,
		Commands: []*cli.Command{{Name: "serve", Flags: serveFlags(&cfg), Action: func(*cli.Context) error { return cfg.validate() }}},
	}
	err := app.Run(append([]string{"octostore", "serve"}, args...))
	return cfg, err
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	if err != nil {
		return exitFailure
	}
	return exitOK
}

func TestServeGitHubFlags(t *testing.T) {
	for _, k := range []string{"OCTOSTORE_GITHUB_CLIENT_ID", "OCTOSTORE_GITHUB_CLIENT_SECRET", "OCTOSTORE_GITHUB_REDIRECT_URL",
		"OCTOSTORE_GITHUB_CLIENT_SECRET_FILE", "OCTOSTORE_GITHUB_API_URL", "OCTOSTORE_GITHUB_TIMEOUT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("GITHUB_CLIENT_ID", "env-id")
	t.Setenv("GITHUB_CLIENT_SECRET", "env-secret")
	t.Setenv("GITHUB_REDIRECT_URI", "https://octo.example.com/auth/github/callback")
	o, err := parseServe(t, "--github-api-url", "https://ghe.example.com/api/v3", "--github-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	g := o.GitHub
	if g.ClientID != "env-id" || g.ClientSecret != "env-secret" || g.RedirectURL != "https://octo.example.com/auth/github/callback" ||
		g.APIURL != "https://ghe.example.com/api/v3" || g.AuthURL != httpd.DefaultGitHubAuthURL ||
		g.TokenURL != httpd.DefaultGitHubTokenURL || g.Timeout != 3*time.Second {
		t.Fatalf("options %+v", g)
	}

	// The secret from a file, not both.
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("file-secret\n"), 0o600)
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	o, err = parseServe(t, "--github-client-secret-file", f)
	if err != nil || o.GitHub.ClientSecret != "file-secret" {
		t.Fatalf("secret file: %q %v", o.GitHub.ClientSecret, err)
	}
	if _, err := parseServe(t, "--github-client-secret-file", f, "--github-client-secret", "x"); err == nil {
		t.Fatal("both a secret and a secret file must be refused")
	}

	// Half a configuration is a usage error naming what is missing.
	t.Setenv("GITHUB_REDIRECT_URI", "")
	_, err = parseServe(t, "--github-client-secret", "s3cr3t")
	if code := exitCodeOf(err); code != exitUsage || !strings.Contains(err.Error(), "redirect-url") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("missing redirect URL: %v (exit %d)", err, code)
	}
}

func TestServeResourceFlags(t *testing.T) {
	o, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	kinds := func(o ServeConfig) string {
		return fmt.Sprintf("limits %+v flags %+v config %+v", o.Limits, o.Flags, o.ConfigKeys)
	}
	if o.Limits.MaxPerUser != 10000 || o.Flags.MaxPerUser != 1000 || o.ConfigKeys.MaxPerUser != 1000 || o.ConfigKeys.History != 100 || o.Limits.FlushInterval != actors.DefaultLimitFlushInterval {
		t.Fatalf("defaults: %s", kinds(o))
	}
	o, err = parseServe(t, "--max-limits-per-user=5", "--max-flags-per-user=-1", "--max-config-keys-per-user=7",
		"--config-history=3", "--limit-flush-interval=0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Limits.MaxPerUser != 5 || o.Flags.MaxPerUser != -1 || o.ConfigKeys.MaxPerUser != 7 || o.ConfigKeys.History != 3 || o.Limits.FlushInterval != actors.LimitFlushEveryBatch {
		t.Fatalf("set: %s", kinds(o))
	}
	for _, bad := range [][]string{
		{"--max-flags-per-user=0"}, {"--max-limits-per-user=-2"}, {"--config-history=0"}, {"--limit-flush-interval=-1s"},
	} {
		if _, err := parseServe(t, bad...); exitCodeOf(err) != exitUsage {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	t.Setenv("OCTOSTORE_MAX_FLAGS_PER_USER", "12")
	t.Setenv("OCTOSTORE_LIMIT_FLUSH_INTERVAL", "250ms")
	if o, err = parseServe(t); err != nil {
		t.Fatal(err)
	}
	if o.Flags.MaxPerUser != 12 || o.Limits.FlushInterval != 250*time.Millisecond {
		t.Fatalf("from the environment: %s", kinds(o))
	}
}

// TestServeStreamCapFlag: --max-streams-per-user (and its variable) sets the
// per-user event stream cap; it defaults to httpd's default and must be
// positive.
func TestServeStreamCapFlag(t *testing.T) {
	t.Setenv("OCTOSTORE_MAX_STREAMS_PER_USER", "")
	os.Unsetenv("OCTOSTORE_MAX_STREAMS_PER_USER")
	o, err := parseServe(t)
	if err != nil || o.Server.MaxStreamsPerUser != httpd.DefaultMaxStreamsPerUser || httpd.DefaultMaxStreamsPerUser != 16 {
		t.Fatalf("default: %d %v", o.Server.MaxStreamsPerUser, err)
	}
	if o, err = parseServe(t, "--max-streams-per-user=64"); err != nil || o.Server.MaxStreamsPerUser != 64 {
		t.Fatalf("set: %d %v", o.Server.MaxStreamsPerUser, err)
	}
	for _, bad := range []string{"0", "-1"} {
		if _, err := parseServe(t, "--max-streams-per-user="+bad); exitCodeOf(err) != exitUsage {
			t.Errorf("--max-streams-per-user=%s: %v, want a usage error", bad, err)
		}
	}
	t.Setenv("OCTOSTORE_MAX_STREAMS_PER_USER", "3")
	if o, err = parseServe(t); err != nil || o.Server.MaxStreamsPerUser != 3 {
		t.Fatalf("from the environment: %d %v", o.Server.MaxStreamsPerUser, err)
	}
}

// TestServeMemoryLimitFlag: --memory-limit (and its variable) is the Go
// heap's soft limit in bytes; unset it is 0 (Run resolves the default:
// memlimit.go); -1 is none; 0 is refused.
func TestServeMemoryLimitFlag(t *testing.T) {
	t.Setenv("OCTOSTORE_MEMORY_LIMIT", "")
	os.Unsetenv("OCTOSTORE_MEMORY_LIMIT")
	for _, c := range []struct {
		args []string
		want int64
	}{{nil, 0}, {[]string{"--memory-limit=1073741824"}, 1 << 30}, {[]string{"--memory-limit=-1"}, -1}} {
		if o, err := parseServe(t, c.args...); err != nil || o.MemoryLimit != c.want {
			t.Errorf("%v: %d %v, want %d", c.args, o.MemoryLimit, err, c.want)
		}
	}
	for _, bad := range []string{"0", "1GiB", "lots"} {
		if _, err := parseServe(t, "--memory-limit="+bad); err == nil {
			t.Errorf("--memory-limit=%s accepted", bad)
		}
	}
	if _, err := parseServe(t, "--memory-limit=0"); exitCodeOf(err) != exitUsage {
		t.Errorf("--memory-limit=0: %v, want a usage error", err)
	}
	t.Setenv("OCTOSTORE_MEMORY_LIMIT", "536870912")
	if o, err := parseServe(t); err != nil || o.MemoryLimit != 512<<20 {
		t.Fatalf("from the environment: %d %v", o.MemoryLimit, err)
	}
}

func TestDBPath(t *testing.T) {
	for in, want := range map[string]string{
		"./octostore.db":                "./octostore.db",
		"/var/lib/o.db":                 "/var/lib/o.db",
		"sqlite:///var/lib/o.db":        "/var/lib/o.db",
		"sqlite://data/o.db":            "data/o.db",
		"sqlite:o.db":                   "o.db",
		"file:/tmp/o.db?mode=rwc":       "/tmp/o.db",
		"sqlite:///var/o.db?cache=true": "/var/o.db",
	} {
		if got := dbPath(in); got != want {
			t.Errorf("dbPath(%q) = %q, want %q", in, got, want)
		}
	}
	// --db and DATABASE_URL take the URL forms.
	t.Setenv("DATABASE_URL", "sqlite:///var/lib/env.db")
	if o, err := parseServe(t); err != nil || o.DBPath != "/var/lib/env.db" {
		t.Fatalf("DATABASE_URL: %q %v", o.DBPath, err)
	}
	if o, err := parseServe(t, "--db", "file:/tmp/flag.db?mode=rwc"); err != nil || o.DBPath != "/tmp/flag.db" {
		t.Fatalf("--db: %q %v", o.DBPath, err)
	}
}

func FuzzParseStaticTokens(f *testing.F) {
	for _, s := range []string{"alice:tokA,bob:tokB", "", ",", "alice", ":tok", "alice:", "a:b:c", "al ice:tok", "alice:tok,alice2:tok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := map[string]string{}
		if err := parseStaticTokens(s, m); err != nil {
			return
		}
		for tok, user := range m {
			if tok == "" || !names.Login.Valid(user) {
				t.Fatalf("parseStaticTokens(%q) accepted user %q token %q", s, user, tok)
			}
		}
	})
}
