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
		clientCommand("check", "consume one request, or --cost units (exit 3 when denied)", "NAME", limitCheck, ownerFlag(),
			&cli.IntFlag{Name: "max", Value: 60, Usage: "requests allowed per window, or the bucket's capacity (1..10000)"},
			&cli.DurationFlag{Name: "window", Value: time.Minute, Usage: "window length, or the time to refill an empty bucket (1s..24h)"},
			&cli.IntFlag{Name: "cost", Value: 1, Usage: "units this check takes (1..--max)"},
			&cli.StringFlag{Name: "algorithm", Value: "sliding_window", Usage: "sliding_window or token_bucket"}),
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
		"retry_after", ra,
		"algorithm", r.Algorithm)
}

func limitCheck(c *cli.Context, args []string) error {
	switch alg := c.String("algorithm"); {
	case alg != client.SlidingWindow && alg != client.TokenBucket:
		return errUsage(c, "--algorithm must be sliding_window or token_bucket")
	case c.Int("cost") < 1 || c.Int("cost") > c.Int("max"):
		return errUsage(c, "--cost must be between 1 and --max")
	}
	chk := client.LimitCheck{MaxRequests: c.Int("max"), Window: c.Duration("window"), Cost: c.Int("cost"), Algorithm: c.String("algorithm")}
	if !c.IsSet("cost") {
		chk.Cost = 0 // the server's default: the body the API documents
	}
	if !c.IsSet("algorithm") {
		chk.Algorithm = ""
	}
	var denied bool
	err := clientRun(c, func(cl *client.Client, ctx context.Context) (*client.LimitResult, error) {
		r, err := cl.CheckLimitWith(ctx, args[0], chk)
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
	return listRun(c, listPageSize, (*client.Client).ListLimitsPage,
		[]col{{"NAME", true}, {"ALGORITHM", false}, {"USED", false}, {"WINDOW", false}, {"REMAINING", false}, {"RESETS", false}},
		func(l client.LimitInfo) []string {
			alg := "window"
			if l.Algorithm == client.TokenBucket {
				alg = "bucket"
			}
			return []string{l.Name, alg, fmt.Sprintf("%d/%d", l.CurrentCount, l.MaxRequests),
				(time.Duration(l.WindowSeconds) * time.Second).String(), strconv.Itoa(l.Remaining), fmtTime(l.ResetAt)}
		}, func(l client.LimitInfo) string { return l.Owner })
}
