package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// lockCommand is `octostore lock`; `run` is in lockrun.go.
func lockCommand() *cli.Command {
	return &cli.Command{
		Name:   "lock",
		Usage:  "acquire, renew, release and inspect distributed locks",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:      "acquire",
				Usage:     "acquire a lock and print its lease (exit 3 if held by someone else)",
				ArgsUsage: "NAME",
				Flags: clientFlags(
					&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h)"},
					&cli.DurationFlag{Name: "wait", Usage: "keep trying this long while the lock is held (0: one attempt)"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the lease id"},
				),
				Action: clientAction(-1, lockAcquire),
			},
			{
				Name:      "renew",
				Usage:     "extend a lease",
				ArgsUsage: "NAME [LEASE_ID]",
				Flags: clientFlags(
					&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "new time-to-live from now"},
					&cli.StringFlag{Name: "lease", Usage: "lease id (instead of the argument)", EnvVars: []string{"OCTOSTORE_LEASE_ID"}},
				),
				Action: clientAction(-1, lockRenew),
			},
			{
				Name:      "release",
				Usage:     "release a lease",
				ArgsUsage: "NAME [LEASE_ID]",
				Flags: clientFlags(
					&cli.StringFlag{Name: "lease", Usage: "lease id (instead of the argument)", EnvVars: []string{"OCTOSTORE_LEASE_ID"}},
				),
				Action: clientAction(-1, lockRelease),
			},
			{
				Name:      "status",
				Usage:     "show who holds a lock (exit 0 either way)",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action:    clientAction(-1, lockStatus),
			},
			{
				Name:   "list",
				Usage:  "list your active locks (every user's for an admin)",
				Flags:  clientFlags(),
				Action: clientAction(-1, lockList),
			},
			lockRunCommand(),
		},
	}
}

func leaseFields(w io.Writer, l *client.Lease) error {
	return printFields(w,
		"name", l.Name,
		"status", l.Status,
		"holder", l.Holder,
		"lease_id", l.LeaseID,
		"fencing_token", strconv.FormatUint(l.FencingToken, 10),
		"expires_at", fmtTime(l.ExpiresAt)+" (in "+fmtUntil(l.ExpiresAt)+")")
}

func lockAcquire(c *cli.Context, args []string) error {
	if err := needArgs(args, 1, 1, "lock acquire NAME [--ttl 30s] [--wait 0] [--json|-q]"); err != nil {
		return err
	}
	cl, err := newClientFromCtx(c)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(c.Duration("wait"))
	ctx, cancel := context.WithDeadline(c.Context, deadline.Add(3*c.Duration("timeout")))
	defer cancel()
	for attempt := 0; ; attempt++ {
		l, err := cl.Acquire(ctx, args[0], c.Duration("ttl"))
		var held *client.LockHeldError
		if errors.As(err, &held) && time.Now().Before(deadline) {
			if attempt == 0 {
				fmt.Fprintf(c.App.ErrWriter, "octostore: waiting for lock %q (held by %s)\n", args[0], held.Holder)
			}
			backoff := min(time.Duration(50<<min(attempt, 5))*time.Millisecond, time.Until(deadline))
			select {
			case <-ctx.Done():
				return clientErr(err)
			case <-time.After(backoff):
			}
			continue
		}
		if err != nil {
			return clientErr(err)
		}
		if c.Bool("quiet") {
			_, err := fmt.Fprintln(c.App.Writer, l.LeaseID)
			return err
		}
		return printOutput(c, l, func(w io.Writer) error { return leaseFields(w, l) })
	}
}

func leaseArg(c *cli.Context, args []string, usage string) (string, error) {
	if err := needArgs(args, 1, 2, usage); err != nil {
		return "", err
	}
	if len(args) == 2 {
		return args[1], nil
	}
	if l := c.String("lease"); l != "" {
		return l, nil
	}
	return "", exitCode(exitUsage, fmt.Errorf("usage: octostore %s (or --lease / OCTOSTORE_LEASE_ID)", usage))
}

func lockRenew(c *cli.Context, args []string) error {
	lease, err := leaseArg(c, args, "lock renew NAME LEASE_ID [--ttl 30s]")
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := clientCall(c)
	if err != nil {
		return err
	}
	defer cancel()
	l, err := cl.Renew(ctx, args[0], lease, c.Duration("ttl"))
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, l, func(w io.Writer) error { return leaseFields(w, l) })
}

func lockRelease(c *cli.Context, args []string) error {
	lease, err := leaseArg(c, args, "lock release NAME LEASE_ID")
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := clientCall(c)
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.Release(ctx, args[0], lease); err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]any{"status": "released", "name": args[0]}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "released %s\n", args[0])
		return err
	})
}

func lockStatus(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "lock status NAME")
	if err != nil {
		return err
	}
	defer cancel()
	s, err := cl.LockStatus(ctx, args[0])
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, s, func(w io.Writer) error {
		if s.Available() {
			_, err := fmt.Fprintf(w, "%s is available\n", args[0])
			return err
		}
		return printFields(w,
			"name", s.Name,
			"status", s.Status,
			"holder", s.Holder,
			"lease_id", s.LeaseID,
			"fencing_token", strconv.FormatUint(s.FencingToken, 10),
			"expires_at", fmtTime(s.ExpiresAt)+" (in "+fmtUntil(s.ExpiresAt)+")")
	})
}

func lockList(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "lock list")
	if err != nil {
		return err
	}
	defer cancel()
	locks, err := cl.ListLocks(ctx)
	if err != nil {
		return clientErr(err)
	}
	if locks == nil {
		locks = []client.LockInfo{}
	}
	return printOutput(c, locks, func(w io.Writer) error {
		rows := make([][]string, 0, len(locks))
		for _, l := range locks {
			rows = append(rows, []string{l.Name, l.Holder, strconv.FormatUint(l.FencingToken, 10), fmtUntil(l.ExpiresAt), l.LeaseID})
		}
		return printTable(w, []string{"NAME", "HOLDER", "FENCING", "EXPIRES IN", "LEASE ID"}, rows)
	})
}
