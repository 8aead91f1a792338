package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/lockrun"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// `octostore lock run NAME [--ttl 30s] [--wait 2m] [--grace 10s] -- CMD ARGS...`
//
// Holds the lock while CMD runs, like flock(1), `consul lock` and `etcdctl
// lock`:
//   - waits up to --wait for the lock (exit 3 when it stays held);
//   - runs CMD with OCTOSTORE_LOCK_NAME, OCTOSTORE_LEASE_ID and
//     OCTOSTORE_FENCING_TOKEN in its environment, and without
//     OCTOSTORE_TOKEN / OCTOSTORE_TOKEN_FILE (--pass-token gives it the
//     token);
//   - renews in the background every TTL/3 (client.Locker);
//   - when CMD exits, releases the lock and exits with CMD's status
//     (128+N when CMD died of signal N).
//
// The supervision is tools/lockrun: signals, the guard that kills CMD when
// the wrapper is killed, and the stop schedule when renewals fail (SIGTERM
// at the lease's deadline minus --grace, SIGKILL before the deadline; exit
// 7, exitLockLost). This file takes the lock and maps the outcome to exit
// codes.

func lockRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command while holding a lock (renewed in the background; released when it exits)",
		ArgsUsage: "NAME -- CMD [ARGS...]",
		Description: "Exit status: CMD's status (128+N if killed by signal N); 3 if the lock stayed held past --wait;\n" +
			"7 if the lock was lost, or at risk, while CMD ran: when renewals fail CMD gets SIGTERM at the lease's\n" +
			"deadline minus --grace and SIGKILL just before the deadline; when the lock is lost, SIGTERM and\n" +
			"SIGKILL after --grace. Signals to lock run are passed on to CMD; if lock run is killed, so is CMD.",
		// No --json: CMD's output is the command's output.
		Flags: connFlags(
			&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h); renewed every ttl/3"},
			&cli.DurationFlag{Name: "wait", Usage: "wait this long for a lock (or a semaphore slot) held by others, in its queue (0: one attempt)"},
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "when the lock (or slot) is at risk or lost, time CMD gets between SIGTERM and SIGKILL"},
			&cli.BoolFlag{Name: "pass-token", Usage: "give CMD the token in $" + envToken + " (by default CMD gets no credential)"},
			lockDelayFlag(),
			metadataFlag(),
			holderIDFlag(),
		),
		Action: leafAction(lockRun),
	}
}

// holder is what `lock run` and `semaphore run` hold while CMD runs: a
// lock (*client.Locker) or a slot of a semaphore (semaphoreHolder).
// lockrun.Run supervises it.
type holder interface {
	lockrun.Holder
	TryLock(ctx context.Context) error
	Lock(ctx context.Context) error
	Lease() client.Lease
}

// semaphoreHolder makes a *client.Semaphore a holder.
type semaphoreHolder struct{ *client.Semaphore }

func (s semaphoreHolder) TryLock(ctx context.Context) error { return s.TryAcquire(ctx) }
func (s semaphoreHolder) Lock(ctx context.Context) error    { return s.Acquire(ctx) }
func (s semaphoreHolder) Unlock(ctx context.Context) error  { return s.Release(ctx) }

func lockRun(c *cli.Context, args []string) error {
	return runHolding(c, args, func(cl *client.Client, name string, ttl time.Duration, id string) (holder, []string) {
		opts := []client.LockerOption{client.WithHolderID(id), client.WithLockerDelay(c.Duration("lock-delay"))}
		if m := metadata(c, runMetadata()); m != nil {
			opts = append(opts, client.WithMetadata(*m))
		}
		return client.NewLocker(cl, name, ttl, opts...),
			[]string{"OCTOSTORE_LOCK_NAME=" + name}
	})
}

