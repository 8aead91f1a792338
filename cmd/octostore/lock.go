package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/urfave/cli/v2"
)

// lockCommand is `octostore lock`; `run` is in lockrun.go.
func lockCommand() *cli.Command {
	lease := func() cli.Flag {
		return &cli.StringFlag{Name: "lease", Usage: "lease id (instead of the argument)", EnvVars: []string{"OCTOSTORE_LEASE_ID"}}
	}
	return groupCommand("lock", "acquire, renew, release and inspect distributed locks",
		clientCommand("acquire", "acquire a lock and print its lease (exit 3 if held by someone else)", "NAME", lockAcquire,
			&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h)"},
			&cli.DurationFlag{Name: "wait", Usage: "wait this long for a lock (or a semaphore slot) held by others, in its queue (0: one attempt)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the lease id"},
			&cli.StringFlag{Name: "session", Usage: "hold the lock under this session (session create) instead of for --ttl: it lives as long as the session", EnvVars: []string{"OCTOSTORE_SESSION_ID"}},
			lockDelayFlag(),
			metadataFlag(),
			holderIDFlag()),
		clientCommand("renew", "extend a lease", "NAME [LEASE_ID]", lockRenew,
			&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h), from now"}, lease()),
		clientCommand("release", "release a lease (the admin key: any lock, without LEASE_ID)", "NAME [LEASE_ID]", lockRelease, lease()),
		clientCommand("status", "show who holds a lock (exit 0 either way)", "NAME", lockStatus),
		clientCommand("list", "list your active locks (every user's for the admin key)", "", lockList),
		clientCommand("fence", "check a fencing token: exit 0 if it is the lock's current grant's, 3 if stale", "NAME TOKEN", lockFence),
		lockRunCommand(),
	)
}

// lockDelayFlag is --lock-delay of `lock acquire`, `lock run` and
// `session create`.
func lockDelayFlag() cli.Flag {
	return &cli.DurationFlag{Name: "lock-delay", Usage: "lock-delay (0..60s): when a hold (of the lock, or of the session's locks) is lost by expiry, nobody is granted the lock for this long after"}
}

// metadataFlag is --metadata of `lock acquire`, `lock run` and `semaphore
// run`.
func metadataFlag() cli.Flag {
	return &cli.StringFlag{Name: "metadata", EnvVars: []string{"OCTOSTORE_METADATA"},
		Usage: "the hold's metadata, shown to every user (never a secret; at most 1,024 bytes, one line); lock run and semaphore run default to \"HOST pid PID\""}
}

// metadata is --metadata for acquire: nil when not given and no default.
func metadata(c *cli.Context, dflt string) *string {
	if c.IsSet("metadata") {
		m := c.String("metadata")
		return &m
	}
	if dflt == "" {
		return nil
	}
	return &dflt
}

// runMetadata is the default metadata of lock run and semaphore run: where
// the holder runs.
func runMetadata() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// holderIDFlag is --holder-id of `lock acquire` and `lock run`.
func holderIDFlag() cli.Flag {
	return &cli.StringFlag{Name: "holder-id", EnvVars: []string{"OCTOSTORE_HOLDER_ID"},
		Usage: "who holds the lock within your token: processes given the same id are one holder " +
			"(a re-acquire answers held); default a random id per process, so that two processes " +
			"sharing a token exclude each other (" + names.HolderID.Pattern() + ")"}
}

// holderID is the --holder-id to acquire with: the flag's, or a new random
// one (client.NewHolderID) for this process.
func holderID(c *cli.Context) (string, error) {
	id := c.String("holder-id")
	if id == "" {
		return client.NewHolderID(), nil
	}
	if !names.HolderID.Valid(id) {
		return "", usageErr(c, "--holder-id %s", names.HolderID.Requirement())
	}
	return id, nil
}

