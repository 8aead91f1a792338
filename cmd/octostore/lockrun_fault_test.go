package main

// Faults 3 and 5 of issue 13: `lock run` must never leave its command
// running outside the lock, whatever happens to the wrapper or to the
// network. The commands are this test binary in a child mode (testChild),
// so that what they do is exact and reported on stdout.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testChildEnv selects the child mode of the test binary (TestMain).
const testChildEnv = "LOCKRUN_TEST_CHILD"

// testChild is the test binary run as a command of `lock run`:
//   - "signals": prints "got SIGNAME" for every signal it receives, exits 0
//     on SIGTERM;
//   - "stubborn": prints "ignoring SIGTERM" for every SIGTERM, runs until
//     killed;
//   - "family": starts a "stubborn" grandchild (sharing its stdout), prints
//     "family PID PPID GRANDCHILD", and is itself stubborn;
//   - "tty": prints "parent PPID TTY" (whether stdin is a terminal) and is
//     stubborn.
//
// Each first prints "started PID".
func testChild(mode string) int {
	sigs := make(chan os.Signal, 16)
	switch mode {
	case "signals":
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
			syscall.SIGTERM, syscall.SIGPIPE, syscall.SIGABRT)
		fmt.Printf("started %d\n", os.Getpid())
		for s := range sigs {
			fmt.Printf("got %s\n", unix.SignalName(s.(syscall.Signal)))
			if s == syscall.SIGTERM {
				return 0
			}
		}
	case "stubborn", "family", "tty":
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Printf("started %d\n", os.Getpid())
		if mode == "tty" {
			_, err := unix.IoctlGetTermios(0, unix.TCGETS)
			fmt.Printf("parent %d %v\n", os.Getppid(), err == nil)
		}
		if mode == "family" {
			self, _ := os.Executable()
			gc := exec.Command(self)
			gc.Env = append(os.Environ(), testChildEnv+"=stubborn")
			gc.Stdout, gc.Stderr = os.Stdout, os.Stderr
			if err := gc.Start(); err != nil {
				fmt.Println("grandchild:", err)
				return 1
			}
			fmt.Printf("family %d %d %d\n", os.Getpid(), os.Getppid(), gc.Process.Pid)
		}
		for range sigs {
			fmt.Println("ignoring SIGTERM")
		}
	}
	return 2
}

// testBin is this test binary, to run as a command.
func testBin(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gone reports whether process pid has ended (no such process, or a zombie
// not reaped yet: it runs no more).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// waitGone waits until process pid has ended (its pidfd becomes readable
// when it does), failing the test after within. EOF on a pipe the process
// held comes when it closes its files, a moment before it has ended.
func waitGone(t *testing.T, pid int, within time.Duration, what string) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(within.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if n == 1 {
			return
		}
		t.Fatalf("%s (pid %d) still running %s later (%v)", what, pid, within, err)
	}
}

// untilEOF reads r to its end, which comes when every process holding the
// other end of the pipe has ended; it fails the test if that takes longer
// than within.
func untilEOF(t *testing.T, r *bufio.Reader, within time.Duration, what string) string {
	t.Helper()
	done := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	select {
	case s := <-done:
		return s
	case <-time.After(within):
		t.Fatalf("%s: still running %s later (the pipe it holds is still open)", what, within)
	}
	return ""
}

// pidAfter parses the number after prefix in l, and makes sure that
// process is killed when the test ends (a failing test leaves nothing
// running).
func pidAfter(t *testing.T, l, prefix string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(l, prefix))
	if err != nil || !strings.HasPrefix(l, prefix) {
		t.Fatalf("line %q: want %q and a pid", l, prefix)
	}
	killAtCleanup(t, pid)
	return pid
}

// killAtCleanup sends SIGKILL to pid when the test ends, through a pidfd
// taken now, so that a pid reused meanwhile is never hit.
func killAtCleanup(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone already
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
}

