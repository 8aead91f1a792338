package main

import (
	"errors"

	"github.com/octostore/octostore/tui"
	"github.com/urfave/cli/v2"
)

// `octostore tui`: the live terminal view (docs/tui.md).
func tuiCommand() *cli.Command {
	return &cli.Command{
		Name:  "tui",
		Usage: "live terminal view of locks, limits, flags and config (the admin key shows every user's)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: defaultURL, Usage: "server URL", EnvVars: []string{"OCTOSTORE_URL"}},
			&cli.StringFlag{Name: "token", Usage: "bearer token, or the admin key", EnvVars: []string{"OCTOSTORE_TOKEN"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitCode(exitUsage, errors.New("tui takes no arguments"))
			}
			if c.String("token") == "" {
				return exitCode(exitAuth, errors.New("no token: set --token or OCTOSTORE_TOKEN"))
			}
			err := tui.Run(c.Context, tui.Options{URL: c.String("url"), Token: c.String("token")})
			if err != nil {
				return exitCode(exitFailure, err)
			}
			return nil
		},
	}
}