func leaseFields(w io.Writer, l *client.Lease) error {
	return lockFields(w, l.Name, l.Status, l.Holder, l.HolderID, l.LeaseID, l.FencingToken, l.ExpiresAt,
		"session_id", l.SessionID, "metadata", l.Metadata)
}

// lockFields prints a held lock, one field per line (holder_id only when
// the grant has one), then the extra fields (name, value pairs) that have a
// value.
func lockFields(w io.Writer, name, status, holder, holderID, lease string, token uint64, expires time.Time, extra ...string) error {
	kv := []string{"name", name, "status", status, "holder", holder}
	if holderID != "" {
		kv = append(kv, "holder_id", holderID)
	}
	kv = append(kv,
		"lease_id", lease,
		"fencing_token", strconv.FormatUint(token, 10),
		"expires_at", fmtTime(expires)+" (in "+fmtUntil(expires)+")")
	return printFields(w, append(kv, extra...)...)
}

func lockAcquire(c *cli.Context, args []string) error {
	if c.Bool("quiet") && c.Bool("json") {
		return errUsage(c, "give --json or --quiet, not both")
	}
	id, err := holderID(c)
	if err != nil {
		return err
	}
	cn, err := dial(c)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(c.Duration("wait"))
	ctx, cancel := context.WithDeadline(c.Context, deadline.Add(3*c.Duration("timeout")))
	defer cancel()
	// One attempt, then, while the lock is held and --wait lasts, waiting
	// acquires: the server queues them and answers at the hand-off.
	opts := client.AcquireOptions{HolderID: id, SessionID: c.String("session"), LockDelay: c.Duration("lock-delay"),
		Metadata: metadata(c, "")}
	if opts.SessionID != "" && c.IsSet("ttl") {
		return errUsage(c, "give --session or --ttl, not both: a lock held under a session lives as long as the session")
	}
	if opts.SessionID != "" && c.IsSet("lock-delay") {
		return errUsage(c, "give --lock-delay to session create: a lock held under a session has the session's")
	}
	for attempt := 0; ; attempt++ {
		l, err := acquireUntil(ctx, cn.Client, args[0], c.Duration("ttl"), opts, deadline)
		if err == nil && l.Status == "held" && l.HolderID != id {
			// Held by another holder of our token (a server without
			// holder ids answers held to every request of the token):
			// someone else's lease, not ours to print.
			err = &client.LockHeldError{Name: args[0], Holder: l.Holder, ExpiresAt: l.ExpiresAt}
		}
		var held *client.LockHeldError
		if rem := time.Until(deadline); errors.As(err, &held) && held.Err != nil && rem > 0 {
			if attempt == 0 {
				fmt.Fprintln(c.App.ErrWriter, "octostore: "+waitingLine(held))
			}
			opts.Wait = min(rem, client.MaxWait)
			continue
		}
		return cn.finish(err, func(w io.Writer) error {
			if c.Bool("quiet") {
				_, err := fmt.Fprintln(w, l.LeaseID)
				return err
			}
			return leaseFields(w, l)
		})
	}
}

// acquireUntil is one acquire; a waiting one (opts.Wait) ends at deadline
// at the latest (the server counts whole seconds), and then makes one more
// attempt, so that the last answer is the server's (a grant, or a 409).
func acquireUntil(ctx context.Context, cl *client.Client, name string, ttl time.Duration, opts client.AcquireOptions, deadline time.Time) (*client.Lease, error) {
	if opts.Wait <= 0 {
		return cl.AcquireWith(ctx, name, ttl, opts)
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	l, err := cl.AcquireWith(wctx, name, ttl, opts)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		opts.Wait = 0
		return cl.AcquireWith(ctx, name, ttl, opts)
	}
	return l, err
}

