package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// running is a CLI process the test interacts with.
type running struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *bufio.Reader
	done   chan struct{}
	code   int
}

// start runs the binary in the background with pipes on stdin, stdout and
// stderr. It is killed at cleanup if still running.
func start(t *testing.T, url, token string, args ...string) *running {
	t.Helper()
	return startEnv(t, url, token, nil, args...)
}

// startEnv is start with env added to the process's environment.
func startEnv(t *testing.T, url, token string, env []string, args ...string) *running {
	t.Helper()
	cmd := exec.Command(octostoreBin, args...)
	cmd.Env = append(cliEnv(url, token), env...)
	r := &running{cmd: cmd, done: make(chan struct{})}
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.stdout, r.stderr = bufio.NewReader(out), bufio.NewReader(errp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Kill()
			<-r.done
		}
	})
	go func() {
		defer close(r.done)
		// Wait must not run before the pipes are drained by the test; it is
		// only called through wait below, so here we just block on the exit.
		ps, _ := cmd.Process.Wait()
		r.code = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	}()
	return r
}

// line reads the next line of a pipe (fails after a minute).
func line(t *testing.T, r *bufio.Reader, what string) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); ch <- res{s, err} }()
	select {
	case x := <-ch:
		if x.err != nil {
			t.Fatalf("%s: read: %v (got %q)", what, x.err, x.s)
		}
		return strings.TrimRight(x.s, "\n")
	case <-time.After(time.Minute):
		t.Fatalf("%s: no line within a minute", what)
	}
	return ""
}

// lineContaining reads lines until one contains sub.
func lineContaining(t *testing.T, r *bufio.Reader, sub, what string) string {
	t.Helper()
	for {
		if l := line(t, r, what); strings.Contains(l, sub) {
			return l
		}
	}
}

// wait returns the exit code (fails after a minute).
func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(time.Minute):
		t.Fatal("process did not exit within a minute")
	}
	return 0
}

func lockStatusJSON(t *testing.T, url, name string) map[string]any {
	t.Helper()
	r := octo(t, url, tokA, "lock", "status", name, "--json").mustCode(t, 0, "lock status")
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("status JSON %q: %v", r.stdout, err)
	}
	return m
}