// runHolding is `lock run` and `semaphore run`: take what hold makes, run
// CMD while renewing it, release it when CMD exits (the comment at the top
// of this file). hold also names CMD's extra environment.
func runHolding(c *cli.Context, args []string, hold func(cl *client.Client, name string, ttl time.Duration, id string) (holder, []string)) error {
	name, argv := args[0], args[1:]
	ttl := c.Duration("ttl")
	if ttl < time.Second {
		return exitCode(exitUsage, fmt.Errorf("--ttl must be at least 1s"))
	}
	id, err := holderID(c)
	if err != nil {
		return err
	}
	cn, err := dial(c)
	if err != nil {
		return err
	}
	cl := cn.Client
	// From here no signal but SIGKILL can end this process before CMD.
	sigs, stop := lockrun.CatchSignals()
	defer stop()

	locker, env := hold(cl, name, ttl, id)
	what := "lock"
	if _, ok := locker.(semaphoreHolder); ok {
		what = "semaphore"
	}
	if err := acquireForRun(c, locker, sigs); err != nil {
		return err
	}
	lease := locker.Lease()
	res, err := lockrun.Run(lockrun.Config{
		Locker: locker,
		Argv:   argv,
		Env: append(append(childEnv(os.Environ(), cn.token, c.Bool("pass-token")), env...),
			"OCTOSTORE_LEASE_ID="+lease.LeaseID,
			"OCTOSTORE_FENCING_TOKEN="+strconv.FormatUint(lease.FencingToken, 10)),
		Stdin: os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Log: c.App.ErrWriter,
		Interactive:    lockRunIsTTY(os.Stdin),
		Signals:        sigs,
		Grace:          c.Duration("grace"),
		ReleaseTimeout: c.Duration("timeout"),
		What:           what,
	})
	switch {
	case err != nil:
		return exitCode(res.Status, fmt.Errorf("%s: %w", c.Command.FullName(), err))
	case res.Stopped:
		return exitCode(exitLockLost, nil)
	}
	return exitCode(res.Status, nil)
}

// acquireForRun takes the lock, waiting up to --wait, and gives up early on
// a signal that asks the wrapper to stop (exit 128+N).
func acquireForRun(c *cli.Context, locker holder, sigs <-chan os.Signal) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Context))
	defer cancel()
	interrupted := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case s := <-sigs:
				if lockrun.Stops(s) {
					interrupted <- s
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	err := locker.TryLock(ctx)
	var held *client.LockHeldError
	var full *client.SemaphoreFullError
	if (errors.As(err, &held) || errors.As(err, &full)) && c.Duration("wait") > 0 {
		what := fmt.Sprintf("lock %q", locker.Name())
		if full != nil {
			what = fmt.Sprintf("semaphore %q", locker.Name())
			fmt.Fprintf(c.App.ErrWriter, "octostore: waiting for a slot of semaphore %q (%d of %d held)\n", full.Name, full.Holders, full.Limit)
		} else {
			fmt.Fprintln(c.App.ErrWriter, "octostore: "+waitingLine(held))
		}
		wctx, wcancel := context.WithTimeout(ctx, c.Duration("wait"))
		defer wcancel()
		err = locker.Lock(wctx)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return exitCode(exitHeld, fmt.Errorf("%s still held after waiting %s", what, c.Duration("wait")))
		}
	}
	if err != nil && ctx.Err() != nil {
		code := 130
		select {
		case s := <-interrupted:
			code = 128 + int(s.(syscall.Signal))
		default:
		}
		return exitCode(code, errors.New("interrupted while waiting for the lock"))
	}
	return clientErr(err)
}

// childEnv is the environment CMD gets: env without the CLI's credential
// (OCTOSTORE_TOKEN, OCTOSTORE_TOKEN_FILE), so that the command and whatever
// it starts cannot act as the caller by accident; with pass, the token in
// use (from --token, --token-file or the environment) in OCTOSTORE_TOKEN.
func childEnv(env []string, token string, pass bool) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, envToken+"=") && !strings.HasPrefix(kv, envTokenFile+"=") {
			out = append(out, kv)
		}
	}
	if pass && token != "" {
		out = append(out, envToken+"="+token)
	}
	return out
}

// lockRunIsTTY reports whether f is a terminal.
func lockRunIsTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
