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
			ownerFlag(), &cli.IntFlag{Name: "percentage", DefaultText: "none: on or off for every subject", Usage: "roll out to this percentage of subjects (0..100)"}),
		clientCommand("get", "evaluate a flag (prints true or false)", "NAME", flagGet,
			ownerFlag(), &cli.StringFlag{Name: "subject", Usage: "subject the rollout is bucketed on (user id, host...)"}),
		clientCommand("delete", "delete a flag", "NAME", flagDelete, ownerFlag()),
		clientCommand("list", "list your flags (every user's for the admin key, with an OWNER column)", "", flagList, ownerFlag()),
	)
}

func parseOnOff(c *cli.Context, s string) (bool, error) {
	switch s {
	case "on", "true", "enabled", "1", "yes":
		return true, nil
	case "off", "false", "disabled", "0", "no":
		return false, nil
	}
	return false, usageErr(c, "flag state %q: want on or off", s)
}

func pct(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p) + "%"
}

func flagSet(c *cli.Context, args []string) error {
	on, err := parseOnOff(c, args[1])
	if err != nil {
		return err
	}
	spec := client.FlagSpec{Enabled: on}
	if p := c.Int("percentage"); c.IsSet("percentage") {
		if p < 0 || p > 100 {
			return errUsage(c, "--percentage must be between 0 and 100")
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
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.FlagEvaluation, error) {
		return cl.GetFlag(ctx, args[0], c.String("subject"))
	}, func(w io.Writer, e *client.FlagEvaluation) error {
		_, err := fmt.Fprintln(w, e.Enabled)
		return err
	})
}

func flagDelete(c *cli.Context, args []string) error {
	return doneRun(c, "deleted "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.DeleteFlag(ctx, args[0])
	})
}

func flagList(c *cli.Context, args []string) error {
	return listRun(c, (*client.Client).ListFlags,
		[]col{{"NAME", true}, {"ENABLED", false}, {"ROLLOUT", false}, {"UPDATED", false}},
		func(f client.Flag) []string {
			return []string{f.Name, strconv.FormatBool(f.Enabled), pct(f.Percentage), fmtTime(f.UpdatedAt)}
		}, func(f client.Flag) string { return f.Owner })
}
