package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// serve flags for sign-in with GitHub.
func init() {
	serveCommand.Flags = append(serveCommand.Flags,
		&cli.StringFlag{Name: "github-client-id", Usage: "client ID of the GitHub OAuth app (enables sign-in with GitHub)", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_ID", "GITHUB_CLIENT_ID"}},
		&cli.StringFlag{Name: "github-client-secret", Usage: "client secret of the GitHub OAuth app (prefer the env var or --github-client-secret-file: flags show in ps)", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_SECRET", "GITHUB_CLIENT_SECRET"}},
		&cli.StringFlag{Name: "github-client-secret-file", Usage: "file holding the client secret of the GitHub OAuth app", EnvVars: []string{"OCTOSTORE_GITHUB_CLIENT_SECRET_FILE"}},
		&cli.StringFlag{Name: "github-redirect-url", Usage: "callback URL registered with the OAuth app: https://HOST/auth/github/callback", EnvVars: []string{"OCTOSTORE_GITHUB_REDIRECT_URL", "GITHUB_REDIRECT_URI"}},
		&cli.StringFlag{Name: "github-auth-url", Value: httpd.DefaultGitHubAuthURL, Usage: "GitHub authorize endpoint (GitHub Enterprise: https://HOST/login/oauth/authorize)", EnvVars: []string{"OCTOSTORE_GITHUB_AUTH_URL"}},
		&cli.StringFlag{Name: "github-token-url", Value: httpd.DefaultGitHubTokenURL, Usage: "GitHub token endpoint (GitHub Enterprise: https://HOST/login/oauth/access_token)", EnvVars: []string{"OCTOSTORE_GITHUB_TOKEN_URL"}},
		&cli.StringFlag{Name: "github-api-url", Value: httpd.DefaultGitHubAPIURL, Usage: "GitHub API base; the user is read from {api}/user (GitHub Enterprise: https://HOST/api/v3)", EnvVars: []string{"OCTOSTORE_GITHUB_API_URL"}},
		&cli.DurationFlag{Name: "github-timeout", Value: 10 * time.Second, Usage: "bound on a sign-in's calls to GitHub (code exchange plus user fetch)", EnvVars: []string{"OCTOSTORE_GITHUB_TIMEOUT"}},
	)
	serveOptionHooks = append(serveOptionHooks, githubOptions)
}

func githubOptions(c *cli.Context, o *httpd.Options) error {
	secret := c.String("github-client-secret")
	if p := c.String("github-client-secret-file"); p != "" {
		if secret != "" {
			return exitCode(exitUsage, errors.New("give --github-client-secret or --github-client-secret-file, not both"))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return exitCode(exitUsage, fmt.Errorf("--github-client-secret-file: %w", err))
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return exitCode(exitUsage, fmt.Errorf("--github-client-secret-file %s is empty", p))
		}
	}
	if c.Duration("github-timeout") <= 0 {
		return exitCode(exitUsage, errors.New("--github-timeout must be positive"))
	}
	o.GitHub = httpd.GitHubOAuth{
		ClientID:     strings.TrimSpace(c.String("github-client-id")),
		ClientSecret: secret,
		RedirectURL:  strings.TrimSpace(c.String("github-redirect-url")),
		AuthURL:      c.String("github-auth-url"),
		TokenURL:     c.String("github-token-url"),
		APIURL:       c.String("github-api-url"),
		Timeout:      c.Duration("github-timeout"),
	}
	if _, err := o.GitHub.WithDefaults(); err != nil {
		return exitCode(exitUsage, err)
	}
	return nil
}
