package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// `octostore token create|list|revoke`: operator tools. With --db they work
// on the database directly, also while a server uses it: each change is one
// transaction that bumps the auth epoch, so the server accepts a created
// token at once (it looks unknown tokens up in the database) and refuses a
// revoked one within its poll interval (500 ms), without a restart. With
// --url and the admin key (--token, --token-file or $OCTOSTORE_TOKEN) they
// ask the server (GET/POST /admin/tokens, POST /admin/tokens/revoke): the
// way in cluster mode, where the tokens live in etcd and the leader is
// their only writer; any node forwards them to it.

func tokenAdminCommands() []*cli.Command {
	create := leaf("create", "create a token for a user (a local user is created if needed) and print it once", "",
		tokenAdminFlags(&cli.StringFlag{Name: "user", Usage: "login of the user (" + names.Login.Pattern() + "; required)"},
			&cli.BoolFlag{Name: "create", Usage: "with --db: create the database if there is none at --db (a new, empty server state)"},
			jsonFlag()),
		tokenCreate)
	create.UsageText = "octostore token create (--db PATH [--create] | --url URL) --user NAME [--json]"
	list := leaf("list", "list stored tokens (user, source, created, fingerprint; never the token)", "",
		tokenAdminFlags(&cli.StringFlag{Name: "user", Usage: "only this user's tokens"}, jsonFlag()),
		tokenList)
	list.UsageText = "octostore token list (--db PATH | --url URL) [--user NAME] [--json]"
	revoke := leaf("revoke", "revoke tokens by fingerprint or by user", "",
		tokenAdminFlags(
			&cli.StringFlag{Name: "fingerprint", Usage: "the token whose fingerprint (as token list shows it, or longer) is F"},
			&cli.StringFlag{Name: "user", Usage: "the user's token (the user must have exactly one unless --all-for-user)"},
			&cli.BoolFlag{Name: "all-for-user", Usage: "with --user: every token of the user"}),
		tokenRevoke)
	revoke.UsageText = "octostore token revoke (--db PATH | --url URL) (--fingerprint F | --user NAME [--all-for-user])"
	return []*cli.Command{create, list, revoke}
}

// tokenAdminFlags are the flags of the token admin commands: --db, or the
// connection flags (--url and the admin key), then extra.
func tokenAdminFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{tokenDBFlag()}, connFlags(extra...)...)
}

// Environment variables of --db (serve's too).
var dbEnv = []string{"OCTOSTORE_DB", "DATABASE_URL"}

