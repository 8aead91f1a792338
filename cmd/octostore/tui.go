package main

import (
	"errors"

	"github.com/octostore/octostore/tui"
	"github.com/urfave/cli/v2"
)

// `octostore tui`: the live terminal view (docs/tui.md).
func tuiCommand() *cli.Command {
	return leaf("tui", "live terminal view of locks, limits, flags and config (the admin key shows every user's)", "",
		[]cli.Flag{
			&cli.StringFlag{Name: "url", Value: defaultURL, Usage: "server URL", EnvVars: []string{"OCTOSTORE_URL"}},
			tokenFlag(),
			tokenFileFlag(),
		},
		func(c *cli.Context, _ []string) error {
			tok, err := resolveToken(c)
			if err != nil {
				return err
			}
			if tok == "" {
				return exitCode(exitAuth, errors.New("no token: set "+envToken+", --token-file or --token"))
			}
			if err := tui.Run(c.Context, tui.Options{URL: c.String("url"), Token: tok}); err != nil {
				return exitCode(exitFailure, err)
			}
			return nil
		})
}