// TestLockRunPassesSignalsOn: the wrapper survives every signal it can
// catch and passes it on as docs/client.md says: SIGQUIT, SIGUSR1, SIGUSR2,
// SIGHUP and SIGINT as they are, SIGPIPE not at all, SIGABRT as SIGTERM;
// it keeps renewing meanwhile and releases the lock when the command exits.
// (Before: SIGQUIT made the wrapper dump its stacks and exit, the command
// ran on outside the lock.)
func TestLockRunPassesSignalsOn(t *testing.T) {
	url := startServer(t)
	r := startEnv(t, url, tokA, []string{testChildEnv + "=signals"}, "lock", "run", "sigs", "--ttl", "10s", "--", testBin(t))
	pidAfter(t, line(t, r.stdout, "command"), "started ")
	for _, s := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGQUIT, "got SIGQUIT"},
		{syscall.SIGUSR1, "got SIGUSR1"},
		{syscall.SIGPIPE, ""}, // ignored: the next line is the next signal's
		{syscall.SIGUSR2, "got SIGUSR2"},
		{syscall.SIGHUP, "got SIGHUP"},
		{syscall.SIGINT, "got SIGINT"},
	} {
		if err := r.cmd.Process.Signal(s.sig); err != nil {
			t.Fatalf("%v: %v", s.sig, err)
		}
		if s.want == "" {
			continue
		}
		if l := line(t, r.stdout, "command"); l != s.want {
			t.Fatalf("after %v the command printed %q, want %q", s.sig, l, s.want)
		}
		if st := lockStatusJSON(t, url, "sigs"); st["holder"] != "alice" {
			t.Fatalf("after %v the lock is %v: the wrapper must hold it while the command runs", s.sig, st)
		}
	}
	r.cmd.Process.Signal(syscall.SIGABRT) // fatal to a Go program: the command is told to stop
	if l := line(t, r.stdout, "command"); l != "got SIGTERM" {
		t.Fatalf("after SIGABRT the command printed %q, want got SIGTERM", l)
	}
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d, want the command's 0", code)
	}
	if st := lockStatusJSON(t, url, "sigs"); st["status"] != "available" {
		t.Fatalf("lock not released after the command: %v", st)
	}
}

// TestLockRunDiesWithItsCommand: SIGKILL cannot be caught, so when the
// wrapper is killed its command and everything the command started in its
// process group die with it; when the guard between them is killed, the
// wrapper kills the group and releases the lock. Nobody else gets the lock
// while any of them runs. (Before: the command ran on after kill -9 of the
// wrapper, in its own process group, and the next holder got the lock when
// the lease ran out.)
func TestLockRunDiesWithItsCommand(t *testing.T) {
	url := startServer(t)
	family := func(t *testing.T, name string) (r *running, pid, guard, grandchild int) {
		t.Helper()
		r = startEnv(t, url, tokA, []string{testChildEnv + "=family"}, "lock", "run", name, "--ttl", "3s", "--", testBin(t))
		for grandchild == 0 {
			if l := line(t, r.stdout, "command"); strings.HasPrefix(l, "family ") {
				if _, err := fmt.Sscanf(l, "family %d %d %d", &pid, &guard, &grandchild); err != nil {
					t.Fatalf("%q: %v", l, err)
				}
				killAtCleanup(t, pid)
				killAtCleanup(t, grandchild)
			}
		}
		return r, pid, guard, grandchild
	}

	t.Run("kill -9 of the wrapper", func(t *testing.T) {
		r, pid, _, grandchild := family(t, "k9")
		r.cmd.Process.Signal(syscall.SIGKILL)
		// EOF on stdout: the wrapper, the guard, the command and its child
		// (which all share the pipe) have ended.
		untilEOF(t, r.stdout, 30*time.Second, "the command and its child after kill -9 of lock run")
		waitGone(t, pid, 30*time.Second, "the command")
		waitGone(t, grandchild, 30*time.Second, "the command's child")
		// Only then can anyone else have the lock: when the lease has run out.
		octo(t, url, tokB, "lock", "acquire", "k9", "--wait", "30s").mustCode(t, exitOK, "bob acquires after the lease ran out")
	})

	t.Run("kill -9 of the guard", func(t *testing.T) {
		r, pid, guard, grandchild := family(t, "g9")
		if guard == r.cmd.Process.Pid {
			t.Fatalf("the command's parent is lock run itself: no guard")
		}
		syscall.Kill(guard, syscall.SIGKILL)
		if code := r.wait(t); code != 128+int(syscall.SIGKILL) {
			t.Fatalf("exit %d, want %d (the command killed)", code, 128+int(syscall.SIGKILL))
		}
		untilEOF(t, r.stdout, 30*time.Second, "the command and its child after kill -9 of the guard")
		waitGone(t, pid, 30*time.Second, "the command")
		waitGone(t, grandchild, 30*time.Second, "the command's child")
		if st := lockStatusJSON(t, url, "g9"); st["status"] != "available" {
			t.Fatalf("the wrapper did not release the lock: %v", st)
		}
	})
}

