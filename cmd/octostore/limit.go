package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func limitCommand() *cli.Command {
	return groupCommand("limit", "check, inspect and reset rate limits",
		clientCommand("check", "consume one request (exit 3 when denied)", "NAME", limitCheck,
			&cli.IntFlag{Name: "max", Value: 60, Usage: "requests allowed per window (1..10000)"},
			&cli.DurationFlag{Name: "window", Value: time.Minute, Usage: "window length (1s..24h)"}),
		clientCommand("status", "show a limit without consuming a request", "NAME", limitStatus),
		clientCommand("reset", "reset a limit's counter", "NAME", limitReset),
		clientCommand("list", "list your rate limits", "", limitList),
	)
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
	var denied bool
	err := checkedRun(c, args, 1, "limit check NAME [--max 60] [--window 1m]", func(cl *client.Client, ctx context.Context) (*client.LimitResult, error) {
		r, err := cl.CheckLimit(ctx, args[0], c.Int("max"), c.Duration("window"))
		denied = err == nil && !r.Allowed
		return r, err
	}, limitFields)
	if err == nil && denied {
		return exitCode(exitHeld, nil)
	}
	return err
}

func limitStatus(c *cli.Context, args []string) error {
	return checkedRun(c, args, 1, "limit status NAME", func(cl *client.Client, ctx context.Context) (*client.LimitResult, error) {
		return cl.LimitStatus(ctx, args[0])
	}, limitFields)
}

func limitReset(c *cli.Context, args []string) error {
	if err := needArgs(args, 1, 1, "limit reset NAME"); err != nil {
		return err
	}
	return doneRun(c, map[string]any{"reset": true, "name": args[0]}, "reset "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.ResetLimit(ctx, args[0])
	})
}

func limitList(c *cli.Context, args []string) error {
	return listRun(c, args, 0, "limit list", (*client.Client).ListLimits, []string{"NAME", "USED", "WINDOW", "REMAINING", "RESETS"}, func(l client.LimitInfo) []string {
		return []string{l.Name, fmt.Sprintf("%d/%d", l.CurrentCount, l.MaxRequests),
			(time.Duration(l.WindowSeconds) * time.Second).String(), strconv.Itoa(l.Remaining), fmtTime(l.ResetAt)}
	})
}