// viaServer reports whether a token admin command asks the server (--url)
// rather than working on the database (--db). A flag on the command line
// wins over the environment; from the environment alone, a database
// ($OCTOSTORE_DB) wins over $OCTOSTORE_URL, which every client command
// reads. Neither is a usage error.
func viaServer(c *cli.Context) (bool, error) {
	dbArg := false
	if c.IsSet("db") {
		dbArg = true
		for _, env := range dbEnv {
			if v, ok := os.LookupEnv(env); ok && v == c.String("db") {
				dbArg = false
			}
		}
	}
	urlArg := onCommandLine(c, "url", "OCTOSTORE_URL")
	switch {
	case dbArg && urlArg:
		return false, errUsage(c, "give --db (work on the database) or --url (ask the server), not both")
	case urlArg:
		return true, nil
	case dbArg, c.String("db") != "":
		return false, nil
	case c.IsSet("url") && c.String("url") != "":
		return true, nil
	}
	return false, errUsage(c, "--db PATH (the server's SQLite database) or --url URL with the admin key (a server, any node of a cluster) is required")
}
func tokenDBFlag() cli.Flag {
	return &cli.StringFlag{Name: "db", Usage: "SQLite database file of the server (required)", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"}}
}

// openTokenDB opens the database at --db. Unless create, it must exist
// already: a mistyped path is "not found" (exit 4), never a new, empty
// database that the server does not use.
func openTokenDB(c *cli.Context, create bool) (*persistence.DB, error) {
	path := dbPath(c.String("db")) // the forms serve takes: a path, sqlite://PATH, file:PATH
	if path == "" {
		return nil, errUsage(c, "--db PATH is required (or OCTOSTORE_DB)")
	}
	if !create {
		if _, err := os.Stat(path); err != nil {
			hint := ""
			if c.Command.Name == "create" {
				hint = " (--create starts a new one)"
			}
			return nil, exitCode(exitNotFound, fmt.Errorf("no database at %s%s", path, hint))
		}
	}
	db, err := persistence.OpenShared(path) // beside a running server: never its serving lock
	if err != nil {
		return nil, exitCode(exitFailure, err)
	}
	return db, nil
}

// apiTime formats t the way the API does (UTC, milliseconds), for the JSON
// of the token commands.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// tokenJSON is one token in the JSON of token create and token list.
type tokenJSON struct {
	User        string `json:"user"`
	Source      string `json:"source"`
	CreatedAt   string `json:"created_at"`
	Fingerprint string `json:"fingerprint"`
	Token       string `json:"token,omitempty"` // token create only: the token itself, shown once
}

// writeJSONLine writes v as one line of JSON, like the API's answers.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return exitCode(exitFailure, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// tokenCreate prints the new token (with --json: {"user","source",
// "created_at","fingerprint","token"}); the note on stderr names its
// fingerprint.
func tokenCreate(c *cli.Context, _ []string) error {
	user := c.String("user")
	if user == "" {
		return errUsage(c, "--user NAME is required")
	}
	if !names.Login.Valid(user) {
		return usageErr(c, "--user %q: %s", user, names.Login.Requirement())
	}
	server, err := viaServer(c)
	if err != nil {
		return err
	}
	if server {
		if c.Bool("create") {
			return errUsage(c, "--create goes with --db (a server has its database)")
		}
		return tokenCreateVia(c, user)
	}
	db, err := openTokenDB(c, c.Bool("create"))
	if err != nil {
		return err
	}
	defer db.Close()
	raw, info, err := db.CreateToken(c.Context, user, persistence.SourceCLI, time.Now())
	if err != nil {
		return exitCode(exitFailure, err)
	}
	if c.Bool("json") {
		if err := writeJSONLine(c.App.Writer, tokenJSON{User: info.Login, Source: info.Source, CreatedAt: apiTime(info.CreatedAt), Fingerprint: info.Fingerprint(), Token: raw}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(c.App.Writer, raw)
	}
	createdNote(c, user, info.Fingerprint())
	return nil
}

// createdNote is token create's note on stderr: the token's fingerprint.
func createdNote(c *cli.Context, user, fingerprint string) {
	fmt.Fprintf(c.App.ErrWriter, "created a token for user %q (fingerprint %s); it is shown only this once and stored hashed\n",
		user, fingerprint)
}

// tokenCreateVia is token create through the server (POST /admin/tokens):
// the token on stdout (with --json, the server's answer), the note on
// stderr.
func tokenCreateVia(c *cli.Context, user string) error {
	cn, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(c)
	defer cancel()
	tok, err := cn.CreateToken(ctx, user)
	if err := cn.finish(err, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, tok.Token)
		return err
	}); err != nil {
		return err
	}
	createdNote(c, tok.User, tok.Fingerprint)
	return nil
}

