package main

import (
	"context"
	"fmt"
	"io"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func healthCommand() *cli.Command {
	return clientCommand("health", "check that the server is up (exit 0) or unreachable/degraded (exit 6)", "", healthAction)
}

func healthAction(c *cli.Context, args []string) error {
	return checkedRun(c, args, 0, "health", func(cl *client.Client, ctx context.Context) (map[string]any, error) {
		return map[string]any{"status": "ok", "url": cl.BaseURL()}, cl.Health(ctx)
	}, func(w io.Writer, _ map[string]any) error {
		_, err := fmt.Fprintln(w, "OK")
		return err
	})
}
