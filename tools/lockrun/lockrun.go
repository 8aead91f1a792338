// Package lockrun runs a command while holding an octostore lock: the
// supervision behind `octostore lock run` (cmd/octostore/lockrun.go, which
// takes the lock first; docs/client.md).
//
// The promise is that the command never runs outside the lock:
//   - signals that would end the wrapper are caught and passed on to the
//     command (signals.go), so the wrapper outlives the command and
//     releases the lock after it;
//   - SIGKILL of the wrapper kills the command with it (guard.go);
//   - when renewals fail, the command is stopped before the lease can run
//     out on the server (plan.go);
//   - when the command exits, whatever it left running in its process group
//     is killed, and has ended, before the lock is released.
//
// Ownership: Run's goroutine owns the supervision state; the only other
// goroutines wait for the process and read nothing of it.
package lockrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"golang.org/x/sys/unix"
)

// Holder is what a run holds: a lock (*client.Locker) or a slot of a
// semaphore (cmd/octostore adapts a *client.Semaphore). Run reads its lease
// health and releases it with Unlock.
type Holder interface {
	Name() string
	TTL() time.Duration
	Health() client.LeaseHealth
	Updates() <-chan struct{}
	Done() <-chan struct{}
	Err() error
	Unlock(ctx context.Context) error
}

var _ Holder = (*client.Locker)(nil)

// Config is one supervised run.
type Config struct {
	Locker Holder   // held; Run releases it once the command has exited
	Argv   []string // the command and its arguments
	Env    []string // the command's environment

	Stdin          *os.File  // nil: /dev/null
	Stdout, Stderr io.Writer // nil: /dev/null
	Log            io.Writer // the wrapper's own messages ("octostore: ...")

	// Interactive: stdin is a terminal. The command then stays in the
	// terminal's foreground process group (it can read the terminal, and
	// the terminal's Ctrl-C reaches it), without a guard (guard.go).
	Interactive bool

	Signals <-chan os.Signal // from CatchSignals, caught since before the lock was taken
	Grace   time.Duration    // SIGTERM to SIGKILL when the lease is at risk or lost
	Margin  time.Duration    // SIGKILL this long before the lease's deadline (0: Margin(TTL))

	ReleaseTimeout time.Duration // bound on the final release (0: 10s)
	What           string        // what is held, in messages: "lock" (the default) or "semaphore"
	Self           string        // the octostore binary, run again as the guard (default /proc/self/exe)
}

// Result is how a run ended.
type Result struct {
	// Status is the command's exit status, 128+N if it died of signal N,
	// 127 / 126 if it could not be started.
	Status int
	// Stopped: the command was stopped because the lock was lost or at risk
	// (renewals failing); Reason says why. The lock may have been released
	// afterwards, but the command did not finish under it.
	Stopped bool
	Reason  error
}

// Run starts the command, supervises it while it runs and releases the lock
// once it has exited. The error is for a failure of the wrapper itself (the
// guard or the command could not be started).
func Run(cfg Config) (Result, error) {
	if cfg.ReleaseTimeout <= 0 {
		cfg.ReleaseTimeout = 10 * time.Second
	}
	if cfg.Margin <= 0 {
		cfg.Margin = Margin(cfg.Locker.TTL())
	}
	if cfg.What == "" {
		cfg.What = "lock"
	}
	if cfg.Self == "" {
		cfg.Self = "/proc/self/exe" // the running binary, even if replaced on disk since
	}
	s := &supervisor{cfg: cfg, plan: stopPlan{Grace: cfg.Grace, Margin: cfg.Margin}}
	// A signal caught between taking the lock and now: do not start.
	for pending := true; pending; {
		select {
		case sig := <-cfg.Signals:
			if Stops(sig) {
				s.release()
				return Result{Status: 128 + int(sig.(syscall.Signal))}, nil
			}
		default:
			pending = false
		}
	}
	if err := s.start(); err != nil {
		s.release()
		code := 127 // like a shell: not found or not executable
		if errors.Is(err, os.ErrPermission) {
			code = 126
		}
		return Result{Status: code}, err
	}
	return s.supervise(), nil
}

// supervisor is the state of one run, owned by Run's goroutine.
type supervisor struct {
	cfg  Config
	proc *os.Process // the guard (leader of the command's process group), or the interactive command
	done <-chan *os.ProcessState
	plan stopPlan

	lifeline *os.File // write end, held open while the wrapper lives; never written
}

