package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func flagCommand() *cli.Command {
	return groupCommand("flag", "set, evaluate, delete and list feature flags",
		clientCommand("set", "create or update a flag: on or off, optionally rolled out to a percentage of subjects", "NAME on|off", flagSet,
			&cli.IntFlag{Name: "percentage", Value: -1, Usage: "roll out to this percentage of subjects (0..100)"}),
		clientCommand("get", "evaluate a flag (prints true or false)", "NAME", flagGet,
			&cli.StringFlag{Name: "subject", Usage: "subject the rollout is bucketed on (user id, host...)"}),
		clientCommand("delete", "delete a flag", "NAME", flagDelete),
		clientCommand("list", "list your flags", "", flagList),
	)
}

func parseOnOff(s string) (bool, error) {
	switch s {
	case "on", "true", "enabled", "1", "yes":
		return true, nil
	case "off", "false", "disabled", "0", "no":
		return false, nil
	}
	return false, exitCode(exitUsage, fmt.Errorf("flag state %q: want on or off", s))
}

func pct(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p) + "%"
}

func flagSet(c *cli.Context, args []string) error {
	if err := needArgs(args, 2, 2, "flag set NAME on|off [--percentage N]"); err != nil {
		return err
	}
	on, err := parseOnOff(args[1])
	if err != nil {
		return err
	}
	spec := client.FlagSpec{Enabled: on}
	if p := c.Int("percentage"); c.IsSet("percentage") {
		if p < 0 || p > 100 {
			return exitCode(exitUsage, fmt.Errorf("--percentage must be between 0 and 100"))
		}
		spec.Percentage = &p
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.Flag, error) {
		return cl.SetFlag(ctx, args[0], spec)
	}, func(w io.Writer, f *client.Flag) error {
		return printFields(w, "name", f.Name, "enabled", strconv.FormatBool(f.Enabled), "percentage", pct(f.Percentage), "updated_at", fmtTime(f.UpdatedAt))
	})
}

func flagGet(c *cli.Context, args []string) error {
	return checkedRun(c, args, 1, "flag get NAME [--subject S]", func(cl *client.Client, ctx context.Context) (*client.FlagEvaluation, error) {
		return cl.GetFlag(ctx, args[0], c.String("subject"))
	}, func(w io.Writer, e *client.FlagEvaluation) error {
		_, err := fmt.Fprintln(w, e.Enabled)
		return err
	})
}

func flagDelete(c *cli.Context, args []string) error {
	if err := needArgs(args, 1, 1, "flag delete NAME"); err != nil {
		return err
	}
	return doneRun(c, map[string]any{"deleted": true, "name": args[0]}, "deleted "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.DeleteFlag(ctx, args[0])
	})
}

func flagList(c *cli.Context, args []string) error {
	return listRun(c, args, 0, "flag list", (*client.Client).ListFlags, []string{"NAME", "ENABLED", "ROLLOUT", "UPDATED"}, func(f client.Flag) []string {
		return []string{f.Name, strconv.FormatBool(f.Enabled), pct(f.Percentage), fmtTime(f.UpdatedAt)}
	})
}
