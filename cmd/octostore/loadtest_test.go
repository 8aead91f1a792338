package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/octostore/octostore/loadtest"
)

// startNoopServer runs `octostore loadtest noop-server` and returns its URL.
func startNoopServer(t *testing.T) string {
	t.Helper()
	return startListening(t, "noop-server", "loadtest", "noop-server", "--addr", "127.0.0.1:0")
}

func readReport(t *testing.T, path string) *loadtest.Report {
	t.Helper()
	r, err := loadtest.ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A lock service that grants everything (the no-op server) fails the safety
// check: exit 1 with the evidence on stdout.
func TestLoadtestSafetyViolationExitCode(t *testing.T) {
	noop := startNoopServer(t)
	r := octo(t, noop, tokA, "loadtest", "lock-contended", "--keys", "2", "-c", "4", "--duration", "300ms", "--warmup", "0s")
	r.mustCode(t, exitFailure, "loadtest lock-contended against the no-op server")
	if !strings.Contains(r.stdout, "SAFETY VIOLATION") || !strings.Contains(r.stderr, "lock safety violations") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// Every subcommand the docs name is listed in the help.
func TestLoadtestHelpListsNoopServer(t *testing.T) {
	r := octo(t, "http://127.0.0.1:1", tokA, "loadtest", "--help").mustCode(t, exitOK, "loadtest --help")
	for _, want := range []string{"noop-server", "lock-cycle", "mixed", "--out FILE", "--json", "--keep", "--max-error-rate"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("loadtest --help lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "--quiet") {
		t.Fatalf("loadtest --help still has --quiet:\n%s", r.stdout)
	}
}

func TestLoadtestUsageErrors(t *testing.T) {
	noop := startNoopServer(t)
	octo(t, noop, tokA, "loadtest", "nope").mustCode(t, exitUsage, "unknown scenario")
	octo(t, noop, tokA, "loadtest", "mixed", "--mix", "nope=1").mustCode(t, exitUsage, "bad mix")
	octo(t, noop, tokA, "loadtest", "--compare", "only-one.json").mustCode(t, exitUsage, "compare with one file")
	octo(t, noop, tokA, "loadtest", "lock-cycle", "--target", "ftp://x").mustCode(t, exitUsage, "bad target")
	octo(t, "http://127.0.0.1:1", tokA, "loadtest", "lock-cycle", "-d", "100ms").mustCode(t, exitUnavailable, "unreachable server")
}

// openPTY opens a pseudo-terminal: the controlling side and the terminal.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	return ptm, pts
}

// On a terminal a run shows live progress on stderr; stdout gets only the
// table (on a pipe stderr gets nothing: TestLoadtestJSONOutAndCleanup).
func TestLoadtestProgressOnTerminal(t *testing.T) {
	noop := startNoopServer(t)
	ptm, pts := openPTY(t)
	defer ptm.Close()
	cmd := exec.Command(octostoreBin, "loadtest", "flag-eval", "-d", "1500ms", "--warmup", "0s", "-c", "2")
	cmd.Env = cliEnv(noop, tokA)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	term := make(chan string, 1)
	go func() { b, _ := io.ReadAll(ptm); term <- string(b) }() // ends with EIO once the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("loadtest: %v", err)
	}
	s := <-term
	for _, want := range []string{"\r\033[K", "s of 1.5s", "ops/s", "0 errors", "cleaning up lt-"} {
		if !strings.Contains(s, want) {
			t.Fatalf("terminal lacks %q: %q", want, s)
		}
	}
	if strings.Contains(stdout.String(), "s of 1.5s") || strings.Contains(stdout.String(), "\r") || !strings.Contains(stdout.String(), "latency ms") {
		t.Fatalf("stdout: %q", stdout.String())
	}
}
