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
	return groupCommand("token", "manage bearer tokens", append(tokenAdminCommands(),
		clientCommand("rotate", "replace your bearer token with a new one (the old one stops working) and print it", "", tokenRotate))...)
}

func tokenRotate(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (string, error) {
		return cl.RotateToken(ctx)
	}, func(w io.Writer, tok string) error {
		_, err := fmt.Fprintln(w, tok)
		return err
	})
}
