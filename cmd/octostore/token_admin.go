package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
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
	return []*cli.Command{
		{
			Name:      "create",
			Usage:     "create a token for a local user (created if needed) and print it once",
			UsageText: "octostore token create --db PATH --user NAME",
			Flags:     []cli.Flag{tokenDBFlag(), &cli.StringFlag{Name: "user", Usage: "login of the user (" + names.Login.Pattern() + "; required)"}},
			Action:    tokenCreate,
		},
		{
			Name:      "list",
			Usage:     "list stored tokens (user, source, created, fingerprint; never the token)",
			UsageText: "octostore token list --db PATH [--user NAME] [--json]",
			Flags: []cli.Flag{tokenDBFlag(), &cli.StringFlag{Name: "user", Usage: "only this user's tokens"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: tokenList,
		},
		{
			Name:      "revoke",
			Usage:     "revoke tokens by fingerprint or by user",
			UsageText: "octostore token revoke --db PATH (--fingerprint F | --user NAME [--all-for-user])",
			Flags: []cli.Flag{tokenDBFlag(),
				&cli.StringFlag{Name: "fingerprint", Usage: "the token whose fingerprint (as token list shows it, or longer) is F"},
				&cli.StringFlag{Name: "user", Usage: "the user's token (the user must have exactly one unless --all-for-user)"},
				&cli.BoolFlag{Name: "all-for-user", Usage: "with --user: every token of the user"}},
			Action: tokenRevoke,
		},
	}
}

func tokenDBFlag() cli.Flag {
	return &cli.StringFlag{Name: "db", Usage: "SQLite database file of the server (required)", EnvVars: []string{"OCTOSTORE_DB", "DATABASE_URL"}}
}

// openTokenDB opens the database; unless create, it must exist already.
func openTokenDB(c *cli.Context, create bool) (*persistence.DB, error) {
	path := c.String("db")
	if path == "" {
		return nil, exitCode(exitUsage, errors.New("--db PATH is required (or OCTOSTORE_DB)"))
	}
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, exitCode(exitNotFound, fmt.Errorf("no database at %s", path))
		}
	}
	db, err := persistence.OpenShared(path) // beside a running server: never its serving lock
	if err != nil {
		return nil, exitCode(exitFailure, err)
	}
	return db, nil
}

func tokenCreate(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitCode(exitUsage, errors.New("token create takes no arguments"))
	}
	user := c.String("user")
	if user == "" {
		return exitCode(exitUsage, errors.New("--user NAME is required"))
	}
	if !names.Login.Valid(user) {
		return exitCode(exitUsage, fmt.Errorf("--user %q: %s", user, names.Login.Requirement()))
	}
	db, err := openTokenDB(c, true)
	if err != nil {
		return err
	}
	defer db.Close()
	raw, info, err := db.CreateToken(c.Context, user, persistence.SourceCLI, time.Now())
	if err != nil {
		return exitCode(exitFailure, err)
	}
	fmt.Fprintln(c.App.Writer, raw)
	fmt.Fprintf(c.App.ErrWriter, "created a token for user %q (fingerprint %s); it is shown only this once and stored hashed\n",
		user, info.Fingerprint())
	return nil
}

func tokenList(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitCode(exitUsage, errors.New("token list takes no arguments"))
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
		type item struct {
			User        string    `json:"user"`
			Source      string    `json:"source"`
			CreatedAt   time.Time `json:"created_at"`
			Fingerprint string    `json:"fingerprint"`
		}
		out := struct {
			Tokens []item `json:"tokens"`
		}{Tokens: []item{}}
		for _, t := range toks {
			out.Tokens = append(out.Tokens, item{t.Login, t.Source, t.CreatedAt, t.Fingerprint()})
		}
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tSOURCE\tCREATED\tFINGERPRINT")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Login, t.Source, t.CreatedAt.Format(time.RFC3339), t.Fingerprint())
	}
	return tw.Flush()
}

func tokenRevoke(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitCode(exitUsage, errors.New("token revoke takes no arguments"))
	}
	sel := persistence.RevokeSelector{Fingerprint: c.String("fingerprint"), Login: c.String("user"), All: c.Bool("all-for-user")}
	switch {
	case (sel.Fingerprint == "") == (sel.Login == ""):
		return exitCode(exitUsage, errors.New("give exactly one of --fingerprint or --user"))
	case sel.All && sel.Login == "":
		return exitCode(exitUsage, errors.New("--all-for-user goes with --user"))
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