func TestLockCommands(t *testing.T) {
	url := startServer(t)
	r := octo(t, url, tokA, "lock", "acquire", "db", "--ttl", "30s", "--json").mustCode(t, 0, "acquire")
	var lease struct {
		LeaseID      string `json:"lease_id"`
		FencingToken int    `json:"fencing_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lease); err != nil || lease.LeaseID == "" || lease.FencingToken != 1 {
		t.Fatalf("acquire --json = %q (%v)", r.stdout, err)
	}
	r = octo(t, url, tokB, "lock", "acquire", "db").mustCode(t, exitHeld, "acquire held by alice")
	if !strings.Contains(r.stderr, "alice") {
		t.Fatalf("held message does not name the holder: %q", r.stderr)
	}
	octo(t, url, tokB, "lock", "acquire", "db", "--wait", "100ms").mustCode(t, exitHeld, "acquire --wait while held")
	r = octo(t, url, tokA, "lock", "status", "db").mustCode(t, 0, "status")
	if !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, lease.LeaseID) {
		t.Fatalf("status = %q", r.stdout)
	}
	r = octo(t, url, tokA, "lock", "list").mustCode(t, 0, "list")
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "db") {
		t.Fatalf("list = %q", r.stdout)
	}
	octo(t, url, tokA, "lock", "renew", "db", lease.LeaseID, "--ttl", "1m").mustCode(t, 0, "renew")
	octo(t, url, tokB, "lock", "release", "db", lease.LeaseID).mustCode(t, exitNotFound, "release by bob")
	octo(t, url, tokA, "lock", "release", "db", "--lease", lease.LeaseID).mustCode(t, 0, "release")
	octo(t, url, tokA, "lock", "release", "db", lease.LeaseID).mustCode(t, exitNotFound, "release twice")
	if r = octo(t, url, tokA, "lock", "status", "db").mustCode(t, 0, "status free"); !strings.Contains(r.stdout, "available") {
		t.Fatalf("status = %q", r.stdout)
	}
	r = octo(t, url, tokB, "lock", "acquire", "db", "-q").mustCode(t, 0, "acquire -q")
	if strings.TrimSpace(r.stdout) == "" || strings.Contains(r.stdout, " ") {
		t.Fatalf("-q output = %q", r.stdout)
	}

	// Exit codes.
	octo(t, url, "wrong", "lock", "list").mustCode(t, exitAuth, "bad token")
	octo(t, url, tokA, "lock", "acquire").mustCode(t, exitUsage, "missing NAME")
	octo(t, url, tokA, "lock", "acquire", "db", "--ttl", "soon").mustCode(t, exitUsage, "bad duration")
	octo(t, url, tokA, "lock", "acquire", "x", "--ttl", "2h").mustCode(t, exitUsage, "ttl out of range (422)")
	octo(t, url, tokA, "lock", "frobnicate").mustCode(t, exitUsage, "unknown subcommand")
	octo(t, "http://127.0.0.1:1", tokA, "lock", "list", "--timeout", "2s").mustCode(t, exitUnavailable, "unreachable")
	octo(t, url, tokA, "health").mustCode(t, 0, "health")
	octo(t, "http://127.0.0.1:1", "", "health").mustCode(t, exitUnavailable, "health unreachable")
}

func TestLockRunEnvAndExitCode(t *testing.T) {
	url := startServer(t)
	r := octo(t, url, tokA, "lock", "run", "job", "--ttl", "5s", "--",
		"sh", "-c", `echo "$OCTOSTORE_LOCK_NAME $OCTOSTORE_FENCING_TOKEN $OCTOSTORE_LEASE_ID"; exit 42`)
	r.mustCode(t, 42, "lock run exit 42")
	f := strings.Fields(r.stdout)
	if len(f) != 3 || f[0] != "job" || f[1] != "1" || len(f[2]) != 36 {
		t.Fatalf("env seen by the command = %q", r.stdout)
	}
	if st := lockStatusJSON(t, url, "job"); st["status"] != "available" {
		t.Fatalf("lock not released after the command: %v", st)
	}
	// A command that cannot start: 127, and the lock is released.
	octo(t, url, tokA, "lock", "run", "job", "--", filepath.Join(t.TempDir(), "nope")).mustCode(t, 127, "missing command")
	if st := lockStatusJSON(t, url, "job"); st["status"] != "available" {
		t.Fatalf("lock not released after a failed start: %v", st)
	}
	octo(t, url, tokA, "lock", "run", "job").mustCode(t, exitUsage, "no command")
}

func TestLockRunSecondWaitsThenRuns(t *testing.T) {
	url := startServer(t)
	script := `echo "started $OCTOSTORE_FENCING_TOKEN"; read x; echo "done $OCTOSTORE_FENCING_TOKEN"`
	first := start(t, url, tokA, "lock", "run", "batch", "--ttl", "5s", "--", "sh", "-c", script)
	if l := line(t, first.stdout, "first"); l != "started 1" {
		t.Fatalf("first: %q", l)
	}
	// The same token: two processes must still exclude each other.
	second := start(t, url, tokA, "lock", "run", "batch", "--ttl", "5s", "--wait", "1m", "--", "sh", "-c", script)
	lineContaining(t, second.stderr, "waiting for lock", "second waits")
	io.WriteString(first.stdin, "go\n")
	if l := line(t, first.stdout, "first"); l != "done 1" {
		t.Fatalf("first: %q", l)
	}
	if code := first.wait(t); code != 0 {
		t.Fatalf("first exit %d", code)
	}
	if l := line(t, second.stdout, "second"); l != "started 2" {
		t.Fatalf("second: %q (should start after the first released, with the next fencing token)", l)
	}
	io.WriteString(second.stdin, "go\n")
	if code := second.wait(t); code != 0 {
		t.Fatalf("second exit %d", code)
	}
}

func TestLockRunWaitTimesOut(t *testing.T) {
	url := startServer(t)
	octo(t, url, tokB, "lock", "acquire", "busy", "--ttl", "1m").mustCode(t, 0, "bob acquires")
	marker := filepath.Join(t.TempDir(), "ran")
	r := octo(t, url, tokA, "lock", "run", "busy", "--wait", "300ms", "--", "touch", marker)
	r.mustCode(t, exitHeld, "lock run --wait while held")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("command ran without the lock")
	}
	octo(t, url, tokA, "lock", "run", "busy", "--", "touch", marker).mustCode(t, exitHeld, "lock run without --wait")
}

func TestLockRunKillsCommandWhenLockLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		grace  string
		want   string // on stdout or stderr
	}{
		{"SIGTERM", `trap 'echo got-term; exit 0' TERM; echo started; sleep 100 & wait`, "30s", "got-term"},
		{"SIGKILL after grace", `trap '' TERM; echo started; sleep 100 & wait`, "300ms", "sending SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startServer(t)
			px, pxURL := newProxy(t, url)
			r := start(t, pxURL, tokA, "lock", "run", "lossy", "--ttl", "1s", "--grace", tc.grace, "--", "sh", "-c", tc.script)
			if l := line(t, r.stdout, "command"); l != "started" {
				t.Fatalf("command: %q", l)
			}
			px.Block() // renewals fail from now on; the lease runs out within the TTL
			if code := r.wait(t); code != exitLockLost {
				t.Fatalf("exit %d, want %d", code, exitLockLost)
			}
			out, _ := io.ReadAll(r.stdout)
			errOut, _ := io.ReadAll(r.stderr)
			if !strings.Contains(string(out)+string(errOut), tc.want) || !strings.Contains(string(errOut), `octostore: lock "lossy" lost: `) ||
				strings.Count(string(errOut), "octostore:") != strings.Count(string(errOut), "\n") {
				t.Fatalf("stdout %q stderr %q: want %q and a lock-lost message, one \"octostore:\" per line", out, errOut, tc.want)
			}
			// The whole process group is gone: nothing holds the stdout pipe
			// open any more (ReadAll above returned), and the lock is free
			// once the lease has run out (the command was stopped before; the
			// server's expiry follows the local one: bob waits in the queue).
			octo(t, url, tokB, "lock", "acquire", "lossy", "--wait", "30s").mustCode(t, 0, "bob acquires after the loss")
		})
	}
}

func TestLockRunForwardsSignals(t *testing.T) {
	url := startServer(t)
	t.Run("SIGINT releases", func(t *testing.T) {
		r := start(t, url, tokA, "lock", "run", "sig", "--ttl", "10s", "--", "sh", "-c", "echo started; exec sleep 100")
		line(t, r.stdout, "command")
		r.cmd.Process.Signal(syscall.SIGINT)
		if code := r.wait(t); code != 128+int(syscall.SIGINT) {
			t.Fatalf("exit %d, want %d", code, 128+int(syscall.SIGINT))
		}
		if st := lockStatusJSON(t, url, "sig"); st["status"] != "available" {
			t.Fatalf("lock not released on SIGINT: %v", st)
		}
	})
	t.Run("SIGHUP reaches the command", func(t *testing.T) {
		r := start(t, url, tokA, "lock", "run", "sig", "--ttl", "10s", "--", "sh", "-c", `trap 'echo got-hup; exit 9' HUP; echo started; sleep 100 & wait`)
		line(t, r.stdout, "command")
		r.cmd.Process.Signal(syscall.SIGHUP)
		if l := line(t, r.stdout, "command"); l != "got-hup" {
			t.Fatalf("command: %q", l)
		}
		if code := r.wait(t); code != 9 {
			t.Fatalf("exit %d, want the command's 9", code)
		}
		if st := lockStatusJSON(t, url, "sig"); st["status"] != "available" {
			t.Fatalf("lock not released: %v", st)
		}
	})
	t.Run("SIGINT while waiting", func(t *testing.T) {
		octo(t, url, tokB, "lock", "acquire", "sig2", "--ttl", "1m").mustCode(t, 0, "bob acquires")
		r := start(t, url, tokA, "lock", "run", "sig2", "--wait", "1m", "--", "true")
		lineContaining(t, r.stderr, "waiting for lock", "waiting")
		r.cmd.Process.Signal(syscall.SIGINT)
		if code := r.wait(t); code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
	})
}

// semaphore run --limit 2: two commands run at once, a third (the same
// token) waits for a slot and runs when one finishes, with the next fencing
// token; without --wait it exits 3.
func TestSemaphoreRun(t *testing.T) {
	url := startServer(t)
	script := `echo "started $OCTOSTORE_SEMAPHORE_NAME $OCTOSTORE_FENCING_TOKEN"; read x; echo "done"`
	run := func(extra ...string) *running {
		args := append([]string{"semaphore", "run", "pool", "--limit", "2", "--ttl", "5s"}, extra...)
		return start(t, url, tokA, append(args, "--", "sh", "-c", script)...)
	}
	first, second := run(), run()
	got := map[string]bool{}
	for _, r := range []*running{first, second} {
		got[line(t, r.stdout, "runner")] = true
	}
	if !got["started pool 1"] || !got["started pool 2"] {
		t.Fatalf("the two runners: %v, want tokens 1 and 2", got)
	}
	octo(t, url, tokB, "semaphore", "run", "pool", "--limit", "2", "--", "true").mustCode(t, exitHeld, "a third without --wait")
	octo(t, url, tokB, "semaphore", "run", "pool", "--limit", "3", "--", "true").mustCode(t, exitUsage, "another limit (422)")
	octo(t, url, tokB, "semaphore", "run", "pool", "--", "true").mustCode(t, exitUsage, "no --limit")
	if st := octo(t, url, tokA, "semaphore", "status", "pool").mustCode(t, 0, "status"); !strings.Contains(st.stdout, "available  0") {
		t.Fatalf("status: %q", st.stdout)
	}
	third := run("--wait", "1m")
	lineContaining(t, third.stderr, "waiting for a slot of semaphore", "the third waits")
	io.WriteString(second.stdin, "go\n")
	if code := second.wait(t); code != 0 {
		t.Fatalf("second exit %d", code)
	}
	if l := line(t, third.stdout, "third"); l != "started pool 3" {
		t.Fatalf("third: %q", l)
	}
	for _, r := range []*running{first, third} {
		io.WriteString(r.stdin, "go\n")
		if code := r.wait(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	if st := octo(t, url, tokA, "semaphore", "status", "pool", "--json").mustCode(t, 0, "status"); !strings.Contains(st.stdout, `"holders":[]`) {
		t.Fatalf("slots left after every runner exited: %s", st.stdout)
	}
}
