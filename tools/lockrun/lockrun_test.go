package lockrun

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/client/clienttest"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary be the guard (Config.Self), as the
// octostore binary's main does.
func TestMain(m *testing.M) {
	if IsGuard(os.Args) {
		os.Exit(Guard(os.Args))
	}
	os.Exit(m.Run())
}

// heldLocker takes lock name at an in-memory fake server.
func heldLocker(t *testing.T, srv *clienttest.Server, name string) *client.Locker {
	t.Helper()
	c, err := client.New(srv.URL, "tokA", client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l := client.NewLocker(c, name, 30*time.Second)
	if err := l.TryLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func fakeServer(t *testing.T) *clienttest.Server {
	t.Helper()
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	t.Cleanup(srv.Close)
	return srv
}

func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// TestRunStatusAndRelease: Run reports the command's status (128+N for a
// signal, 127 when it cannot be found) and releases the lock after it; what
// the command leaves running in its process group is killed before the
// release.
func TestRunStatusAndRelease(t *testing.T) {
	srv := fakeServer(t)
	for _, c := range []struct {
		name string
		argv []string
		want int
	}{
		{"exit 0", []string{"true"}, 0},
		{"exit 42", []string{"sh", "-c", "exit 42"}, 42},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
		{"not found", []string{"/nonexistent/command"}, 127},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := heldLocker(t, srv, "job")
			var log bytes.Buffer
			res, err := Run(Config{Locker: l, Argv: c.argv, Env: os.Environ(), Stdout: io.Discard, Stderr: &log, Log: &log, Self: self(t), Grace: time.Second})
			if err != nil || res.Status != c.want || res.Stopped {
				t.Fatalf("Run = %+v, %v; want status %d (log %q)", res, err, c.want, log.String())
			}
			if h := srv.Holder("job"); h != "" {
				t.Fatalf("lock still held by %q after the command", h)
			}
		})
	}

	t.Run("leftovers are killed", func(t *testing.T) {
		l := heldLocker(t, srv, "job")
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		// The command starts a background process and exits at once.
		res, err := Run(Config{Locker: l, Argv: []string{"sh", "-c", "sleep 1000 & echo $!"}, Env: os.Environ(),
			Stdout: pw, Stderr: os.Stderr, Log: os.Stderr, Self: self(t), Grace: time.Second})
		pw.Close()
		if err != nil || res.Status != 0 {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		out, _ := bufio.NewReader(pr).ReadString('\n')
		pid, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("background pid %q", out)
		}
		if alive(pid) { // Run returns after every process of the group has ended
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's background process %d outlived the lock", pid)
		}
		if h := srv.Holder("job"); h != "" {
			t.Fatalf("lock still held by %q", h)
		}
	})
}

// TestRunDoesNotStartAfterAStopSignal: a signal that asks the wrapper to
// stop, caught while the lock was being taken, keeps the command from
// starting; the lock is released.
func TestRunDoesNotStartAfterAStopSignal(t *testing.T) {
	srv := fakeServer(t)
	l := heldLocker(t, srv, "job")
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	marker := t.TempDir() + "/ran"
	res, err := Run(Config{Locker: l, Argv: []string{"touch", marker}, Env: os.Environ(), Stdout: io.Discard, Stderr: io.Discard,
		Log: io.Discard, Signals: sigs, Self: self(t)})
	if err != nil || res.Status != 128+int(syscall.SIGTERM) {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
	if h := srv.Holder("job"); h != "" {
		t.Fatalf("lock still held by %q", h)
	}
}

// TestGuardKillsItsGroupWhenTheWrapperIsGone: the guard reads EOF on its
// lifeline when its wrapper's end closes (here: closed by the test, as the
// kernel does when the wrapper dies) and kills its whole process group.
func TestGuardKillsItsGroupWhenTheWrapperIsGone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: self(t), Args: []string{GuardName, "sh", "-c", "sleep 1000 & echo $!; wait"},
		ExtraFiles: []*os.File{r}, Stdout: stdoutW, Stderr: out, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	stdoutW.Close()
	br := bufio.NewReader(stdoutR)
	l, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no pid from the command: %v", err)
	}
	sleeper, _ := strconv.Atoi(strings.TrimSpace(l))
	w.Close() // the wrapper is gone
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("guard ended with %v, want killed by SIGKILL (its own group kill)", err)
	}
	io.ReadAll(br) // EOF: the shell and its background sleep closed their files
	// ... and then they end (a pidfd becomes readable when a process has).
	fd, err := unix.PidfdOpen(sleeper, 0)
	if err == nil {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 30_000)
			if err == unix.EINTR {
				continue
			}
			if n != 1 {
				syscall.Kill(sleeper, syscall.SIGKILL)
				t.Fatalf("the command's child %d survived (%v)", sleeper, err)
			}
			break
		}
	}
}

// TestGuardRefusesWithoutALifeline: the guard is only started by Run.
func TestGuardRefusesWithoutALifeline(t *testing.T) {
	var stderr bytes.Buffer
	cmd := &exec.Cmd{Path: self(t), Args: []string{GuardName, "true"}, Stderr: &stderr}
	err := cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(stderr.String(), "lifeline") {
		t.Fatalf("guard without a lifeline: %v, %q", err, stderr.String())
	}
}
