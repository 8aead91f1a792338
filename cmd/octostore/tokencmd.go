package main

import "github.com/urfave/cli/v2"

// tokenCommand is `octostore token`: create, list and revoke work on the
// database (token_admin.go), rotate asks the server (tokenrotate.go).
func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:        "token",
		Usage:       "manage bearer tokens",
		Subcommands: append(tokenAdminCommands(), tokenRotateCommand()),
	}
}