// tokenList prints a table, or with --json {"tokens":[…],"total":N} like
// the API's listings (through a server: each page's body, one line a page,
// as every listing).
func tokenList(c *cli.Context, _ []string) error {
	if c.IsSet("user") && !names.Login.Valid(c.String("user")) {
		return usageErr(c, "--user %q: %s", c.String("user"), names.Login.Requirement())
	}
	server, err := viaServer(c)
	if err != nil {
		return err
	}
	if server {
		return listRun(c, listPageSize, func(cl *client.Client, ctx context.Context, o client.ListOptions) (*client.Page[client.StoredToken], error) {
			return cl.ListTokensPage(ctx, c.String("user"), o)
		}, tokenCols, func(t client.StoredToken) []string {
			return []string{t.User, t.Source, fmtTime(t.CreatedAt), t.Fingerprint}
		}, nil)
	}
	db, err := openTokenDB(c, false)
	if err != nil {
		return err
	}
	defer db.Close()
	toks, err := db.ListTokens(c.Context, c.String("user"))
	if err != nil {
		return exitCode(exitFailure, err)
	}
	if c.Bool("json") {
		out := struct {
			Tokens []tokenJSON `json:"tokens"`
			Total  int         `json:"total"`
		}{Tokens: []tokenJSON{}, Total: len(toks)}
		for _, t := range toks {
			out.Tokens = append(out.Tokens, tokenJSON{User: t.Login, Source: t.Source, CreatedAt: apiTime(t.CreatedAt), Fingerprint: t.Fingerprint()})
		}
		return writeJSONLine(c.App.Writer, out)
	}
	rows := make([][]string, 0, len(toks))
	for _, t := range toks {
		rows = append(rows, []string{t.Login, t.Source, fmtTime(t.CreatedAt), t.Fingerprint()})
	}
	return printTable(c.App.Writer, tokenCols, rows)
}

// tokenCols are token list's columns.
var tokenCols = []col{{"USER", true}, {"SOURCE", false}, {"CREATED", false}, {"FINGERPRINT", false}}

func tokenRevoke(c *cli.Context, _ []string) error {
	sel := persistence.RevokeSelector{Fingerprint: c.String("fingerprint"), Login: c.String("user"), All: c.Bool("all-for-user")}
	switch {
	case (sel.Fingerprint == "") == (sel.Login == ""):
		return errUsage(c, "give exactly one of --fingerprint or --user")
	case sel.All && sel.Login == "":
		return errUsage(c, "--all-for-user goes with --user")
	}
	server, err := viaServer(c)
	if err != nil {
		return err
	}
	if server {
		return tokenRevokeVia(c, sel)
	}
	db, err := openTokenDB(c, false)
	if err != nil {
		return err
	}
	defer db.Close()
	gone, err := db.RevokeTokens(c.Context, sel)
	switch {
	case errors.Is(err, persistence.ErrTokenNotFound):
		return exitCode(exitNotFound, err)
	case errors.Is(err, persistence.ErrTokenAmbiguous):
		return exitCode(exitUsage, fmt.Errorf("%w; nothing revoked (use a longer --fingerprint, or --all-for-user)", err))
	case errors.Is(err, persistence.ErrBadSelector):
		return exitCode(exitUsage, err)
	case err != nil:
		return exitCode(exitFailure, err)
	}
	for _, t := range gone {
		revokedLine(c, t.Fingerprint(), t.Login, t.Source)
	}
	return nil
}

// revokedLine reports one revoked token (and that a static one comes
// back).
func revokedLine(c *cli.Context, fingerprint, user, source string) {
	fmt.Fprintf(c.App.Writer, "revoked %s (user %s, source %s)\n", fingerprint, user, source)
	if source == persistence.SourceStatic {
		fmt.Fprintf(c.App.ErrWriter, "note: %s is a static token: it comes back when the server restarts (in cluster mode: at the next leader term) unless removed from --static-tokens / --static-tokens-file\n", fingerprint)
	}
}

// tokenRevokeVia is token revoke through the server (POST
// /admin/tokens/revoke), with the database path's exit codes: 4 when
// nothing matches, 2 when the selector matches several tokens (nothing
// revoked) or is malformed.
func tokenRevokeVia(c *cli.Context, sel persistence.RevokeSelector) error {
	cn, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(c)
	defer cancel()
	gone, err := cn.RevokeTokens(ctx, client.TokenSelector{Fingerprint: sel.Fingerprint, User: sel.Login, AllForUser: sel.All})
	if errors.Is(err, client.ErrConflict) {
		return exitCode(exitUsage, fmt.Errorf("%w; nothing revoked (use a longer --fingerprint, or --all-for-user)", err))
	}
	return cn.finish(err, func(io.Writer) error {
		for _, t := range gone {
			revokedLine(c, t.Fingerprint, t.User, t.Source)
		}
		return nil
	})
}
