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
		clientCommand("check", "consume one request (exit 3 when denied)", "NAME", limitCheck, ownerFlag(),
			&cli.IntFlag{Name: "max", Value: 60, Usage: "requests allowed per window (1..10000)"},
			&cli.DurationFlag{Name: "window", Value: time.Minute, Usage: "window length (1s..24h)"}),
		clientCommand("status", "show a limit without consuming a request", "NAME", limitStatus, ownerFlag()),
		clientCommand("reset", "reset a limit's counter", "NAME", limitReset, ownerFlag()),
		clientCommand("list", "list your rate limits (every user's for the admin key, with an OWNER column)", "", limitList, ownerFlag()),
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
	err := clientRun(c, func(cl *client.Client, ctx context.Context) (*client.LimitResult, error) {
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
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.LimitResult, error) {
		return cl.LimitStatus(ctx, args[0])
	}, limitFields)
}

func limitReset(c *cli.Context, args []string) error {
	return doneRun(c, "reset "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.ResetLimit(ctx, args[0])
	})
}

func limitList(c *cli.Context, args []string) error {
	return listRun(c, (*client.Client).ListLimits,
		[]col{{"NAME", true}, {"USED", false}, {"WINDOW", false}, {"REMAINING", false}, {"RESETS", false}},
		func(l client.LimitInfo) []string {
			return []string{l.Name, fmt.Sprintf("%d/%d", l.CurrentCount, l.MaxRequests),
				(time.Duration(l.WindowSeconds) * time.Second).String(), strconv.Itoa(l.Remaining), fmtTime(l.ResetAt)}
		}, func(l client.LimitInfo) string { return l.Owner })
}
