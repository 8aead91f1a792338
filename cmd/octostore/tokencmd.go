package main

import (
	"context"
	"fmt"
	"io"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// tokenCommand is `octostore token`: create, list and revoke work on the
// database (token_admin.go), rotate asks the server.
func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "manage bearer tokens",
		Subcommands: append(tokenAdminCommands(),
			clientCommand("rotate", "replace your bearer token with a new one (the old one stops working) and print it", "", tokenRotate)),
	}
}

func tokenRotate(c *cli.Context, args []string) error {
	return checkedRun(c, args, 0, "token rotate", func(cl *client.Client, ctx context.Context) (map[string]string, error) {
		tok, err := cl.RotateToken(ctx)
		return map[string]string{"token": tok}, err
	}, func(w io.Writer, v map[string]string) error {
		_, err := fmt.Fprintln(w, v["token"])
		return err
	})
}
