package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

func healthCommand() *cli.Command {
	return &cli.Command{
		Name:   "health",
		Usage:  "check that the server is up (exit 0) or unreachable/degraded (exit 6)",
		Flags:  clientFlags(),
		Action: clientAction(-1, healthAction),
	}
}

func healthAction(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "health")
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.Health(ctx); err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]any{"status": "ok", "url": cl.BaseURL()}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "OK")
		return err
	})
}
