package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func flagCommand() *cli.Command {
	return &cli.Command{
		Name:   "flag",
		Usage:  "set, evaluate, delete and list feature flags",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:      "set",
				Usage:     "create or update a flag: on or off, optionally rolled out to a percentage of subjects",
				ArgsUsage: "NAME on|off",
				Flags: clientFlags(
					&cli.IntFlag{Name: "percentage", Value: -1, Usage: "roll out to this percentage of subjects (0..100)"},
				),
				Action: clientAction(-1, flagSet),
			},
			{
				Name:      "get",
				Usage:     "evaluate a flag (prints true or false)",
				ArgsUsage: "NAME",
				Flags:     clientFlags(&cli.StringFlag{Name: "subject", Usage: "subject the rollout is bucketed on (user id, host...)"}),
				Action:    clientAction(-1, flagGet),
			},
			{
				Name:      "delete",
				Usage:     "delete a flag",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action:    clientAction(-1, flagDelete),
			},
			{
				Name:   "list",
				Usage:  "list your flags",
				Flags:  clientFlags(),
				Action: clientAction(-1, flagList),
			},
		},
	}
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
	cl, ctx, cancel, err := clientCall(c)
	if err != nil {
		return err
	}
	defer cancel()
	f, err := cl.SetFlag(ctx, args[0], spec)
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, f, func(w io.Writer) error {
		return printFields(w, "name", f.Name, "enabled", strconv.FormatBool(f.Enabled), "percentage", pct(f.Percentage), "updated_at", fmtTime(f.UpdatedAt))
	})
}

func flagGet(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "flag get NAME [--subject S]")
	if err != nil {
		return err
	}
	defer cancel()
	e, err := cl.GetFlag(ctx, args[0], c.String("subject"))
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, e, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, e.Enabled)
		return err
	})
}

func flagDelete(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "flag delete NAME")
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.DeleteFlag(ctx, args[0]); err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]any{"deleted": true, "name": args[0]}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "deleted %s\n", args[0])
		return err
	})
}

func flagList(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "flag list")
	if err != nil {
		return err
	}
	defer cancel()
	fs, err := cl.ListFlags(ctx)
	if err != nil {
		return clientErr(err)
	}
	if fs == nil {
		fs = []client.Flag{}
	}
	return printOutput(c, fs, func(w io.Writer) error {
		rows := make([][]string, 0, len(fs))
		for _, f := range fs {
			rows = append(rows, []string{f.Name, strconv.FormatBool(f.Enabled), pct(f.Percentage), fmtTime(f.UpdatedAt)})
		}
		return printTable(w, []string{"NAME", "ENABLED", "ROLLOUT", "UPDATED"}, rows)
	})
}
