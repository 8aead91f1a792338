package main

import "github.com/urfave/cli/v2"

// tokenCommand is `octostore token`; its subcommands are added by other
// files (token_admin.go: create/list/revoke against the database).
var tokenCommand = &cli.Command{Name: "token", Usage: "manage bearer tokens"}

func init() {
	register(tokenCommand)
}
