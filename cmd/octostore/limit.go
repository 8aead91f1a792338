package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func limitCommand() *cli.Command {
	return &cli.Command{
		Name:   "limit",
		Usage:  "check, inspect and reset rate limits",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "consume one request (exit 3 when denied)",
				ArgsUsage: "NAME",
				Flags: clientFlags(
					&cli.IntFlag{Name: "max", Value: 60, Usage: "requests allowed per window (1..10000)"},
					&cli.DurationFlag{Name: "window", Value: time.Minute, Usage: "window length (1s..24h)"},
				),
				Action: clientAction(-1, limitCheck),
			},
			{
				Name:      "status",
				Usage:     "show a limit without consuming a request",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action:    clientAction(-1, limitStatus),
			},
			{
				Name:      "reset",
				Usage:     "reset a limit's counter",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action:    clientAction(-1, limitReset),
			},
			{
				Name:   "list",
				Usage:  "list your rate limits",
				Flags:  clientFlags(),
				Action: clientAction(-1, limitList),
			},
		},
	}
}

func limitFields(w io.Writer, r *client.LimitResult) error {
	ra := ""
	if !r.Allowed && r.RetryAfterSeconds > 0 {
		ra = r.RetryAfter().String()
	}
	return printFields(w,
		"allowed", strconv.FormatBool(r.Allowed),
		"remaining", strconv.Itoa(r.Remaining),
		"reset_at", fmtTime(r.ResetAt),
		"retry_after", ra)
}

func limitCheck(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "limit check NAME [--max 60] [--window 1m]")
	if err != nil {
		return err
	}
	defer cancel()
	r, err := cl.CheckLimit(ctx, args[0], c.Int("max"), c.Duration("window"))
	if err != nil {
		return clientErr(err)
	}
	if err := printOutput(c, r, func(w io.Writer) error { return limitFields(w, r) }); err != nil {
		return err
	}
	if !r.Allowed {
		return exitCode(exitHeld, nil)
	}
	return nil
}

func limitStatus(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "limit status NAME")
	if err != nil {
		return err
	}
	defer cancel()
	r, err := cl.LimitStatus(ctx, args[0])
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, r, func(w io.Writer) error { return limitFields(w, r) })
}

func limitReset(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "limit reset NAME")
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.ResetLimit(ctx, args[0]); err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]any{"reset": true, "name": args[0]}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "reset %s\n", args[0])
		return err
	})
}

func limitList(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "limit list")
	if err != nil {
		return err
	}
	defer cancel()
	ls, err := cl.ListLimits(ctx)
	if err != nil {
		return clientErr(err)
	}
	if ls == nil {
		ls = []client.LimitInfo{}
	}
	return printOutput(c, ls, func(w io.Writer) error {
		rows := make([][]string, 0, len(ls))
		for _, l := range ls {
			rows = append(rows, []string{l.Name, fmt.Sprintf("%d/%d", l.CurrentCount, l.MaxRequests),
				(time.Duration(l.WindowSeconds) * time.Second).String(), strconv.Itoa(l.Remaining), fmtTime(l.ResetAt)})
		}
		return printTable(w, []string{"NAME", "USED", "WINDOW", "REMAINING", "RESETS"}, rows)
	})
}