// waitingLine says what a waiting acquire (lock acquire --wait, lock run
// --wait) waits for: the same words in both.
func waitingLine(held *client.LockHeldError) string {
	if !held.AvailableAt.IsZero() {
		return fmt.Sprintf("waiting for lock %q (in lock-delay until %s: %s's hold expired)", held.Name, fmtTime(held.AvailableAt), held.Holder)
	}
	return fmt.Sprintf("waiting for lock %q (held by %s until %s)", held.Name, held.Holder, fmtTime(held.ExpiresAt))
}

// leaseArg is the lease id of renew and release: the second argument, else
// --lease (OCTOSTORE_LEASE_ID); "" when neither is given.
func leaseArg(c *cli.Context, args []string) string {
	if len(args) == 2 {
		return args[1]
	}
	return c.String("lease")
}

func lockRenew(c *cli.Context, args []string) error {
	lease := leaseArg(c, args)
	if lease == "" {
		return errUsage(c, "missing LEASE_ID (an argument, --lease or OCTOSTORE_LEASE_ID)")
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.Lease, error) {
		return cl.Renew(ctx, args[0], lease, c.Duration("ttl"))
	}, leaseFields)
}

// lockRelease releases a lease; without a lease id it asks the server to
// release whatever lease is current, which only the admin key may do.
func lockRelease(c *cli.Context, args []string) error {
	lease := leaseArg(c, args)
	return doneRun(c, "released "+args[0], func(cl *client.Client, ctx context.Context) error {
		err := cl.Release(ctx, args[0], lease)
		var ve *client.ValidationError
		if lease == "" && errors.As(err, &ve) {
			return fmt.Errorf("%w (give LEASE_ID, --lease or OCTOSTORE_LEASE_ID: only the admin key releases without one)", err)
		}
		return err
	})
}

func lockStatus(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.LockState, error) {
		return cl.LockStatus(ctx, args[0])
	}, func(w io.Writer, s *client.LockState) error {
		if s.Available() {
			_, err := fmt.Fprintf(w, "%s is available\n", args[0])
			return err
		}
		if s.Status == "delayed" {
			return printFields(w, "name", s.Name, "status", "delayed (lock-delay)", "holder", s.Holder,
				"expired_at", fmtTime(s.ExpiresAt), "available_at", fmtTime(s.AvailableAt)+" (in "+fmtUntil(s.AvailableAt)+")",
				"waiters", strconv.Itoa(s.Waiters))
		}
		return lockFields(w, s.Name, s.Status, s.Holder, s.HolderID, s.LeaseID, s.FencingToken, s.ExpiresAt,
			"session_id", s.SessionID, "metadata", s.Metadata, "waiters", strconv.Itoa(s.Waiters))
	})
}

func lockList(c *cli.Context, args []string) error {
	return listRun(c, listPageSize, (*client.Client).ListLocksPage,
		[]col{{"NAME", true}, {"HOLDER", true}, {"FENCING", false}, {"EXPIRES IN", false}, {"LEASE ID", false}, {"META", true}},
		func(l client.LockInfo) []string {
			return []string{l.Name, l.Holder, strconv.FormatUint(l.FencingToken, 10), fmtUntil(l.ExpiresAt), l.LeaseID, l.Metadata}
		}, nil)
}

// lockFence is `lock fence NAME TOKEN` (the storage side's check): exit 0
// when TOKEN is the current grant's, 3 when it is stale.
func lockFence(c *cli.Context, args []string) error {
	return fenceRun(c, args, (*client.Client).CheckFence)
}

// fenceRun checks args[1] as a fencing token of args[0] with check.
func fenceRun(c *cli.Context, args []string, check func(*client.Client, context.Context, string, uint64) (*client.Fence, error)) error {
	token, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return errUsage(c, "TOKEN must be a fencing token (a non-negative integer)")
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.Fence, error) {
		return check(cl, ctx, args[0], token)
	}, func(w io.Writer, f *client.Fence) error {
		_, err := fmt.Fprintf(w, "valid: fencing token %d of %s is the current grant's (held by %s)\n", f.FencingToken, args[0], termtext.Clean(f.Holder))
		return err
	})
}
