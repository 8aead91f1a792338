package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
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
//   - forwards SIGINT, SIGTERM and SIGHUP to CMD;
//   - when CMD exits, releases the lock and exits with CMD's status
//     (128+N when CMD died of signal N);
//   - when the lock is lost (renewal refused, or the server unreachable until
//     the lease ran out) sends SIGTERM to CMD, SIGKILL after --grace, and
//     exits 7 (exitLockLost).
//
// CMD runs in its own process group so that a lost lock stops everything CMD
// started, not just CMD itself; signals go to that group. When stdin is a
// terminal CMD stays in the terminal's foreground group instead (so it can
// read the terminal), and the terminal delivers Ctrl-C / hangup to CMD
// itself: then only SIGTERM is forwarded, to avoid delivering SIGINT twice.

func lockRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command while holding a lock (renewed in the background; released when it exits)",
		ArgsUsage: "NAME -- CMD [ARGS...]",
		Description: "Exit status: CMD's status (128+N if killed by signal N); 3 if the lock stayed held past --wait;\n" +
			"7 if the lock was lost while CMD ran (CMD gets SIGTERM, then SIGKILL after --grace).",
		// No --json: CMD's output is the command's output.
		Flags: connFlags(
			&cli.DurationFlag{Name: "ttl", Value: 30 * time.Second, Usage: "lease time-to-live (1s..1h); renewed every ttl/3"},
			&cli.DurationFlag{Name: "wait", Usage: "wait this long for a lock (or a semaphore slot) held by others, in its queue (0: one attempt)"},
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "after a lost lock (or slot), time between SIGTERM and SIGKILL"},
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
type holder interface {
	TryLock(ctx context.Context) error
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
	Done() <-chan struct{}
	Err() error
	Lease() client.Lease
	Name() string
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
	// Catch the forwarded signals before anything can arrive.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	locker, env := hold(cl, name, ttl, id)
	if err := acquireForRun(c, locker, sigs); err != nil {
		return err
	}
	lease := locker.Lease()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
	cmd.Env = append(append(childEnv(os.Environ(), cn.token, c.Bool("pass-token")), env...),
		"OCTOSTORE_LEASE_ID="+lease.LeaseID,
		"OCTOSTORE_FENCING_TOKEN="+strconv.FormatUint(lease.FencingToken, 10))
	interactive := lockRunIsTTY(os.Stdin)
	if !interactive {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		unlock(c, locker)
		code := 127 // like a shell: command not found / not executable
		if errors.Is(err, os.ErrPermission) {
			code = 126
		}
		return exitCode(code, fmt.Errorf("lock run: %w", err))
	}
	signalCmd := func(s syscall.Signal) {
		if interactive {
			cmd.Process.Signal(s)
		} else {
			syscall.Kill(-cmd.Process.Pid, s) // the whole group
		}
	}

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var (
		lost  bool
		kill  <-chan time.Time
		done  = locker.Done()
		wErr  error
		alive = true
	)
	for alive {
		select {
		case wErr = <-exited:
			alive = false
		case s := <-sigs:
			if interactive && s != syscall.SIGTERM {
				continue // the terminal already sent it to CMD
			}
			signalCmd(s.(syscall.Signal))
		case <-done:
			done = nil
			lost = true
			fmt.Fprintf(c.App.ErrWriter, "octostore: %s; sending SIGTERM to the command\n", errText(locker.Err()))
			signalCmd(syscall.SIGTERM)
			kill = time.After(c.Duration("grace"))
		case <-kill:
			kill = nil
			fmt.Fprintf(c.App.ErrWriter, "octostore: command still running %s after SIGTERM; sending SIGKILL\n", c.Duration("grace"))
			signalCmd(syscall.SIGKILL)
		}
	}
	if lost {
		if !interactive {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group
		}
		return exitCode(exitLockLost, nil)
	}
	if err := unlock(c, locker); err != nil && errors.Is(err, client.ErrLockLost) {
		// CMD finished, but the lock was gone before it did.
		fmt.Fprintf(c.App.ErrWriter, "octostore: %s\n", errText(err))
		return exitCode(exitLockLost, nil)
	}
	if wErr != nil && cmd.ProcessState == nil {
		return exitCode(exitFailure, fmt.Errorf("lock run: %w", wErr))
	}
	return exitCode(exitStatus(cmd.ProcessState), nil)
}

// acquireForRun takes the lock, waiting up to --wait, and gives up early on
// SIGINT/SIGTERM/SIGHUP.
func acquireForRun(c *cli.Context, locker holder, sigs <-chan os.Signal) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Context))
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
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
		return exitCode(130, errors.New("interrupted while waiting for the lock"))
	}
	return clientErr(err)
}

// unlock releases with a fresh, bounded context (the command's own context
// may be cancelled by the signal that ended CMD).
func unlock(c *cli.Context, locker holder) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), c.Duration("timeout"))
	defer cancel()
	err := locker.Unlock(ctx)
	if err != nil && !errors.Is(err, client.ErrLockLost) {
		fmt.Fprintf(c.App.ErrWriter, "octostore: release %q: %s (the lease expires by itself)\n", locker.Name(), errText(err))
	}
	return err
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

// errText is err's message without the client's "octostore: " (the CLI's
// lines have their own).
func errText(err error) string { return termtext.Clean(strings.TrimPrefix(err.Error(), "octostore: ")) }

// exitStatus is CMD's exit code, or 128+N when it was killed by signal N.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := ps.ExitCode(); code >= 0 {
		return code
	}
	return exitFailure
}

// lockRunIsTTY reports whether f is a terminal.
func lockRunIsTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
