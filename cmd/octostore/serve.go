package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// serveCommand is `octostore serve`. Other files add their flags with
// serveCommand.Flags = append(serveCommand.Flags, ...) in their init, and
// turn them into options with serveOptionHooks.
var serveCommand = &cli.Command{
	Name:   "serve",
	Usage:  "run the octostore server",
	Action: serveAction,
}

var serveFlags = []cli.Flag{
	&cli.StringFlag{Name: "addr", Value: "127.0.0.1:3000", Usage: "listen address (host:port; port 0 picks a free one)", EnvVars: []string{"OCTOSTORE_ADDR", "BIND_ADDR"}},
	&cli.StringFlag{Name: "db", Value: "./octostore.db", Usage: "SQLite database file", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"}},
	&cli.StringFlag{Name: "static-tokens", Usage: `fixed tokens "user:token,user2:token2"`, EnvVars: []string{"OCTOSTORE_STATIC_TOKENS", "STATIC_TOKENS"}},
	&cli.StringFlag{Name: "static-tokens-file", Usage: "file with one user:token per line", EnvVars: []string{"OCTOSTORE_STATIC_TOKENS_FILE"}},
	&cli.StringFlag{Name: "admin-key", Usage: "key of the admin principal (bearer or X-Admin-Key)", EnvVars: []string{"OCTOSTORE_ADMIN_KEY", "ADMIN_KEY"}},
	&cli.IntFlag{Name: "max-body-bytes", Value: 1 << 20, Usage: "request body limit (413 beyond)", EnvVars: []string{"OCTOSTORE_MAX_BODY_BYTES"}},
	&cli.IntFlag{Name: "max-locks-per-user", Value: 1000, Usage: "active locks per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_LOCKS_PER_USER"}},
	&cli.DurationFlag{Name: "idle-timeout", Value: httpdDefaultIdle, Usage: "passivate a resource actor after this long without requests", EnvVars: []string{"OCTOSTORE_IDLE_TIMEOUT"}},
	&cli.IntFlag{Name: "max-conns", Value: 16384, Usage: "concurrent connections at most", EnvVars: []string{"OCTOSTORE_MAX_CONNS"}},
	&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"OCTOSTORE_LOG_LEVEL"}},
}

const httpdDefaultIdle = 30e9 // 30s

// serveOptionHooks let other files turn their flags into options.
var serveOptionHooks []func(c *cli.Context, o *httpd.Options) error

func init() {
	serveCommand.Flags = append(serveFlags, serveCommand.Flags...)
	register(serveCommand)
}

func serveOptions(c *cli.Context) (httpd.Options, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return httpd.Options{}, exitCode(exitUsage, fmt.Errorf("--log-level: %w", err))
	}
	o := httpd.Options{
		Addr:            c.String("addr"),
		DBPath:          dbPath(c.String("db")),
		AdminKey:        c.String("admin-key"),
		MaxBodyBytes:    c.Int("max-body-bytes"),
		MaxLocksPerUser: c.Int("max-locks-per-user"),
		IdleTimeout:     c.Duration("idle-timeout"),
		StaticTokens:    map[string]string{},
		Stdout:          c.App.Writer,
		Logger:          slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})),
	}
	o.Server.MaxConns = c.Int("max-conns")
	if err := httpd.ParseStaticTokens(c.String("static-tokens"), o.StaticTokens); err != nil {
		return o, exitCode(exitUsage, fmt.Errorf("--static-tokens: %w", err))
	}
	if p := c.String("static-tokens-file"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			return o, exitCode(exitUsage, fmt.Errorf("--static-tokens-file: %w", err))
		}
		err = httpd.ParseStaticTokensFile(f, o.StaticTokens)
		f.Close()
		if err != nil {
			return o, exitCode(exitUsage, fmt.Errorf("--static-tokens-file %s: %w", p, err))
		}
	}
	for _, h := range serveOptionHooks {
		if err := h(c, &o); err != nil {
			return o, err
		}
	}
	return o, nil
}

func serveAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitCode(exitUsage, errors.New("serve takes no arguments"))
	}
	o, err := serveOptions(c)
	if err != nil {
		return err
	}
	app, err := httpd.Start(o)
	if err != nil {
		return exitCode(exitFailure, err)
	}
	<-c.Context.Done() // SIGINT or SIGTERM (main's signal context)
	o.Logger.Info("shutting down")
	if err := app.Close(); err != nil {
		return exitCode(exitFailure, err)
	}
	o.Logger.Info("stopped cleanly")
	return nil
}

// dbPath accepts a plain path or the URL forms upstream's DATABASE_URL uses
// (sqlite://PATH, sqlite:PATH, file:PATH); the query part of a URL is dropped.
func dbPath(v string) string {
	for _, p := range []string{"sqlite://", "sqlite:", "file:"} {
		if strings.HasPrefix(v, p) {
			v = strings.TrimPrefix(v, p)
			if i := strings.IndexByte(v, '?'); i >= 0 {
				v = v[:i]
			}
			break
		}
	}
	return v
}
