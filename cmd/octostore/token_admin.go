package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
	"github.com/urfave/cli/v2"
)

// `octostore token create|list|revoke`: operator tools that work on the
// database directly, also while a server uses it. Each change is one
// transaction that bumps the auth epoch: the server accepts a created token
// at once (it looks unknown tokens up in the database) and refuses a revoked
// one within its poll interval (500 ms), without a restart.

func tokenAdminCommands() []*cli.Command {
	create := leaf("create", "create a token for a local user (created if needed) and print it once", "",
		[]cli.Flag{tokenDBFlag(), &cli.StringFlag{Name: "user", Usage: "login of the user (" + names.Login.Pattern() + "; required)"},
			&cli.BoolFlag{Name: "create", Usage: "create the database if there is none at --db (a new, empty server state)"},
			jsonFlag()},
		tokenCreate)
	create.UsageText = "octostore token create --db PATH --user NAME [--create] [--json]"
	list := leaf("list", "list stored tokens (user, source, created, fingerprint; never the token)", "",
		[]cli.Flag{tokenDBFlag(), &cli.StringFlag{Name: "user", Usage: "only this user's tokens"}, jsonFlag()},
		tokenList)
	list.UsageText = "octostore token list --db PATH [--user NAME] [--json]"
	revoke := leaf("revoke", "revoke tokens by fingerprint or by user", "",
		[]cli.Flag{tokenDBFlag(),
			&cli.StringFlag{Name: "fingerprint", Usage: "the token whose fingerprint (as token list shows it, or longer) is F"},
			&cli.StringFlag{Name: "user", Usage: "the user's token (the user must have exactly one unless --all-for-user)"},
			&cli.BoolFlag{Name: "all-for-user", Usage: "with --user: every token of the user"}},
		tokenRevoke)
	revoke.UsageText = "octostore token revoke --db PATH (--fingerprint F | --user NAME [--all-for-user])"
	return []*cli.Command{create, list, revoke}
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
	fmt.Fprintf(c.App.ErrWriter, "created a token for user %q (fingerprint %s); it is shown only this once and stored hashed\n",
		user, info.Fingerprint())
	return nil
}

// tokenList prints a table, or with --json {"tokens":[…],"total":N} like
// the API's listings.
func tokenList(c *cli.Context, _ []string) error {
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
	return printTable(c.App.Writer, []col{{"USER", true}, {"SOURCE", false}, {"CREATED", false}, {"FINGERPRINT", false}}, rows)
}

func tokenRevoke(c *cli.Context, _ []string) error {
	sel := persistence.RevokeSelector{Fingerprint: c.String("fingerprint"), Login: c.String("user"), All: c.Bool("all-for-user")}
	switch {
	case (sel.Fingerprint == "") == (sel.Login == ""):
		return errUsage(c, "give exactly one of --fingerprint or --user")
	case sel.All && sel.Login == "":
		return errUsage(c, "--all-for-user goes with --user")
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
		fmt.Fprintf(c.App.Writer, "revoked %s (user %s, source %s)\n", t.Fingerprint(), t.Login, t.Source)
		if t.Source == persistence.SourceStatic {
			fmt.Fprintf(c.App.ErrWriter, "note: %s is a static token: it comes back when the server restarts unless removed from --static-tokens / --static-tokens-file\n", t.Fingerprint())
		}
	}
	return nil
}
