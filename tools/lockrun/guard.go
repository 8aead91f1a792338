package lockrun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The guard: no command outlives its wrapper.
//
// The wrapper (`octostore lock run`) can be killed by a signal it cannot
// catch, SIGKILL, and then nothing of it runs to stop the command. So it
// does not start the command itself: it starts a guard, the octostore binary
// again (argv[0] GuardName), as the leader of a new process group, and the
// guard starts the command in that group. The guard holds the read end of a
// pipe whose write end only the wrapper has (the lifeline); when the wrapper
// is gone, however it died, the kernel closes that end, the guard reads EOF
// and sends SIGKILL to its whole process group: the command, everything it
// started that stayed in the group, and the guard itself.
//
// The command gets PR_SET_PDEATHSIG = SIGKILL from the guard, so that it
// dies too if the guard itself is killed. Linux sends that signal when the
// thread that created the child exits, not the process: the guard starts the
// command from a goroutine locked to its OS thread, and that goroutine waits
// for the command, so the thread lives exactly as long as the command. The
// wrapper also sends SIGKILL to the group when the guard dies.
//
// With an interactive command (stdin a terminal) there is no guard: the
// command must stay in the terminal's foreground process group, which the
// wrapper does not own. The wrapper starts the command itself, with
// PR_SET_PDEATHSIG = SIGKILL from a locked thread: a SIGKILL of the wrapper
// kills the command, but not processes the command started.

// GuardName is argv[0] of the guard process.
const GuardName = "octostore-lock-run-guard"

// lifelineFD is the guard's file descriptor of the lifeline pipe.
const lifelineFD = 3

// IsGuard reports whether args (os.Args) are those of a guard process: the
// binary's main must then call Guard and exit with its status, before
// anything else.
func IsGuard(args []string) bool { return len(args) > 0 && args[0] == GuardName }

// Guard runs the command of a guard process (args: os.Args) and returns the
// exit status for it: the command's, or 128+N if it died of signal N; 127 if
// it could not be found, 126 if it could not be run.
func Guard(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "octostore: lock run guard: no command")
		return 2
	}
	lifeline := os.NewFile(lifelineFD, "lifeline")
	var st unix.Stat_t
	if lifeline == nil || unix.Fstat(lifelineFD, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		fmt.Fprintln(os.Stderr, "octostore: lock run guard: started without its lifeline (it is started by `octostore lock run`)")
		return 2
	}
	unix.CloseOnExec(lifelineFD) // the command must not hold it
	leader := unix.Getpgrp() == os.Getpid()

	// The wrapper sends its signals to the whole group: they are for the
	// command, and the guard must live on to report its status.
	sigs := make(chan os.Signal, 16)
	for s := range policy {
		signal.Notify(sigs, s)
	}
	go func() {
		for range sigs {
		}
	}()

	// The wrapper may be gone already (killed before the guard got here):
	// then the lifeline has no writer and the command must not start.
	if fds := []unix.PollFd{{Fd: lifelineFD, Events: unix.POLLIN}}; func() bool {
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}() {
		return 128 + int(syscall.SIGKILL)
	}

	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started, exited := startLocked(cmd)
	if err := <-started; err != nil {
		fmt.Fprintf(os.Stderr, "octostore: lock run: %v\n", err)
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 127 // like a shell: not found or not executable
	}
	go func() {
		io.Copy(io.Discard, lifeline) // returns when the wrapper is gone
		if leader {
			unix.Kill(0, unix.SIGKILL) // the whole group, the guard included
		}
		cmd.Process.Kill()
	}()
	ps := <-exited
	if ps == nil {
		return 1
	}
	return exitStatus(ps)
}

// startLocked starts cmd from a goroutine locked to its OS thread and waits
// for it there, so that a PR_SET_PDEATHSIG of cmd fires when this process
// dies, not when some idle thread of the runtime exits. started receives the
// error of Start; exited then receives the state of the ended process (nil
// if Wait failed without one).
func startLocked(cmd *exec.Cmd) (started <-chan error, exited <-chan *os.ProcessState) {
	s := make(chan error, 1)
	e := make(chan *os.ProcessState, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with this goroutine, after the
		// child it created has been waited for.
		if err := cmd.Start(); err != nil {
			s <- err
			return
		}
		s <- nil
		cmd.Wait()
		e <- cmd.ProcessState
	}()
	return s, e
}

// exitStatus is the process's exit code, or 128+N when it was killed by
// signal N (as a shell reports it).
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := ps.ExitCode(); code >= 0 {
		return code
	}
	return 1
}
