package main

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// semaphoreCommand is `octostore semaphore`: run a command while holding
// one of a semaphore's N slots (like `consul lock -n N`), and inspect one.
func semaphoreCommand() *cli.Command {
	return groupCommand("semaphore", "run a command under a semaphore (at most N at once) and inspect semaphores",
		&cli.Command{
			Name:      "run",
			Usage:     "run a command while holding one of a semaphore's --limit slots (renewed; released when it exits)",
			ArgsUsage: "NAME -- CMD [ARGS...]",
			Description: "At most --limit commands run at once under one semaphore name, over every host and user\n" +
				"(every runner must give the same --limit). Exit status as for lock run: CMD's status; 3 if every slot\n" +
				"stayed held past --wait; 7 if the slot was lost while CMD ran. CMD gets OCTOSTORE_SEMAPHORE_NAME,\n" +
				"OCTOSTORE_LEASE_ID and OCTOSTORE_FENCING_TOKEN (the slot's).",
			Flags: connFlags(
				&cli.IntFlag{Name: "limit", Usage: "the semaphore's number of slots (1..10000; the same for every runner; required)"},
				&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h); renewed every ttl/3"},
				&cli.DurationFlag{Name: "wait", Usage: "wait this long for a lock (or a semaphore slot) held by others, in its queue (0: one attempt)"},
				&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "when the lock (or slot) is at risk or lost, time CMD gets between SIGTERM and SIGKILL"},
				&cli.BoolFlag{Name: "pass-token", Usage: "give CMD the token in $" + envToken + " (by default CMD gets no credential)"},
				metadataFlag(),
				holderIDFlag(),
			),
			Action: leafAction(semaphoreRun),
		},
		clientCommand("status", "show a semaphore's limit and held slots (exit 0 either way)", "NAME", semaphoreStatus),
		clientCommand("list", "list the semaphore slots you hold (every user's for the admin key)", "", semaphoreList),
		clientCommand("fence", "check a fencing token: exit 0 if a slot with it is held, 3 if stale", "NAME TOKEN", semaphoreFence),
	)
}

func semaphoreRun(c *cli.Context, args []string) error {
	limit := c.Int("limit")
	switch {
	case !c.IsSet("limit"):
		return errUsage(c, "missing --limit (the semaphore's number of slots)")
	case limit < 1 || limit > 10000:
		return errUsage(c, "--limit must be between 1 and 10000")
	}
	return runHolding(c, args, func(cl *client.Client, name string, ttl time.Duration, id string) (holder, []string) {
		opts := []client.LockerOption{client.WithHolderID(id)}
		if m := metadata(c, runMetadata()); m != nil {
			opts = append(opts, client.WithMetadata(*m))
		}
		return semaphoreHolder{client.NewSemaphore(cl, name, limit, ttl, opts...)},
			[]string{"OCTOSTORE_SEMAPHORE_NAME=" + name}
	})
}

func semaphoreStatus(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.SemaphoreState, error) {
		return cl.SemaphoreStatus(ctx, args[0])
	}, func(w io.Writer, s *client.SemaphoreState) error {
		if err := printFields(w, "name", s.Name, "limit", strconv.Itoa(s.Limit), "available", strconv.Itoa(s.Available),
			"waiters", strconv.Itoa(s.Waiters)); err != nil {
			return err
		}
		if len(s.Holders) == 0 {
			return nil
		}
		rows := make([][]string, 0, len(s.Holders))
		for _, h := range s.Holders {
			rows = append(rows, []string{h.Holder, strconv.FormatUint(h.FencingToken, 10), fmtUntil(h.ExpiresAt), h.LeaseID, h.Metadata})
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
		return printTable(w, []col{{"HOLDER", true}, {"FENCING", false}, {"EXPIRES IN", false}, {"LEASE ID", false}, {"METADATA", true}}, rows)
	})
}

// semaphoreList is `semaphore list`: the caller's held slots (the admin
// key: everyone's), by semaphore name, then lease id, every page. The table
// has lock list's columns (80 wide, the lease id whole); --json has every
// field, the limit and the session included.
func semaphoreList(c *cli.Context, args []string) error {
	return listRun(c, listPageSize, (*client.Client).ListSemaphoresPage,
		[]col{{"NAME", true}, {"HOLDER", true}, {"FENCING", false}, {"EXPIRES IN", false}, {"LEASE ID", false}, {"META", true}},
		func(s client.HeldSemaphore) []string {
			return []string{s.Name, s.Holder, strconv.FormatUint(s.FencingToken, 10), fmtUntil(s.ExpiresAt), s.LeaseID, s.Metadata}
		}, nil)
}

func semaphoreFence(c *cli.Context, args []string) error {
	return fenceRun(c, args, (*client.Client).CheckSemaphoreFence)
}