// start starts the guard with the command, or the interactive command.
func (s *supervisor) start() error {
	var cmd *exec.Cmd
	if s.cfg.Interactive {
		cmd = exec.Command(s.cfg.Argv[0], s.cfg.Argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("lifeline: %w", err)
		}
		defer r.Close() // the guard has its copy
		s.lifeline = w
		cmd = &exec.Cmd{Path: s.cfg.Self, Args: append([]string{GuardName}, s.cfg.Argv...), ExtraFiles: []*os.File{r}}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd.Env = s.cfg.Env
	if s.cfg.Stdin != nil { // else /dev/null (a nil *os.File would close fd 0)
		cmd.Stdin = s.cfg.Stdin
	}
	cmd.Stdout, cmd.Stderr = s.cfg.Stdout, s.cfg.Stderr
	if s.cfg.Interactive {
		started, exited := startLocked(cmd) // for PR_SET_PDEATHSIG
		if err := <-started; err != nil {
			return err
		}
		s.proc, s.done = cmd.Process, exited
		return nil
	}
	// A child subreaper: what the command leaves behind when its parent
	// dies becomes this process's child, so that it can be waited for
	// below, not only signalled.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.lifeline.Close()
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		s.lifeline.Close()
		return fmt.Errorf("start the guard: %w", err)
	}
	s.proc = cmd.Process
	pgid := cmd.Process.Pid
	done := make(chan *os.ProcessState, 1)
	go func() {
		// When the guard has exited, and before it is reaped (so that its
		// process group id cannot have been reused), kill whatever is left
		// in the group: the command's leftovers, or everything if the
		// guard was killed.
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		unix.Kill(-pgid, unix.SIGKILL)
		cmd.Wait()
		// Then wait until every process of the group has ended: each one
		// alive has an ancestor in the group that is this process's child
		// (the guard, or an orphan handed to this subreaper), so wait4 on
		// the group returns ECHILD only when none is left.
		for {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(-pgid, &ws, 0, nil); err != nil && err != unix.EINTR {
				break
			}
		}
		done <- cmd.ProcessState
	}()
	s.done = done
	return nil
}

// signal sends sig to the command (its whole process group unless
// interactive).
func (s *supervisor) signal(sig syscall.Signal) {
	if s.cfg.Interactive {
		s.proc.Signal(sig)
		return
	}
	unix.Kill(-s.proc.Pid, sig)
}

// logf writes one "octostore: …" line: the client's errors carry their own
// "octostore: " prefix, which is dropped from error arguments so the line has
// one, and text from the server is cleaned of terminal controls (termtext).
func (s *supervisor) logf(format string, args ...any) {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = strings.TrimPrefix(err.Error(), "octostore: ")
		}
	}
	fmt.Fprintf(s.cfg.Log, "octostore: %s\n", termtext.Clean(fmt.Sprintf(format, args...)))
}

// supervise runs until the command has exited, then releases the lock.
func (s *supervisor) supervise() Result {
	l := s.cfg.Locker
	lost := l.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ps *os.ProcessState
	for running := true; running; {
		s.act(timer)
		select {
		case ps = <-s.done:
			running = false
		case sig := <-s.cfg.Signals:
			if out := passOn(sig, s.cfg.Interactive); out != 0 {
				s.signal(out)
			}
		case <-l.Updates():
		case <-timer.C:
		case <-lost:
			lost = nil
			s.plan.LostAt = time.Now()
			s.plan.LostExpired = errors.Is(l.Err(), client.ErrLeaseExpired)
			s.logf("%v", l.Err())
		}
	}
	res := Result{Status: 1}
	if ps != nil {
		res.Status = exitStatus(ps)
	}
	if s.lifeline != nil {
		s.lifeline.Close() // the guard has exited
	}
	stopped := !s.plan.TermSent.IsZero() || s.plan.KillSent
	err := s.release()
	switch {
	case l.Err() != nil:
		res.Stopped, res.Reason = true, l.Err()
	case errors.Is(err, client.ErrLockLost):
		res.Stopped, res.Reason = true, err // the command finished, but the lock was gone before it did
		s.logf("%v", err)
	case stopped:
		res.Stopped, res.Reason = true, fmt.Errorf("%w: %q: the command was stopped while renewals were failing", client.ErrLockLost, l.Name())
		if err == nil {
			s.logf("%s %q: the command was stopped while renewals were failing; it is released", s.cfg.What, l.Name())
		} else {
			s.logf("%s %q lost: the command was stopped while renewals were failing", s.cfg.What, l.Name())
		}
	}
	return res
}

// act sends what the stop plan says is due now and sets timer for the next
// step.
func (s *supervisor) act(timer *time.Timer) {
	l := s.cfg.Locker
	for {
		now := time.Now()
		h := l.Health()
		sig, next := s.plan.due(now, h)
		switch sig {
		case syscall.SIGTERM:
			s.plan.TermSent = now
			if s.plan.LostAt.IsZero() {
				s.logf("renewing %s %q is failing (%v); the lease ends by %s: sending SIGTERM to the command",
					s.cfg.What, l.Name(), h.RenewErr, h.Deadline.Format(time.RFC3339Nano))
			} else {
				s.logf("sending SIGTERM to the command")
			}
			s.signal(syscall.SIGTERM)
			continue
		case syscall.SIGKILL:
			s.plan.KillSent = true
			if !s.plan.TermSent.IsZero() && !now.Before(s.plan.TermSent.Add(s.plan.Grace)) {
				s.logf("command still running %s after SIGTERM; sending SIGKILL", s.plan.Grace)
			} else {
				s.logf("%s %q: the lease may end within %s: sending SIGKILL to the command", s.cfg.What, l.Name(), s.plan.Margin)
			}
			s.signal(syscall.SIGKILL)
			continue
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		return
	}
}

// release releases the lock with a fresh context, bounded by ReleaseTimeout
// and by the lease's deadline: a release can only matter before it.
func (s *supervisor) release() error {
	l := s.cfg.Locker
	deadline := time.Now().Add(s.cfg.ReleaseTimeout)
	if d := l.Health().Deadline; !d.IsZero() && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := l.Unlock(ctx)
	if err != nil && !errors.Is(err, client.ErrLockLost) {
		s.logf("release %q: %v (the lease expires by itself)", l.Name(), err)
	}
	return err
}
