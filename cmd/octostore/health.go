package main

import (
	"context"
	"fmt"
	"io"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// healthCommand is `octostore health`: GET /health, whose answer is plain
// text ("OK", or "DEGRADED: …" with 503), so it has no --json.
func healthCommand() *cli.Command {
	return leaf("health", "check that the server is up (exit 0) or unreachable/degraded (exit 6)", "", connFlags(), healthAction)
}

func healthAction(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (struct{}, error) {
		return struct{}{}, cl.Health(ctx)
	}, func(w io.Writer, _ struct{}) error {
		_, err := fmt.Fprintln(w, "OK")
		return err
	})
}
