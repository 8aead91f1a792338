package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// serveOptionsFor parses serve's flags (and environment) into options.
func serveOptionsFor(t *testing.T, args ...string) (httpd.Options, error) {
	t.Helper()
	var o httpd.Options
	app := &cli.App{
		Writer: os.Stderr, ErrWriter: os.Stderr,
		Commands: []*cli.Command{{Name: "serve", Flags: serveCommand.Flags, Action: func(c *cli.Context) error {
			var err error
			o, err = serveOptions(c)
			return err
		}}},
	}
	err := app.Run(append([]string{"octostore", "serve"}, args...))
	return o, err
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
	o, err := serveOptionsFor(t, "--github-api-url", "https://ghe.example.com/api/v3", "--github-timeout", "3s")
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
	o, err = serveOptionsFor(t, "--github-client-secret-file", f)
	if err != nil || o.GitHub.ClientSecret != "file-secret" {
		t.Fatalf("secret file: %q %v", o.GitHub.ClientSecret, err)
	}
	if _, err := serveOptionsFor(t, "--github-client-secret-file", f, "--github-client-secret", "x"); err == nil {
		t.Fatal("both a secret and a secret file must be refused")
	}

	// Half a configuration is a usage error naming what is missing.
	t.Setenv("GITHUB_REDIRECT_URI", "")
	_, err = serveOptionsFor(t, "--github-client-secret", "s3cr3t")
	if code := exitCodeOf(err); code != exitUsage || !strings.Contains(err.Error(), "redirect-url") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("missing redirect URL: %v (exit %d)", err, code)
	}
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