// TestLockRunStopsTheCommandBeforeTheLeaseEnds: cut off from the server
// (connections refused, or a network that silently stops forwarding),
// `lock run --ttl 3s --grace 4s` with a command that ignores SIGTERM sends
// SIGTERM as soon as renewals fail and SIGKILL before the lease's deadline:
// when another client is granted the lock (directly at the server, once the
// lease has run out there), the command is already gone. (Before: SIGTERM
// only when the lease's deadline had passed and SIGKILL --grace later, so
// the command ran ~4 s under the next holder.)
func TestLockRunStopsTheCommandBeforeTheLeaseEnds(t *testing.T) {
	for _, cut := range []string{"refused", "stalled"} {
		t.Run(cut, func(t *testing.T) {
			url := startServer(t)
			px, pxURL := newProxy(t, url)
			r := startEnv(t, pxURL, tokA, []string{testChildEnv + "=stubborn"},
				"lock", "run", "cut", "--ttl", "3s", "--grace", "4s", "--", testBin(t))
			pid := pidAfter(t, line(t, r.stdout, "command"), "started ")
			if cut == "refused" {
				px.Block()
			} else {
				px.Stall()
			}
			// The command is told to stop as soon as a renewal fails: 4 s of
			// grace do not fit in what is left of a 3 s lease.
			if l := line(t, r.stdout, "command"); l != "ignoring SIGTERM" {
				t.Fatalf("command: %q, want it to get SIGTERM", l)
			}
			// Bob waits at the server itself; he gets the lock when the
			// lease has run out there.
			bob := octo(t, url, tokB, "lock", "acquire", "cut", "--wait", "30s", "--json")
			stillRunning := !gone(pid)
			bob.mustCode(t, exitOK, "bob acquires once the lease has run out")
			if stillRunning {
				t.Fatalf("bob was granted the lock while alice's command (pid %d) still ran", pid)
			}
			if code := r.wait(t); code != exitLockLost {
				t.Fatalf("lock run exit %d, want %d", code, exitLockLost)
			}
			errOut, _ := io.ReadAll(r.stderr)
			for _, want := range []string{"is failing", "sending SIGTERM", "sending SIGKILL", `lock "cut" lost`} {
				if !strings.Contains(string(errOut), want) {
					t.Fatalf("stderr %q does not say %q", errOut, want)
				}
			}
		})
	}
}

// TestLockRunInteractiveDiesWithItsWrapper: with stdin a terminal the
// command runs without a guard, in lock run's own process group (so that it
// can read the terminal), and PR_SET_PDEATHSIG kills it when lock run is
// killed: lock run starts it from a goroutine locked to its OS thread, and
// waits for it there, so the signal comes from the process's death and not
// from an idle runtime thread exiting.
func TestLockRunInteractiveDiesWithItsWrapper(t *testing.T) {
	url := startServer(t)
	ptm, tty := openPTY(t) // loadtest_test.go
	defer ptm.Close()
	defer tty.Close()
	cmd := exec.Command(octostoreBin, "lock", "run", "tty", "--ttl", "30s", "--", testBin(t))
	cmd.Env = append(cliEnv(url, tokA), testChildEnv+"=tty")
	cmd.Stdin = tty
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // a surviving command must not hold Wait up
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	br := bufio.NewReader(out)
	pid := pidAfter(t, line(t, br, "command"), "started ")
	var ppid int
	var isTTY bool
	if _, err := fmt.Sscanf(line(t, br, "command"), "parent %d %t", &ppid, &isTTY); err != nil || ppid != cmd.Process.Pid || !isTTY {
		t.Fatalf("the command's parent is %d (lock run is %d), stdin a terminal %v (%v): want lock run itself, interactive", ppid, cmd.Process.Pid, isTTY, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	untilEOF(t, br, 30*time.Second, "the interactive command after kill -9 of lock run")
	waitGone(t, pid, 30*time.Second, "the interactive command")
}
